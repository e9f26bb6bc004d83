import { LocalCluster, readRoles, startLocalCluster, withMcpUrls } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { startDocsMcpServer } from '../../src/tools/docs-server';
import { McpHttpServer } from '../../src/tools/mcp-http';
import { postJob, synthesizedManifests, TOPOLOGIES } from '../support/cluster';

// A role as an agent, end to end through `local` mode on the synthesized
// manifests: the example app gives data-retrieval instructions and the
// in-repo docs MCP server as its tool, and a job sent to the entry gets an
// answer built from the tool's result.
//
// Local mode's `mcpUrls` points the docs server's in-cluster URL at the docs
// server this test starts (no cluster DNS here); nothing else is changed.

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let docs: McpHttpServer;
let manifests: ReturnType<typeof synthesizedManifests>;
let cluster: LocalCluster | undefined;

interface RoleConfig {
  behavior?: { instructions: string; temperature?: number };
  tools?: { mcpServers: Array<{ name: string; url: string }> };
}

/** data-retrieval's config as the constructs rendered it. */
function retrievalConfig(file: string): RoleConfig {
  const config = readRoles(file).find((r) => r.name === 'data-retrieval')?.configJson;
  if (!config) throw new Error(`${file}: no data-retrieval role`);
  return JSON.parse(config) as RoleConfig;
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
    const config = retrievalConfig(manifests[topology]);
    expect(config.tools?.mcpServers.map((m) => m.name)).toEqual(['docs']);
    const instructions = config.behavior!.instructions;
    cluster = await startLocalCluster({ manifests: manifests[topology], mcpUrls: { docs: docs.url }, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
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
    expect(mine[0].temperature).toBe(config.behavior!.temperature);
    expect(mine[0].tools?.map((t) => t.function?.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
    const toolTurn = mine[1].messages!.find((m) => m.role === 'tool')!;
    expect(String(toolTurn.content)).toContain('pod-disruption-budgets');
    expect(mock.requests().filter((r) => r.tools !== undefined)).toHaveLength(2); // no other role was offered tools
  });
});

test('mcpUrls replaces only the named servers\' URLs; configs without them are left byte for byte', () => {
  const config = JSON.stringify({ role: 'r', tools: { mcpServers: [{ name: 'docs', url: 'http://docs.x.svc:8000/mcp' }, { name: 'other', url: 'https://other.example.com/mcp' }], maxRounds: 2, callTimeoutMs: 1 } });
  const out = JSON.parse(withMcpUrls(config, { docs: 'http://127.0.0.1:1234/mcp' })) as { tools: { mcpServers: Array<{ url: string }> } };
  expect(out.tools.mcpServers.map((s) => s.url)).toEqual(['http://127.0.0.1:1234/mcp', 'https://other.example.com/mcp']);
  const plain = '{ "role": "r" }';
  expect(withMcpUrls(plain, { docs: 'http://127.0.0.1:1234/mcp' })).toBe(plain);
});
