// The runtime is this repository's own workspace package (agent-runtime/).
// eslint-disable-next-line import/no-extraneous-dependencies
import { LocalCluster, startLocalCluster } from '@cdk8s-agent-cluster/agent-runtime';
import { Construct } from 'constructs';
import { AgentCluster, ModelCatalog, Topology } from '../src';
import { alternate, pct, poster, round, startMockProcess, synthToFile } from './support';

const API_KEY = 'sk-bench-0123456789';

/**
 * mTLS between agents against plain-text gRPC, same run: the same hub
 * (coordinator + 2 workers) booted twice from one manifest, once with local
 * mode's mTLS and once with `mtls: false`, both against one mock in a
 * process of its own (latency 0, so the agents' CPU is what is measured).
 * One-task jobs through each entry, the two sides alternating round by
 * round: p50 at concurrency 1 and 64, and throughput at 64.
 */
export async function benchMtls(rounds = 4, perRound = 1000) {
  const manifests = synthToFile('mtls', (chart: Construct) => {
    const catalog = ModelCatalog.defaults().withModel({ ...ModelCatalog.defaults().spec('gpt-4.1'), maxConcurrency: 256 });
    new AgentCluster(chart, 'bench', {
      topology: Topology.hubAndSpoke({
        coordinator: { name: 'coordinator', disableAutoscaling: true, replicas: 1, fanOutConcurrency: 64 },
        workers: [0, 1].map((i) => ({ name: `worker-${i}`, replicas: 1 })),
      }),
      upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' },
      maxInFlightTasks: 256,
      catalog,
    });
  });
  const mock = await startMockProcess({ apiKey: API_KEY, latencyMs: 0 });
  const clusters: LocalCluster[] = [];
  try {
    const boot = (mtls: boolean) => startLocalCluster({ manifests, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', env: { LOG_LEVEL: 'warn' }, readyTimeoutMs: 120_000, mtls });
    clusters.push(await boot(false), await boot(true));
    const [plain, tls] = clusters.map((c) => poster(c.entryUrl, 64));
    const job = (p: ReturnType<typeof poster>) => async (i: number) => {
      const res = await p.post('/v1/jobs', { deadline_ms: 60_000, tasks: [{ prompt: `mtls bench ${i}` }] });
      if (!res.results[0].ok) throw new Error(`task failed: ${JSON.stringify(res.results[0].error)}`);
    };
    // warm-up: connections, sessions, JIT on both sides
    await alternate(1, 500, 64, {}, [job(plain), job(tls)]);
    const rows: Record<string, unknown>[] = [];
    for (const concurrency of [1, 64]) {
      const n = concurrency === 1 ? Math.min(perRound, 300) : perRound;
      const [p, t] = await alternate(rounds, n, concurrency, {}, [job(plain), job(tls)]);
      const rate = (s: typeof p) => (n * rounds) / (s.roundWallMs.reduce((a, b) => a + b, 0) / 1000);
      rows.push({
        concurrency,
        jobs: n * rounds,
        plainP50ms: round(pct(p.latencies, 50)),
        mtlsP50ms: round(pct(t.latencies, 50)),
        p50Ratio: round(pct(t.latencies, 50) / pct(p.latencies, 50)),
        plainJobsPerS: round(rate(p), 0),
        mtlsJobsPerS: round(rate(t), 0),
        throughputRatio: round(rate(t) / rate(p)),
      });
    }
    await plain.close();
    await tls.close();
    return rows;
  } finally {
    for (const c of clusters) await c.stop();
    await mock.close();
  }
}
