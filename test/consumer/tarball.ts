import { builtinModules } from 'node:module';
import * as path from 'node:path';

/**
 * What an installed copy of the library needs, checked against the files of
 * its packed tarball (paths relative to the package root, with their text).
 * Returns one line per problem; empty when nothing is missing.
 *
 * Hand-written because no packaging tool checks this: `npm pack` packs
 * whatever .npmignore lets through, and jsii checks the compiled assembly,
 * not the tarball. The imports are found with regular expressions, which is
 * enough here because the files are tsc's own CommonJS and declaration
 * output (`require("./x")`, `from './x'`, `import("./x")`), not hand-written.
 */
export function tarballProblems(files: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const manifestText = files.get('package.json');
  if (manifestText === undefined) return ['package.json is missing'];
  const manifest = JSON.parse(manifestText) as {
    main?: string;
    types?: string;
    jsii?: unknown;
    license?: string;
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    bundledDependencies?: string[];
  };

  const need = (file: string, why: string) => {
    if (!files.has(file)) problems.push(`${file} is missing (${why})`);
  };
  need(path.posix.normalize(manifest.main ?? 'index.js'), 'package.json "main"');
  if (manifest.types) need(path.posix.normalize(manifest.types), 'package.json "types"');
  if (manifest.jsii) need('.jsii', 'the jsii assembly that package.json "jsii" declares');
  if (manifest.license) need('LICENSE', `the ${manifest.license} license text`);
  need('README.md', 'the package page');
  for (const dep of manifest.bundledDependencies ?? []) {
    need(`node_modules/${dep}/package.json`, `bundled dependency '${dep}'`);
  }

  const declared = new Set([
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...(manifest.bundledDependencies ?? []),
  ]);
  const builtins = new Set(builtinModules);

  for (const [file, text] of files) {
    // Bundled packages ship as their authors packed them; only our own files are read.
    if (file.startsWith('node_modules/')) continue;
    const isDts = file.endsWith('.d.ts');
    if (!isDts && !file.endsWith('.js')) continue;
    const pattern = isDts
      ? /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g
      : /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g;
    for (const m of text.matchAll(pattern)) {
      const spec = m[1];
      if (spec.startsWith('.')) {
        const base = path.posix.join(path.posix.dirname(file), spec);
        const candidates = isDts
          ? [`${base}.d.ts`, `${base}/index.d.ts`, base]
          : [`${base}.js`, `${base}/index.js`, `${base}.json`, base];
        if (!candidates.some((c) => files.has(c))) {
          problems.push(`${candidates[0]} is missing (${file} imports '${spec}')`);
        }
      } else if (!isDts) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (!spec.startsWith('node:') && !builtins.has(name) && !declared.has(name)) {
          problems.push(`${file} requires '${spec}', which is not in dependencies or peerDependencies`);
        }
      }
    }
  }
  return problems;
}
