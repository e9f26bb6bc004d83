import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { startDocsMcpServer } from '../../src/tools/docs-server';
import { McpHttpServer } from '../../src/tools/mcp-http';
import { postJob, synthesizedManifests, TOPOLOGIES, TopologyName } from '../support/cluster';

// A role as an agent, end to end through `local` mode on the synthesized
// manifests: the example app gives data-retrieval instructions and the
// in-repo docs MCP server as its tool, and a job sent to the entry gets an
// answer built from the tool's result.
//
// The only change to the manifests: the docs server's in-cluster URL points
// at the docs server this test starts (no cluster DNS here).

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let docs: McpHttpServer;
let manifests: ReturnType<typeof synthesizedManifests>;
let cluster: LocalCluster | undefined;

interface RoleConfig {
  behavior?: { instructions: string; temperature?: number };
  tools?: { mcpServers: Array<{ name: string; url: string }> };
}

/** A copy of `file` whose data-retrieval config reaches the local docs server; and that config. */
function withLocalDocsServer(file: string, topology: TopologyName): { file: string; config: RoleConfig } {
  let config: RoleConfig | undefined;
  const out = parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    const m = doc.toJSON() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
    if (m?.kind === 'ConfigMap' && m.metadata?.name === 'data-retrieval-config') {
      config = JSON.parse(m.data!['agent-config.json']) as RoleConfig;
      const server = config.tools?.mcpServers.find((s) => s.name === 'docs');
      if (!server) throw new Error(`${file}: data-retrieval lists no 'docs' MCP server`);
      server.url = docs.url;
      m.data!['agent-config.json'] = JSON.stringify(config);
    }
    return JSON.stringify(m);
  });
  if (!config?.behavior) throw new Error(`${file}: data-retrieval has no behavior`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-tools-'));
  const patched = path.join(dir, `${topology}.k8s.yaml`);
  writeFileSync(patched, out.join('\n---\n'));
  return { file: patched, config };
}

beforeAll(async () => {
  manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, recordRequests: true });
  docs = await startDocsMcpServer();
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  mock.reset();
  mock.setBehaviour({ recordRequests: true });
});
afterAll(async () => {
  await mock.close();
  await docs.close();
});

describe.each(TOPOLOGIES)('%s', (topology) => {
  test('data-retrieval looks facts up through the docs MCP server; its answer is built from the tool result', async () => {
    const local = withLocalDocsServer(manifests[topology], topology);
    const instructions = local.config.behavior!.instructions;
    cluster = await startLocalCluster({ manifests: local.file, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
    // hierarchical routes by model (data-retrieval serves gemini-2.5-flash below its supervisor); the others by role
    const target = topology === 'hierarchical' ? { model: 'gemini-2.5-flash' } : { role: 'data-retrieval' };
    const other = topology === 'hierarchical' ? { model: 'deepseek-v3.2' } : { role: 'validation' };
    const res = await postJob(cluster.entryUrl, {
      tasks: [
        { id: 'lookup', prompt: 'Find facts about pod disruption budgets', ...target },
        { id: 'plain', prompt: 'Find facts about pod disruption budgets', ...other },
      ],
      deadline_ms: 20000,
    });
    expect(res.status).toBe(200);
    const lookup = res.body.results.find((r) => r.id === 'lookup')!;
    expect(lookup.ok).toBe(true);
    expect(lookup.agent_id).toMatch(/^data-retrieval-/);
    expect(lookup.tool_calls).toEqual([{ name: 'docs__search_docs', ok: true, latency_ms: expect.any(Number) }]);
    expect(lookup.content).toMatch(/^tools:[0-9a-f]{16} pod-disruption-budgets: Pod disruption budgets for agent roles/);
    expect(lookup.attempts).toBe(2);

    // the role without tools answered plainly
    const plain = res.body.results.find((r) => r.id === 'plain')!;
    expect([plain.ok, plain.tool_calls]).toEqual([true, []]);
    expect(plain.content).toMatch(/^echo:/);

    // what data-retrieval sent: its instructions first, then, in the second call, the tool's result
    const mine = mock.requests().filter((r) => r.messages?.[0]?.content === instructions);
    expect(mine).toHaveLength(2);
    expect(mine[0].messages![0].role).toBe('system');
    expect(mine[0].temperature).toBe(local.config.behavior!.temperature);
    expect(mine[0].tools?.map((t) => t.function?.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
    const toolTurn = mine[1].messages!.find((m) => m.role === 'tool')!;
    expect(String(toolTurn.content)).toContain('pod-disruption-budgets');
    expect(mock.requests().filter((r) => r.tools !== undefined)).toHaveLength(2); // no other role was offered tools
  });
});
