import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentKind } from '../src';
import { callsUpstream, peerAddress } from '../src/contract';
import { synthTopology } from './support/manifests';
// The runtime's side of the same decisions, from its sources (the two halves never import each other at run time).
import * as runtime from '../agent-runtime/src/config';

const ROOT = path.resolve(__dirname, '..');
const SCHEMA = path.join(ROOT, 'agent-runtime', 'schema', 'agent-config.schema.json');
const GENERATED = ['src/generated/agent-config.ts', 'agent-runtime/src/generated/agent-config.ts'];

/** What `npx projen gen:contract` would write for this schema file. */
function generate(schemaFile: string): string {
  return execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'build-tools/gen-contract.ts', '--stdout', '--schema', schemaFile], { cwd: ROOT, encoding: 'utf8' });
}

describe('one contract, one source', () => {
  let fresh: string;
  beforeAll(() => {
    fresh = generate(SCHEMA);
  }, 60000);

  test.each(GENERATED)('%s is generated from the current schema (run `npx projen gen:contract` if this fails)', (file) => {
    expect(readFileSync(path.join(ROOT, file), 'utf8')).toBe(fresh);
  });

  test('a field renamed in the schema makes the generated files stale', () => {
    expect(fresh).toMatch(/export interface AgentConfig \{/);
    expect(fresh).toMatch(/\n {2}behavior\?: RoleBehavior;/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'contract-'));
    const renamed = path.join(dir, 'schema.json');
    const text = readFileSync(SCHEMA, 'utf8');
    expect(text).toContain('"bearerTokenEnv":');
    writeFileSync(renamed, text.replace('"bearerTokenEnv":', '"tokenEnv":'));
    const out = generate(renamed);
    expect(out).toContain('tokenEnv?: string;');
    expect(out).not.toContain('bearerTokenEnv');
    expect(out).not.toBe(readFileSync(path.join(ROOT, GENERATED[0]), 'utf8'));
  }, 60000);

  test('"calls the upstream" is the same decision on both sides, for every kind', () => {
    for (const kind of Object.values(AgentKind)) {
      expect(callsUpstream(kind)).toBe(runtime.callsUpstream(kind));
    }
    expect(Object.values(AgentKind).filter(callsUpstream).sort()).toEqual(['peer', 'worker']);
  });

  test("a peer's address is the same on both sides and is what the constructs render", () => {
    expect(peerAddress('validation', 'agents-hub')).toBe(runtime.peerAddress('validation', 'agents-hub'));
    expect(peerAddress('validation', 'agents-hub')).toBe('validation-grpc.agents-hub.svc.cluster.local:50051');
    const objs = synthTopology('hub-and-spoke');
    const coordinator = JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'coordinator-config')!.data['agent-config.json']) as runtime.AgentConfig;
    expect(coordinator.peers.length).toBe(4);
    for (const p of coordinator.peers) {
      expect(p.address).toBe(runtime.peerAddress(p.role, coordinator.namespace));
      // the host is a Service the manifests define
      const [service, namespace] = runtime.peerHost(p.role, coordinator.namespace).split('.');
      expect(objs.some((o) => o.kind === 'Service' && o.metadata.name === service && o.metadata.namespace === namespace)).toBe(true);
    }
  });
});
