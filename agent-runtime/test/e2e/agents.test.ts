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
// manifests: the data-retrieval worker has instructions and the in-repo
// docs MCP server as its tool, and a job sent to the entry gets an answer
// built from the tool's result.
//
// The constructs do not render `behavior`/`tools` on this branch yet, so the
// test patches them into data-retrieval's ConfigMap of the synthesized
// manifests. Once the constructs render them, patch the example app instead.

const API_KEY = 'sk-local-test-123456';
const INSTRUCTIONS = 'You are the data-retrieval agent. Look facts up with the docs tools and quote them.';
let mock: MockUpstream;
let docs: McpHttpServer;
let manifests: ReturnType<typeof synthesizedManifests>;
let cluster: LocalCluster | undefined;

/** A copy of `file` whose data-retrieval ConfigMap carries behavior and tools. */
function withRetrievalTools(file: string, topology: TopologyName): string {
  const out = parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    const m = doc.toJSON() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
    if (m?.kind === 'ConfigMap' && m.metadata?.name === 'data-retrieval-config') {
      const config = JSON.parse(m.data!['agent-config.json']) as Record<string, unknown>;
      config.behavior = { instructions: INSTRUCTIONS, temperature: 0.1 };
      config.tools = { mcpServers: [{ name: 'docs', url: docs.url }], maxRounds: 3, callTimeoutMs: 5000 };
      m.data!['agent-config.json'] = JSON.stringify(config);
    }
    return JSON.stringify(m);
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-tools-'));
  const patched = path.join(dir, `${topology}.k8s.yaml`);
  writeFileSync(patched, out.join('\n---\n'));
  return patched;
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
    cluster = await startLocalCluster({ manifests: withRetrievalTools(manifests[topology], topology), upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
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
    const mine = mock.requests().filter((r) => r.messages?.[0]?.content === INSTRUCTIONS);
    expect(mine).toHaveLength(2);
    expect(mine[0].temperature).toBe(0.1);
    expect(mine[0].tools?.map((t) => t.function?.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
    const toolTurn = mine[1].messages!.find((m) => m.role === 'tool')!;
    expect(String(toolTurn.content)).toContain('pod-disruption-budgets');
    expect(mock.requests().filter((r) => r.tools !== undefined)).toHaveLength(2); // no other role was offered tools
  });
});
