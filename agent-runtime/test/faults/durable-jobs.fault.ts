import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { synthesizedManifests, tasks, TOPOLOGIES, TopologyName } from '../support/cluster';
import { getJob, JobViewJson, submitAsync, waitForJob } from '../support/jobs';

// Durable jobs under faults (issue 11), in each topology run locally from the
// constructs' manifests with their JetStream job store (local mode starts a
// nats-server and restarts a dead agent, as the kubelet would):
// - kill -9 of the entry running a job: the job finishes after the restart;
//   tasks with a stored result are not sent upstream again; each task id has
//   one result; re-runs are at most the entry's fan-out window (what it can
//   have in flight);
// - NATS restarted mid-job: the job finishes, each task once;
// - NATS unreachable at submit: a 503 that says so, nothing stored.
const OVERRIDES = { attemptTimeoutMs: 1000, drainSeconds: 3, retryInitialDelayMs: 50, retryMaxDelayMs: 400, maxInFlightTasks: 32, jobStore: { jetStream: {} } };
const API_KEY = 'sk-fault-matrix-123456';
const JOB_DEADLINE_MS = 90_000;

let mock: MockUpstream;
let manifests: Record<TopologyName, string>;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  manifests = synthesizedManifests(OVERRIDES);
  mock = await startMockUpstream({ apiKey: API_KEY, recordRequests: true });
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  mock.reset();
});
afterAll(async () => {
  await mock.close();
});

async function boot(topology: TopologyName): Promise<LocalCluster> {
  cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 90_000 });
  return cluster;
}

const entryOf = (c: LocalCluster) => c.roles.find((r) => r.entry)!;
const configOf = (c: LocalCluster) => JSON.parse(entryOf(c).configJson) as { fanOut: { concurrency: number }; jobStore: { stream: string; bucket: string } };

/** Upstream calls per task id of `sent` (the mock's request log, matched by prompt). */
function callsPerTask(sent: Array<{ id: string; prompt: string }>): Map<string, number> {
  const byPrompt = new Map(sent.map((t) => [t.prompt, t.id]));
  const calls = new Map<string, number>();
  for (const req of mock.requests()) {
    const msgs = req.messages ?? [];
    for (const m of msgs) {
      const id = byPrompt.get(String(m.content ?? ''));
      if (id) {
        calls.set(id, (calls.get(id) ?? 0) + 1);
        break;
      }
    }
  }
  return calls;
}

async function resultsSoFar(url: string, id: string, atLeast: number): Promise<JobViewJson> {
  for (let i = 0; i < 1200; i++) {
    const r = await getJob(url, id);
    if ((r.body.results?.length ?? 0) >= atLeast) return r.body;
    await new Promise((x) => setTimeout(x, 25));
  }
  throw new Error(`job ${id}: fewer than ${atLeast} results after 30 s`);
}

function exactlyOne(sent: Array<{ id: string }>, view: JobViewJson) {
  const ids = view.results!.map((r) => r.id).sort();
  expect(ids).toEqual(sent.map((t) => t.id).sort());
}

describe.each(TOPOLOGIES)('%s', (topology) => {
  test('kill -9 of the entry running a durable job: it finishes after the restart, finished tasks not run again, re-runs within the fan-out window', async () => {
    const c = await boot(topology);
    const entry = entryOf(c).name;
    const window = configOf(c).fanOut.concurrency;
    mock.setBehaviour({ latencyMs: 150 });
    const sent = tasks(40, `kill-${topology}-`);
    const sub = await submitAsync(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS });
    expect(sub.status).toBe(202);
    expect(sub.body.durable).toBe(true);
    const before = await resultsSoFar(c.entryUrl, sub.body.job_id, 8);
    const stored = new Set(before.results!.map((r) => r.id));
    c.kill(entry, 0, 'SIGKILL');
    await c.ready(entry, 0, 90_000);
    const view = await waitForJob(c.entryUrl, sub.body.job_id, 120_000);
    expect(view.status).toBe('succeeded');
    exactlyOne(sent, view);
    const calls = callsPerTask(sent);
    for (const id of stored) expect(calls.get(id)).toBe(1);
    for (const t of sent) expect(calls.get(t.id) ?? 0).toBeGreaterThanOrEqual(1);
    const reruns = [...calls.values()].reduce((s, n) => s + n - 1, 0);
    expect(reruns).toBeLessThanOrEqual(window);
    process.stdout.write(`  [fault] ${topology} kill -9 ${entry} mid-job: 40/40 answered once, ${stored.size} stored before the kill not re-sent, ${reruns} re-run (window ${window})\n`);
  }, 240_000);

  test('NATS restarted mid-job: the job still finishes, each task once', async () => {
    const c = await boot(topology);
    mock.setBehaviour({ latencyMs: 150 });
    const sent = tasks(30, `nats-${topology}-`);
    const sub = await submitAsync(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS });
    await resultsSoFar(c.entryUrl, sub.body.job_id, 5);
    await c.nats!.restart({ hard: true });
    const view = await waitForJob(c.entryUrl, sub.body.job_id, 120_000);
    expect(view.status).toBe('succeeded');
    exactlyOne(sent, view);
    process.stdout.write(`  [fault] ${topology} NATS restarted mid-job: 30/30 answered once, success ${view.success_rate * 100} %\n`);
  }, 240_000);

  test('NATS unreachable at submit: a clear 503, nothing half-written; submits work again once it is back', async () => {
    const c = await boot(topology);
    const { stream, bucket } = configOf(c).jobStore;
    await c.nats!.kill();
    let res = await submitAsync(c.entryUrl, { tasks: tasks(3) }, { 'idempotency-key': 'down' });
    for (let i = 0; i < 100 && res.status !== 503; i++) {
      await new Promise((x) => setTimeout(x, 50));
      res = await submitAsync(c.entryUrl, { tasks: tasks(3) }, { 'idempotency-key': 'down' });
    }
    expect(res.status).toBe(503);
    expect(res.body.error!.message).toMatch(/job store \(NATS at nats:\/\/127\.0\.0\.1:\d+\) is unreachable.*nothing was stored/);
    await c.nats!.start();
    const nc = await connect({ servers: c.natsUrl! });
    try {
      const keys: string[] = [];
      for await (const k of await (await new Kvm(nc).open(bucket)).keys()) keys.push(k);
      expect(keys).toEqual([]);
      expect((await (await jetstreamManager(nc)).streams.info(stream)).state.messages).toBe(0);
    } finally {
      await nc.close();
    }
    let ok = res;
    for (let i = 0; i < 100 && ok.status !== 202; i++) {
      await new Promise((x) => setTimeout(x, 100));
      ok = await submitAsync(c.entryUrl, { tasks: tasks(3) }, { 'idempotency-key': 'down' });
    }
    expect(ok.status).toBe(202);
    const after = await waitForJob(c.entryUrl, ok.body.job_id);
    expect({ status: after.status, errors: after.results!.map((r) => r.error) }).toEqual({ status: 'succeeded', errors: [null, null, null] });
    process.stdout.write(`  [fault] ${topology} NATS down at submit: 503 "${res.body.error!.message.slice(0, 60)}...", nothing stored\n`);
  }, 240_000);
});
