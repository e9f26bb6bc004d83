import { createLogger, InferenceExecutor, RuntimeMetrics, startMockUpstream, UpstreamClient, validateAgentConfig, readRoles } from '@cdk8s-agent-cluster/agent-runtime';
import { load } from '/work/wt/admission/bench/support';
const API_KEY = 'sk-bench-0123456789';
async function main() {
  const mock = await startMockUpstream({ apiKey: API_KEY });
  const client = new UpstreamClient({ baseUrl: mock.url, apiKey: API_KEY, connections: 64 });
  const roles = readRoles('/work/wt/admission/dist/hub-and-spoke.k8s.yaml');
  const config = validateAgentConfig(JSON.parse(roles.find((r: any) => r.name === 'task-executor-a')!.configJson));
  const executor = new InferenceExecutor({ config: { ...config, concurrency: { maxInFlightTasks: 1000 }, catalog: { ...config.catalog, 'gpt-4.1': { ...config.catalog['gpt-4.1'], maxConcurrency: 1000 } } }, client, metrics: new RuntimeMetrics(), logger: createLogger({ level: 'silent' }), agentId: 'bench' });
  const msgs = (i: number) => [{ role: 'user', content: `benchmark task ${i}` }];
  const bare = async (i: number) => { await client.chat({ model: 'gpt-4.1', messages: msgs(i) } as never, { timeoutMs: 30_000 }); };
  const guarded = async (i: number) => { const r = await executor.execute({ id: `t${i}`, messages: msgs(i) as never }, Date.now() + 30_000); if (!r.ok) throw new Error(r.error!.message); };
  const which = process.argv[2];
  await load(3000, 64, bare); await load(3000, 64, guarded);
  for (let r = 0; r < 3; r++) {
    for (const [n, fn] of [['bare', bare], ['guarded', guarded]] as const) {
      if (which && which !== n) continue;
      const t = await load(10000, 64, fn);
      console.log(n, Math.round(10000 / (t.wallMs / 1000)));
    }
  }
  await client.close(); await mock.close();
}
main();
