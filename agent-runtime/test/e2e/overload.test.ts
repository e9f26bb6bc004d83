import { readRoles } from '../../src/local/launcher';
import { startLocalCluster, LocalCluster } from '../../src/local/launcher';
import { startMockUpstream, MockUpstream } from '../../src/mock/upstream';
import { synthesizedManifests, TOPOLOGIES } from '../support/cluster';

// Admission end to end, through local mode booted from the synthesized
// manifests: twice the load the callees can hold loses no task and answers
// none twice, and a job that could not start in time is refused at once
// with 503 and Retry-After.

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let manifests: ReturnType<typeof synthesizedManifests>;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 20 });
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  mock.reset();
});
afterAll(async () => {
  await mock.close();
});

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { results?: Array<{ id: string; ok: boolean; error: { code: string } | null }>; error?: { code?: string; message: string } };
}

async function post(url: string, body: unknown): Promise<Answer> {
  const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Answer['body'] };
}

/** Slots the entry's callees hold for `model` at once (maxInFlightTasks of each callee serving it; one pod each in local mode). */
function entryCapacity(file: string, model: string): number {
  const entry = JSON.parse(readRoles(file).find((r: { entry: boolean }) => r.entry)!.configJson);
  return entry.peers.filter((p: { models?: string[] }) => !p.models || p.models.includes(model)).reduce((n: number, p: { maxInFlightTasks: number }) => n + p.maxInFlightTasks, 0);
}

test.each(TOPOLOGIES)('%s: sustained load at twice the capacity loses no task and answers none twice', async (topology) => {
  cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
  const clients = 2 * entryCapacity(manifests[topology], 'gpt-4.1');
  const jobs = clients * 4;
  const answers: Array<{ id: string; a: Answer }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < jobs) {
        const id = `job-${next++}`;
        answers.push({ id, a: await post(cluster!.entryUrl, { tasks: [{ id, prompt: `overload ${id}`, model: 'gpt-4.1' }] }) });
      }
    }),
  );
  expect(answers).toHaveLength(jobs);
  let ok = 0;
  for (const { id, a } of answers) {
    // each job: exactly one result, for its own task (or a whole-job refusal, which spent nothing)
    if (a.status === 503) {
      expect(a.retryAfter).toMatch(/^\d+$/);
      continue;
    }
    expect(a.status).toBe(200);
    expect(a.body.results!.map((r) => r.id)).toEqual([id]);
    if (a.body.results![0].ok) ok++;
  }
  // with a 30 s deadline and a 20 ms upstream, waiting in turn serves everyone
  expect(ok).toBe(jobs);
  // and no task reached the upstream twice
  expect(mock.stats().calls).toBe(ok);
  if (topology === 'hub-and-spoke') {
    // the coordinator is its workers' only caller and they free each slot as its result goes back,
    // so its count of their slots is right: no task was refused and sent again
    expect(await entryMetrics()).not.toMatch(/agent_redispatches_total\{[^}]*reason="overloaded"/);
  }
});

const entryMetrics = async () => (await fetch(`${cluster!.entryUrl}/metrics`)).text();
const metric = (text: string, name: string, labels: string) => Number(new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
const GPT_CALLEES = 'target="task-executor-a,task-executor-b"';

test('hub-and-spoke: a job whose client goes away leaves the queue at once and never reaches the upstream', async () => {
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
  mock.setBehaviour({ latencyMs: 1500 });
  const capacity = entryCapacity(manifests['hub-and-spoke'], 'gpt-4.1');
  // capacity + 3 tasks: every slot taken, 3 waiting
  const filling = Array.from({ length: (capacity + 3) / 5 }, (_, j) => post(cluster!.entryUrl, { tasks: Array.from({ length: 5 }, (_, i) => ({ id: `f${j}-${i}`, prompt: `fill ${j} ${i}`, model: 'gpt-4.1' })) }));
  const until = async (what: (text: string) => boolean) => {
    for (let text = await entryMetrics(); !what(text); text = await entryMetrics()) await new Promise((r) => setTimeout(r, 20));
  };
  await until((t) => metric(t, 'agent_admission_queue_length', GPT_CALLEES) === 3);
  const client = new AbortController();
  const gone = fetch(`${cluster.entryUrl}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tasks: [{ id: 'abandoned', prompt: 'nobody waits for me', model: 'gpt-4.1' }] }),
    signal: client.signal,
  }).catch((e: Error) => e.name);
  await until((t) => metric(t, 'agent_admission_queue_length', GPT_CALLEES) === 4);
  client.abort();
  expect(await gone).toBe('AbortError');
  await until((t) => metric(t, 'agent_admission_queue_exits_total', 'reason="cancelled"') === 1);
  expect(metric(await entryMetrics(), 'agent_admission_queue_length', GPT_CALLEES)).toBe(3);
  const filled = await Promise.all(filling);
  expect(filled.every((f) => f.status === 200 && f.body.results!.every((r) => r.ok))).toBe(true);
  expect(mock.stats().calls).toBe(capacity + 3);
});

test('hub-and-spoke: a job that could not start and finish before its deadline is refused at once with 503 and Retry-After; one with time enough waits its turn', async () => {
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 60_000 });
  mock.setBehaviour({ latencyMs: 300 });
  // one trip teaches the entry's queue the service time of the gpt-4.1 executors (about 300 ms)
  expect((await post(cluster.entryUrl, { tasks: [{ prompt: 'warm', model: 'gpt-4.1' }] })).status).toBe(200);
  const capacity = entryCapacity(manifests['hub-and-spoke'], 'gpt-4.1');
  // fill every slot and put some tasks in the queue: jobs of 5 (the entry's fan-out), 8 more tasks than slots
  const filling = Array.from({ length: (capacity + 8) / 5 + 1 }, (_, j) => post(cluster!.entryUrl, { tasks: Array.from({ length: 5 }, (_, i) => ({ id: `f${j}-${i}`, prompt: `fill ${j} ${i}`, model: 'gpt-4.1' })) }));
  // until every slot is taken and at least 8 tasks wait in the entry's queue
  for (let queued = 0; queued < 8; ) {
    await new Promise((r) => setTimeout(r, 20));
    const text = await (await fetch(`${cluster.entryUrl}/metrics`)).text();
    queued = Number(/^agent_admission_queue_length\{[^}]*target="task-executor-a,task-executor-b"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
  }
  const callsBefore = mock.stats().calls;
  // behind 8 or more waiters its slot comes after about 9 x 300 / 32 ms, and it needs 300 ms more: past 360 ms less the 50 ms margin
  const shed = await post(cluster.entryUrl, { deadline_ms: 360, tasks: [{ id: 'hurried', prompt: 'no time', model: 'gpt-4.1' }, { id: 'hurried-2', prompt: 'no time', model: 'gpt-4.1' }] });
  expect(shed.status).toBe(503);
  expect(shed.body.error!.code).toBe('overloaded');
  expect(shed.body.error!.message).toMatch(/none of the job's 2 task\(s\) could start/);
  expect(Number(shed.retryAfter)).toBeGreaterThanOrEqual(1);
  const patient = post(cluster.entryUrl, { deadline_ms: 20_000, tasks: [{ id: 'patient', prompt: 'has time', model: 'gpt-4.1' }] });
  const filled = await Promise.all(filling);
  expect(filled.every((f) => f.status === 200 && f.body.results!.every((r) => r.ok))).toBe(true);
  const p = await patient;
  expect(p.status).toBe(200);
  expect(p.body.results![0].ok).toBe(true);
  // the refused job cost nothing: every upstream call belongs to a filling or the patient task
  expect(mock.stats().calls).toBe(1 + filled.length * 5 + 1);
  expect(callsBefore).toBeLessThanOrEqual(capacity + 1);
});
