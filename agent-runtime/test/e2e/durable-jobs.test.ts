import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { tasks } from '../support/cluster';
import { envFor, workerConfig } from '../support/fixtures';
import { getJob, readEvents, submitAsync, waitForJob } from '../support/jobs';
import { NatsServer } from '../../src/local/nats';
import { startTestNats } from '../support/nats';

// Durable jobs across processes: two entry replicas (`agent-runtime serve`)
// share one JetStream job store on a real nats-server. The replica running
// a job is killed with SIGKILL; the other one finishes the job, running only
// the tasks without a result.

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli.js');
const KEY = 'sk-test-0123456789';
let nats: NatsServer;
let mock: MockUpstream;
const children: ChildProcess[] = [];

interface Replica {
  id: string;
  url: string;
  child: ChildProcess;
}

async function serve(agentId: string, config: object): Promise<Replica> {
  const env = { ...process.env, ...envFor(config, { AGENT_ID: agentId, UPSTREAM_BASE_URL: mock.url, UPSTREAM_API_KEY: KEY, LOG_LEVEL: 'info' }) };
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"httpPort":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${agentId} exited ${code}: ${out.slice(-2000)}`)));
  });
  child.stdout!.resume();
  return { id: agentId, url: `http://127.0.0.1:${port}`, child };
}

beforeAll(async () => {
  nats = await startTestNats();
  mock = await startMockUpstream({ apiKey: KEY, latencyMs: 400, recordRequests: true });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await mock?.close();
  await nats?.stop();
});

const storeConfig = (tag: string) => workerConfig({ entry: true, concurrency: { maxInFlightTasks: 4 }, deadlines: { defaultMs: 60_000, maxMs: 120_000 }, jobStore: { url: nats.url, stream: `JOBS_${tag}`, consumer: `runners_${tag}`, bucket: `jobs_${tag}`, replicas: 1 } });

test('kill -9 of the replica running a job: the other finishes it; finished tasks are not run again, re-runs ≤ tasks in flight', async () => {
  const config = storeConfig('kill');
  const [a, b] = [await serve('entry-0', config), await serve('entry-1', config)];
  const sent = tasks(16, 'k');
  const sub = await submitAsync(a.url, { tasks: sent });
  expect(sub.status).toBe(202);
  expect(sub.body.durable).toBe(true);
  const jobId = sub.body.job_id;
  // the first results say which replica runs the job
  let before = (await getJob(b.url, jobId)).body;
  for (let i = 0; i < 600 && (before.results?.length ?? 0) < 4; i++) {
    await new Promise((r) => setTimeout(r, 25));
    before = (await getJob(b.url, jobId)).body;
  }
  const runnerId = before.results![0].agent_id;
  expect([a.id, b.id]).toContain(runnerId);
  const [runner, survivor] = runnerId === a.id ? [a, b] : [b, a];
  // the results stored at the kill (a snapshot taken just before it: more may land in between)
  const stored = new Set(before.results!.map((r) => r.id));
  runner.child.kill('SIGKILL');
  const view = await waitForJob(survivor.url, jobId, 90_000);
  expect(view.status).toBe('succeeded');
  // exactly one result per task id
  expect(view.results!.map((r) => r.id).sort()).toEqual(sent.map((t) => t.id).sort());
  // upstream calls per task: the ones stored before the kill were never sent again
  const calls = new Map<string, number>();
  for (const req of mock.requests()) {
    const content = String(req.messages?.[req.messages.length - 1]?.content ?? '');
    const t = sent.find((s) => s.prompt === content);
    if (t) calls.set(t.id, (calls.get(t.id) ?? 0) + 1);
  }
  for (const id of stored) expect(calls.get(id)).toBe(1);
  const reruns = [...calls.values()].reduce((s, n) => s + n - 1, 0);
  expect(reruns).toBeLessThanOrEqual(4); // maxInFlightTasks: at most what was in flight at the kill
  expect(sent.every((t) => (calls.get(t.id) ?? 0) >= 1)).toBe(true);
  // the survivor's events stream has every result once, then done
  const evs = await readEvents(survivor.url, jobId);
  expect(evs.events.filter((e) => e.event === 'result')).toHaveLength(16);
  expect(evs.events[evs.events.length - 1].event).toBe('done');
  survivor.child.kill('SIGTERM');
}, 120_000);

test('NATS unreachable at submit: a 503 with the reason, and the entry keeps serving', async () => {
  const r = await serve('entry-2', storeConfig('down'));
  await nats.kill();
  try {
    let res = await submitAsync(r.url, { tasks: tasks(1) });
    for (let i = 0; i < 100 && res.status !== 503; i++) {
      await new Promise((x) => setTimeout(x, 50));
      res = await submitAsync(r.url, { tasks: tasks(1) });
    }
    expect(res.status).toBe(503);
    expect(res.body.error!.message).toMatch(/job store \(NATS at nats:\/\/127\.0\.0\.1:\d+\) is unreachable/);
    expect((await fetch(`${r.url}/healthz`)).status).toBe(200);
  } finally {
    await nats.start();
  }
  let ok = await submitAsync(r.url, { tasks: tasks(1) });
  for (let i = 0; i < 100 && ok.status !== 202; i++) {
    await new Promise((x) => setTimeout(x, 100));
    ok = await submitAsync(r.url, { tasks: tasks(1) });
  }
  expect(ok.status).toBe(202);
  expect((await waitForJob(r.url, ok.body.job_id)).status).toBe('succeeded');
  r.child.kill('SIGTERM');
}, 60_000);
