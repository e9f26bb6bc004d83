// Generates the TypeScript types of the agent config from its JSON Schema,
// once for each half of the repository, so the constructs (src/) and the
// runtime (agent-runtime/src/) compile against the same contract and a
// renamed field breaks the build on both sides.
//
//   npx projen gen:contract          writes both files
//   ... gen-contract.ts --stdout [--schema FILE]   prints the text instead
//   test/contract.test.ts            fails when either file is stale
// (The test runs this as a process: prettier, which formats the output,
// loads itself with a dynamic import that jest's module sandbox refuses.)
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { compile, JSONSchema } from 'json-schema-to-typescript';

const ROOT = path.resolve(__dirname, '..');
export const SCHEMA_FILE = path.join(ROOT, 'agent-runtime', 'schema', 'agent-config.schema.json');
/** The generated file of each half; both hold the same text. */
export const GENERATED_FILES = [path.join(ROOT, 'src', 'generated', 'agent-config.ts'), path.join(ROOT, 'agent-runtime', 'src', 'generated', 'agent-config.ts')];

const BANNER = `/* eslint-disable */
// Generated from agent-runtime/schema/agent-config.schema.json by \`npx projen gen:contract\`.
// Do not edit: change the schema and regenerate (test/contract.test.ts fails when this file is stale).
// In src/ this file is internal: it is not exported from src/index.ts, so jsii never sees it.`;

/** The generated TypeScript text for the current schema. */
export async function renderContractTypes(schemaFile: string = SCHEMA_FILE): Promise<string> {
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as JSONSchema;
  return compile(schema, 'AgentConfig', {
    bannerComment: BANNER,
    // minItems would turn lists into tuple types ([T, ...T[]]) that neither side builds naturally.
    ignoreMinAndMaxItems: true,
    // the schema sits next to the file; no $ref leaves it
    cwd: path.dirname(SCHEMA_FILE),
    style: { singleQuote: true, printWidth: 140 },
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const schemaAt = args.indexOf('--schema');
  const text = await renderContractTypes(schemaAt >= 0 ? path.resolve(args[schemaAt + 1]) : SCHEMA_FILE);
  if (args.includes('--stdout')) {
    process.stdout.write(text);
    return;
  }
  for (const file of GENERATED_FILES) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    console.log(`wrote ${path.relative(ROOT, file)}`);
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
