import { AgentHandle, startAgent } from '../../src/agent';
import { NatsServer } from '../../src/local/nats';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { tasks } from '../support/cluster';
import { silentLogger, workerConfig } from '../support/fixtures';
import { getJob, submitAsync, waitForJob } from '../support/jobs';
import { startTestNats } from '../support/nats';

// A durable job on a replica that drains (SIGTERM): what is still running when
// the grace period ends is handed back, not recorded as `cancelled`; the job
// goes back to the queue and another replica finishes it.

const KEY = 'sk-test-0123456789';
let nats: NatsServer;
let mock: MockUpstream;
const agents: AgentHandle[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  mock = await startMockUpstream({ apiKey: KEY });
});
afterAll(async () => {
  for (const a of agents) await a.shutdown();
  await mock.close();
  await nats.stop();
});

const boot = async (id: string) => {
  const config = workerConfig({ entry: true, concurrency: { maxInFlightTasks: 4 }, drain: { gracePeriodMs: 300 }, jobStore: { url: nats.url, stream: 'DRAIN', consumer: 'runners', bucket: 'drain', replicas: 1 } });
  const a = await startAgent(config, { agentId: id, role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: mock.url, upstreamApiKey: KEY, peerEndpoints: {}, logLevel: 'silent' }, { logger: silentLogger });
  agents.push(a);
  return { a, url: `http://127.0.0.1:${a.httpPort}` };
};

test('the grace period ends mid-job: the unfinished tasks are handed back, another replica runs them, nothing ends cancelled', async () => {
  const first = await boot('entry-0');
  mock.setBehaviour({ latencyMs: 30_000 });
  const sent = tasks(6, 'drain');
  const sub = await submitAsync(first.url, { tasks: sent });
  for (let i = 0; i < 400 && mock.stats().calls < 4; i++) await new Promise((r) => setTimeout(r, 10));
  expect(mock.stats().calls).toBe(4);
  await first.a.shutdown(); // drains: 300 ms of grace, then the 4 calls in flight are handed back
  mock.setBehaviour({ latencyMs: 5 });
  const second = await boot('entry-1');
  const view = await waitForJob(second.url, sub.body.job_id, 60_000);
  expect(view.status).toBe('succeeded');
  expect(view.results!.map((r) => r.id)).toEqual(sent.map((t) => t.id));
  expect(view.results!.every((r) => r.ok && r.agent_id === 'entry-1')).toBe(true);
  expect((await getJob(second.url, sub.body.job_id)).body.success_rate).toBe(1);
}, 90_000);
