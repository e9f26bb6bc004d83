import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// The runtime is this repository's own workspace package (agent-runtime/).
// eslint-disable-next-line import/no-extraneous-dependencies
import { startDocsMcpServer, startLocalCluster, startMockUpstream } from '@cdk8s-agent-cluster/agent-runtime';
import { buildExampleApp, DOCS_MCP_SERVER } from '../examples/topologies';

// `npm run demo`: synthesizes the example topologies, boots one of them
// (hub-and-spoke unless DEMO_TOPOLOGY says otherwise) as local processes
// against the local mock upstream, runs the reference workflow (retrieve →
// two executors in parallel → a validation that sends one draft back once)
// and a batch of tasks, and prints what each step and task did and cost.

/** The reference deployment as a workflow. `#revise-once` makes the mock's first draft of step `draft-a` fail review once. */
const WORKFLOW = {
  input: { topic: 'pod disruption budgets' },
  steps: [
    { id: 'retrieve', role: 'data-retrieval', prompt: 'Find the facts a platform team needs about {{input.topic}}.' },
    { id: 'draft-a', role: 'task-executor-a', prompt: 'Write a runbook section from these facts: {{steps.retrieve.content}} #revise-once', depends_on: ['retrieve'] },
    { id: 'draft-b', role: 'task-executor-b', prompt: 'Write a checklist from these facts: {{steps.retrieve.content}}', depends_on: ['retrieve'] },
    {
      id: 'review',
      role: 'validation',
      validates: 'draft-a',
      max_rounds: 3,
      prompt: 'Check that the runbook agrees with the checklist.\nRunbook: {{steps.draft-a.content}}\nChecklist: {{steps.draft-b.content}}',
      depends_on: ['draft-a', 'draft-b'],
    },
  ],
  deadline_ms: 30000,
};
async function main() {
  const topology = process.env.DEMO_TOPOLOGY ?? 'hub-and-spoke';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'demo-'));
  buildExampleApp(dir).synth();
  const apiKey = 'sk-demo-0123456789';
  const mock = await startMockUpstream({ apiKey, latencyMs: 40, jitterMs: 40, errorRate: 0.1 });
  console.log(`mock upstream ${mock.url} (40-80 ms, 10 % transient errors)`);
  // the data-retrieval role's docs MCP server, here on loopback instead of its in-cluster Service
  const docs = await startDocsMcpServer();
  const manifests = path.join(dir, `${topology}.k8s.yaml`);
  writeFileSync(manifests, readFileSync(manifests, 'utf8').split(DOCS_MCP_SERVER.url).join(docs.url));
  console.log(`docs MCP server ${docs.url} (data-retrieval's tools)`);
  const cluster = await startLocalCluster({ manifests, upstreamUrl: mock.url, apiKey, logs: 'ignore', readyTimeoutMs: 90000 });
  console.log(`${topology}: ${cluster.agents.length} agents up, entry ${cluster.entryUrl}`);
  try {
    const w0 = Date.now();
    const wres = await fetch(`${cluster.entryUrl}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(WORKFLOW) });
    type WorkflowJson = { steps: Array<Record<string, any>>; success_rate: number; total_cost_usd: number; error?: { message: string } };
    const workflow = (await wres.json()) as WorkflowJson;
    if (!wres.ok) throw new Error(`workflow refused: ${wres.status} ${workflow.error?.message}`);
    console.log('\nworkflow: retrieve → draft-a ∥ draft-b → review (validates draft-a)');
    console.table(
      workflow.steps.map((s) => ({
        'step': s.id,
        'ok': s.ok,
        'role': s.role,
        'agent': s.agent_id,
        'model': s.model,
        'rounds': s.rounds,
        'tool calls': s.tool_calls?.length ?? 0,
        'tokens': s.usage?.total_tokens,
        'cost_usd': Number(s.cost_usd.toFixed(6)),
        'ms': s.latency_ms,
        ...(s.error ? { error: s.error.code } : {}),
      })),
    );
    console.log(`workflow: success ${(workflow.success_rate * 100).toFixed(1)} %, total cost $${workflow.total_cost_usd.toFixed(6)}, ${Date.now() - w0} ms`);

    const tasks = [
      { id: 'summarize', prompt: 'Summarize the incident report in three bullet points.' },
      { id: 'tests', prompt: 'Write unit tests for the authentication module.', model: 'gpt-4.1' },
      { id: 'docs', prompt: 'Generate API documentation for the endpoints.' },
      { id: 'lookup', prompt: 'Find the owners of service X.', role: 'data-retrieval', model: 'gemini-2.5-flash' },
      { id: 'check', prompt: 'Validate the generated answer.', role: 'validation', model: 'deepseek-v3.2' },
      ...Array.from({ length: 15 }, (_, i) => ({ id: `batch-${i}`, prompt: `Classify ticket ${i}.` })),
    ];
    console.log('\nbatch of tasks (no role, no model: the cluster default model)');
    const t0 = Date.now();
    const res = await fetch(`${cluster.entryUrl}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tasks, deadline_ms: 20000 }) });
    const job = (await res.json()) as { results: Array<Record<string, any>>; success_rate: number; total_cost_usd: number };
    console.table(
      job.results.map((r) => ({
        id: r.id,
        ok: r.ok,
        agent: r.agent_id,
        model: r.model,
        tokens: r.usage?.total_tokens,
        attempts: r.attempts,
        cost_usd: r.cost_usd,
        ms: r.latency_ms,
      })),
    );
    const stats = mock.stats();
    console.log(`success ${(job.success_rate * 100).toFixed(1)} %, total cost $${job.total_cost_usd.toFixed(6)}, ${Date.now() - t0} ms`);
    console.log(`upstream calls ${stats.calls} (${stats.byStatus['503'] ?? 0} injected 503s, retried)`);
  } finally {
    await cluster.stop();
    await mock.close();
    await docs.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
