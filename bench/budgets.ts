// The runtime is this repository's own workspace package (agent-runtime/).
// eslint-disable-next-line import/no-extraneous-dependencies
import { startLocalCluster } from '@cdk8s-agent-cluster/agent-runtime';
import { Construct } from 'constructs';
import { AgentCluster, JobStore, ModelCatalog, Topology } from '../src';
import { poster, round, startMockProcess, synthToFile } from './support';

const API_KEY = 'sk-bench-0123456789';
const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };

/**
 * What budgets cost: one coordinator (fan-out 64) and one worker role with
 * three replicas, the same 1,000-task job sent without `budget_usd` and with
 * one too large to refuse anything, so every upstream attempt reserves and
 * settles. Per pod (no job store: a map in memory) and shared (a job store:
 * three compare-and-set writes per attempt on one JetStream KV key that all
 * three replicas contend for). Rounds alternate between the two bodies;
 * each side reports its best round, as tasks per second and as a ratio to
 * the job without a budget on the same cluster.
 */
export async function benchBudgets(tasks = 1000, rounds = 5): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const store of ['per-pod', 'shared'] as const) {
    const manifests = synthToFile(`budgets-${store}`, (chart: Construct) => {
      new AgentCluster(chart, 'bench', {
        topology: Topology.hubAndSpoke({
          coordinator: { name: 'coordinator', disableAutoscaling: true, replicas: 1, fanOutConcurrency: 64 },
          workers: [{ name: 'worker', disableAutoscaling: true, replicas: 3 }],
        }),
        upstream,
        maxInFlightTasks: 64,
        catalog: ModelCatalog.defaults().withModel({ ...ModelCatalog.defaults().spec('gpt-4.1'), maxConcurrency: 64 }),
        // local mode points the URL at a nats-server of its own
        ...(store === 'shared' ? { jobStore: JobStore.external({ url: 'nats://nats.bench.svc.cluster.local:4222' }) } : {}),
      });
    });
    const mock = await startMockProcess({ apiKey: API_KEY, latencyMs: 0 });
    try {
      const cluster = await startLocalCluster({ manifests, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', env: { LOG_LEVEL: 'warn' }, readyTimeoutMs: 120_000 });
      try {
        const entry = poster(cluster.entryUrl, 2);
        const body = (budget: boolean, r: number) => ({ deadline_ms: 120_000, ...(budget ? { budget_usd: 1000 } : {}), tasks: Array.from({ length: tasks }, (_, i) => ({ prompt: `round ${r} task ${i}`, max_tokens: 16 })) });
        const best = { plain: Infinity, budget: Infinity };
        await entry.post('/v1/jobs', body(true, -1)); // warm-up: connections, tokenizers, the bucket
        for (let r = 0; r < rounds; r++) {
          for (const side of ['plain', 'budget'] as const) {
            const t0 = performance.now();
            const res = await entry.post('/v1/jobs', body(side === 'budget', r));
            const ms = performance.now() - t0;
            if (res.results.some((x: { ok: boolean }) => !x.ok)) throw new Error(`${store} ${side}: a task failed: ${JSON.stringify(res.results.find((x: { ok: boolean }) => !x.ok))}`);
            best[side] = Math.min(best[side], ms);
          }
        }
        await entry.close();
        rows.push({
          budgets: store,
          tasks,
          replicas: 3,
          withoutBudgetTasksPerS: round(tasks / (best.plain / 1000), 0),
          withBudgetTasksPerS: round(tasks / (best.budget / 1000), 0),
          ratio: round(best.plain / best.budget),
        });
      } finally {
        await cluster.stop();
      }
    } finally {
      await mock.close();
    }
  }
  return rows;
}
