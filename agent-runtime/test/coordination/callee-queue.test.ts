import * as grpc from '@grpc/grpc-js';
import { Dispatcher } from '../../src/coordination/dispatcher';
import { PeerPool } from '../../src/coordination/peers';
import { agentService, ExecuteRequest, ExecuteResponse, ResultBatch, SERVER_OPTIONS, TaskBatch, toWireResult } from '../../src/grpc/service';
import { createLogger } from '../../src/logger';
import { RuntimeMetrics } from '../../src/metrics';
import { Task, TaskErrorCode, TaskResult } from '../../src/types';

// The dispatcher's admission to callee pods, against fake pods behind a
// real gRPC server: who waits, in what order, who leaves and how, and that
// a waiter that leaves has cost nothing (the pods never saw it).

/** What a pod does with the n-th task it receives (0-based): answer after `delayMs`, ok or with `code`. */
type Script = (n: number, id: string) => { delayMs: number; code?: TaskErrorCode };

interface FakePod {
  readonly name: string;
  address: string;
  received: string[];
  server: grpc.Server;
}

/** Every task id in the order pods received them, across pods. */
let arrivals: string[] = [];

async function startPod(name: string, script: Script): Promise<FakePod> {
  const server = new grpc.Server(SERVER_OPTIONS);
  const pod: FakePod = { name, address: '', received: [], server };
  server.addService(agentService().service, {
    Execute: (_c: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    Session: (call: grpc.ServerDuplexStream<TaskBatch, ResultBatch>) => {
      call.on('data', (batch: TaskBatch) => {
        for (const t of batch.tasks) {
          const n = pod.received.length;
          pod.received.push(t.id);
          arrivals.push(t.id);
          const { delayMs, code } = script(n, t.id);
          setTimeout(() => {
            const r: TaskResult = code
              ? { id: t.id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, agentId: name, error: { code, message: `${code} at ${name}` } }
              : { id: t.id, ok: true, model: 'm', content: `${t.id} by ${name}`, costUsd: 0.001, attempts: 1, latencyMs: delayMs, agentId: name };
            if (!call.destroyed && call.writable) call.write({ results: [{ ...toWireResult(r), seq: t.seq }] });
          }, delayMs);
        }
      });
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  pod.address = `127.0.0.1:${port}`;
  return pod;
}

let pods: FakePod[] = [];
let pool: PeerPool | undefined;
let dispatcher: Dispatcher | undefined;
let metrics: RuntimeMetrics;

/** A dispatcher in front of one role whose pods each hold `slots` tasks at once. */
async function setUp(scripts: Script[], slots: number, fanOut = 64): Promise<Dispatcher> {
  arrivals = [];
  pods = await Promise.all(scripts.map((s, i) => startPod(`pod-${i}`, s)));
  pool = new PeerPool([{ role: 'worker', kind: 'worker', address: 'worker.test.svc:50051', maxInFlightTasks: slots }], { 'worker.test.svc': pods.map((p) => p.address) }, createLogger({ level: 'silent' }));
  await pool.start();
  metrics = new RuntimeMetrics();
  dispatcher = new Dispatcher({ pool, fanOut, metrics, logger: createLogger({ level: 'silent' }), agentId: 'coordinator-0' });
  return dispatcher;
}

afterEach(async () => {
  dispatcher?.close();
  dispatcher = undefined;
  pool?.close();
  pool = undefined;
  await Promise.all(pods.map((p) => new Promise<void>((r) => p.server.tryShutdown(() => r()))));
  pods = [];
});

const task = (id: string): Task => ({ id, messages: [{ role: 'user', content: `task ${id}` }] });
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test('tasks that find every pod full are sent in arrival order as slots free, each exactly once', async () => {
  // one pod, one slot: everything after the first waits
  const d = await setUp([() => ({ delayMs: 15 })], 1);
  const ids = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const results: Array<Promise<TaskResult>> = [];
  for (const id of ids) {
    results.push(d.dispatch('job', task(id), Date.now() + 10_000, 0));
    await tick(1); // arrivals a moment apart: their order is the order they asked
  }
  const done = await Promise.all(results);
  expect(done.every((r) => r.ok)).toBe(true);
  expect(arrivals).toEqual(ids);
  expect(await metrics.text()).toMatch(/agent_admission_queue_wait_seconds_count\{stage="callees",target="worker"\} 10/);
});

test('a waiter whose deadline comes leaves the queue with deadline_exceeded; the pod never saw it', async () => {
  const d = await setUp([() => ({ delayMs: 400 })], 1);
  const first = d.dispatch('job', task('holds-the-slot'), Date.now() + 10_000, 0);
  await tick(5);
  const late = await d.dispatch('job', task('waits'), Date.now() + 150, 0);
  expect(late.ok).toBe(false);
  expect(late.error!.code).toBe('deadline_exceeded');
  expect(late.attempts).toBe(0);
  expect(late.costUsd).toBe(0);
  expect(pods[0].received).toEqual(['holds-the-slot']);
  expect((await first).ok).toBe(true);
  expect(await metrics.text()).toMatch(/agent_admission_queue_exits_total\{stage="callees",target="worker",reason="deadline"\} 1/);
});

test('a waiter leaves at once when its job is cancelled, and every waiter when the agent drains; none reach a pod', async () => {
  const d = await setUp([() => ({ delayMs: 300 })], 1);
  const first = d.dispatch('job', task('holds-the-slot'), Date.now() + 10_000, 0);
  await tick(5);
  const job = new AbortController();
  const cancelled = d.dispatch('job-2', task('cancelled'), Date.now() + 10_000, 0, job.signal);
  const drained = d.runJob('job-3', [task('d1'), task('d2')], Date.now() + 10_000, 0);
  await tick(5);
  job.abort(new Error('the client closed the connection'));
  const c = await cancelled;
  expect(c.error).toEqual({ code: 'cancelled', message: expect.stringMatching(/client closed the connection/) });
  d.drain();
  const dr = await drained;
  expect(dr.map((r) => r.error?.code)).toEqual(['cancelled', 'cancelled']);
  expect(dr[0].error!.message).toMatch(/draining/);
  expect((await first).ok).toBe(true);
  expect(pods[0].received).toEqual(['holds-the-slot']);
});

test('a task refused by a callee goes back to the head of the queue, ahead of tasks that arrived after it; slot accounting stays right', async () => {
  // pod-0 refuses its first task quickly; pod-1 holds its task long enough that everything after goes to
  // pod-0, one at a time (one slot each): the order pod-0 receives them is the order they were granted
  const d = await setUp([(n) => (n === 0 ? { delayMs: 5, code: 'overloaded' } : { delayMs: 20 }), () => ({ delayMs: 400 })], 1);
  const a = d.dispatch('job', task('A'), Date.now() + 10_000, 0);
  const b = d.dispatch('job', task('B'), Date.now() + 10_000, 0);
  await tick(2);
  const c = d.dispatch('job', task('C'), Date.now() + 10_000, 0);
  const dd = d.dispatch('job', task('D'), Date.now() + 10_000, 0);
  const results = await Promise.all([a, b, c, dd]);
  expect(results.every((r) => r.ok)).toBe(true);
  // A and B went first; A came back refused and was sent again before C and D
  expect(arrivals.slice(0, 2).sort()).toEqual(['A', 'B']);
  expect(arrivals.slice(2)).toEqual(['A', 'C', 'D']);
  expect(pods[0].received).toEqual(['A', 'A', 'C', 'D']);
  expect(pool!.all().map((e) => e.inFlight)).toEqual([0, 0]);
  // and the refusing pod got the task again once it had room: not a lost slot
  expect(pods[0].received.length + pods[1].received.length).toBe(5);
});

test('a task that could not finish before its deadline behind the queue is shed at once as overloaded with a retry hint, never sent', async () => {
  const d = await setUp([() => ({ delayMs: 100 })], 1);
  // one trip teaches the queue the service time (about 100 ms)
  expect((await d.dispatch('job', task('warm'), Date.now() + 10_000, 0)).ok).toBe(true);
  const holder = d.dispatch('job', task('holds-the-slot'), Date.now() + 10_000, 0);
  await tick(5);
  // behind the holder it would start in about 100 ms and end about 100 ms later: past a 200 ms deadline (less the 50 ms margin)
  const shed = await d.dispatch('job', task('shed'), Date.now() + 200, 0);
  expect(shed.error?.code).toBe('overloaded');
  expect(shed.retryAfterMs).toBeGreaterThan(0);
  expect(shed.attempts).toBe(0);
  // with time enough it waits its turn instead
  const patient = d.dispatch('job', task('patient'), Date.now() + 5_000, 0);
  expect((await holder).ok).toBe(true);
  expect((await patient).ok).toBe(true);
  expect(pods[0].received).toEqual(['warm', 'holds-the-slot', 'patient']);
  expect(await metrics.text()).toMatch(/agent_admission_queue_exits_total\{stage="callees",target="worker",reason="shed"\} 1/);
});

test('two jobs fanning out over the same full pods are served in arrival order, not one job starving the other', async () => {
  const d = await setUp([() => ({ delayMs: 10 }), () => ({ delayMs: 10 })], 2, 8);
  const jobA = d.runJob('a', Array.from({ length: 16 }, (_, i) => task(`a${i}`)), Date.now() + 10_000, 0);
  await tick(1);
  const jobB = d.runJob('b', Array.from({ length: 16 }, (_, i) => task(`b${i}`)), Date.now() + 10_000, 0);
  const [ra, rb] = await Promise.all([jobA, jobB]);
  expect([...ra, ...rb].every((r) => r.ok)).toBe(true);
  // B's first task does not wait for all of A: it is sent while A still has tasks left
  const firstB = arrivals.indexOf('b0');
  const lastA = arrivals.indexOf('a15');
  expect(firstB).toBeLessThan(lastA);
  expect(new Set(arrivals).size).toBe(32);
});
