import { AgentHandle, startAgent } from '../../src/agent';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { postJob, tasks } from '../support/cluster';
import { silentLogger, workerConfig } from '../support/fixtures';
import { cancelJob, getJob, readEvents, submitAsync, waitForJob } from '../support/jobs';
import { NatsServer } from '../../src/local/nats';
import { startTestNats } from '../support/nats';

// The job API on HTTP, with the in-memory store (no jobStore) and with the
// JetStream store on a real nats-server: async submit, GET, events, cancel,
// idempotency; the synchronous POST answers as before.

const KEY = 'sk-test-0123456789';
let mock: MockUpstream;
let agent: AgentHandle;
let base: string;
let nats: NatsServer | undefined;

describe.each([['memory', false], ['jetstream', true]] as const)('%s store', (_name, durable) => {
beforeAll(async () => {
  mock = await startMockUpstream({ apiKey: KEY, latencyMs: 5 });
  if (durable) nats = await startTestNats();
  const jobStore = nats && durable ? { jobStore: { url: nats.url, stream: 'JOBS', consumer: 'runners', bucket: 'jobs', replicas: 1 } } : {};
  const config = workerConfig({ entry: true, concurrency: { maxInFlightTasks: 4 }, ...jobStore });
  agent = await startAgent(config, { agentId: 'w-0', role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: mock.url, upstreamApiKey: KEY, peerEndpoints: {}, logLevel: 'silent' }, { logger: silentLogger });
  base = `http://127.0.0.1:${agent.httpPort}`;
});
afterEach(() => mock.reset());
afterAll(async () => {
  await agent.shutdown();
  await mock.close();
  await nats?.stop();
  nats = undefined;
});

test('Prefer: respond-async answers 202 with Location and {job_id, status: queued, durable}; GET shows the results', async () => {
  const sub = await submitAsync(base, { tasks: tasks(3) });
  expect(sub.status).toBe(202);
  expect(sub.body).toEqual({ job_id: expect.any(String), status: 'queued', durable });
  expect(sub.location).toBe(`/v1/jobs/${sub.body.job_id}`);
  const view = await waitForJob(base, sub.body.job_id);
  expect(view).toMatchObject({ job_id: sub.body.job_id, status: 'succeeded', durable, success_rate: 1 });
  expect(Object.keys(view).sort()).toEqual(['created_at', 'durable', 'job_id', 'results', 'status', 'success_rate', 'total_cost_usd', 'updated_at']);
  expect(view.results!.map((r) => r.id)).toEqual(['t0', 't1', 't2']);
  expect(view.total_cost_usd).toBeCloseTo(view.results!.reduce((s, r) => s + r.cost_usd, 0), 12);
  const again = await fetch(`${base}${sub.location}`);
  expect(again.status).toBe(200);
});

test('without Prefer the POST waits and answers as before', async () => {
  const r = await postJob(base, { tasks: tasks(2) });
  expect(r.status).toBe(200);
  expect(Object.keys(r.body).sort()).toEqual(['job_id', 'latency_ms', 'results', 'success_rate', 'total_cost_usd']);
  expect(r.body.results.map((x) => x.id)).toEqual(['t0', 't1']);
  // and the job can be read back
  expect((await getJob(base, r.body.job_id)).body.status).toBe('succeeded');
});

test('a bad body is a 400 naming the field, async or not; an unknown id is a 404', async () => {
  const bad = await submitAsync(base, { tasks: [] });
  expect(bad.status).toBe(400);
  expect(bad.body.error!.message).toMatch(/^tasks/);
  const missing = await getJob(base, 'no-such-job');
  expect(missing.status).toBe(404);
  expect(missing.body.error!.message).toBe("no job 'no-such-job'");
  expect((await cancelJob(base, 'no-such-job')).status).toBe(404);
  expect((await readEvents(base, 'no-such-job')).status).toBe(404);
});

test('events: text/event-stream, result per task then done; Last-Event-ID resumes without loss or repeats', async () => {
  const sub = await submitAsync(base, { tasks: tasks(4) });
  const all = await readEvents(base, sub.body.job_id);
  expect(all.contentType).toMatch(/^text\/event-stream/);
  expect(all.events.map((e) => e.event)).toEqual(['result', 'result', 'result', 'result', 'done']);
  expect((all.events[4].data as { status: string }).status).toBe('succeeded');
  const view = (await getJob(base, sub.body.job_id)).body;
  expect(all.events[4].data).toEqual(view);
  for (const e of all.events.slice(0, 4)) expect(view.results).toContainEqual(e.data);
  const firstTwo = await readEvents(base, sub.body.job_id, { stopAfter: 2 });
  const rest = await readEvents(base, sub.body.job_id, { lastEventId: firstTwo.events[1].id });
  expect([...firstTwo.events, ...rest.events]).toEqual(all.events);
});

test('DELETE cancels: in-flight upstream calls are aborted, nothing new is sent, unfinished tasks end cancelled', async () => {
  mock.setBehaviour({ latencyMs: 30_000 });
  const sub = await submitAsync(base, { tasks: tasks(10) });
  for (let i = 0; i < 200 && mock.stats().calls < 4; i++) await new Promise((r) => setTimeout(r, 10));
  expect(mock.stats().calls).toBe(4); // maxInFlightTasks
  const del = await cancelJob(base, sub.body.job_id);
  expect(del.status).toBe(200);
  expect(del.body.status).toBe('cancelled');
  const view = await waitForJob(base, sub.body.job_id);
  expect(view.status).toBe('cancelled');
  expect(view.results!.map((r) => r.error?.code)).toEqual(Array(10).fill('cancelled'));
  await new Promise((r) => setTimeout(r, 200));
  expect(mock.stats().calls).toBe(4);
  // the cancelled calls did not count as upstream failures
  const ready = await fetch(`${base}/readyz`);
  expect(ready.status).toBe(200);
});

test('Idempotency-Key: same key and body → the same job, run once; another body → 422 naming the key', async () => {
  const body = { tasks: tasks(2, 'idem') };
  const a = await submitAsync(base, body, { 'idempotency-key': 'k-1' });
  await waitForJob(base, a.body.job_id);
  const calls = mock.stats().calls;
  const b = await submitAsync(base, body, { 'idempotency-key': 'k-1' });
  expect(b.status).toBe(202);
  expect(b.body).toEqual({ job_id: a.body.job_id, status: 'succeeded', durable });
  const sync = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' }, body: JSON.stringify(body) });
  expect(((await sync.json()) as { job_id: string }).job_id).toBe(a.body.job_id);
  expect(mock.stats().calls).toBe(calls);
  const c = await submitAsync(base, { tasks: tasks(3, 'idem') }, { 'idempotency-key': 'k-1' });
  expect(c.status).toBe(422);
  expect(c.body.error!.message).toMatch(/Idempotency-Key 'k-1'/);
});

test('a steps job runs async too: GET shows its steps', async () => {
  const sub = await submitAsync(base, { steps: [{ id: 'a', prompt: 'one' }, { id: 'b', prompt: 'two {{steps.a.content}}', depends_on: ['a'] }] });
  expect(sub.status).toBe(202);
  const view = await waitForJob(base, sub.body.job_id);
  expect(view.status).toBe('succeeded');
  expect(view.steps!.map((s) => s.id)).toEqual(['a', 'b']);
  expect(view.results).toBeUndefined();
});
});
