import * as grpc from '@grpc/grpc-js';
import { Dispatcher } from '../../src/coordination/dispatcher';
import { PeerPool } from '../../src/coordination/peers';
import { agentService, ExecuteRequest, ExecuteResponse, ResultBatch, SERVER_OPTIONS, TaskBatch, toWireResult } from '../../src/grpc/service';
import { createLogger } from '../../src/logger';
import { RuntimeMetrics } from '../../src/metrics';
import { TaskErrorCode, TaskResult } from '../../src/types';

// Two fake callee pods of one role, each answering from a script, behind a
// real gRPC server: what the dispatcher does with each kind of answer.

/**
 * ok / a task error / `breakAfter` results, then the session fails (the pod
 * died mid-stream) / `silent`: takes tasks and never answers (a hung pod).
 */
type Answer = { ok: true } | { ok: false; code: TaskErrorCode } | { breakAfter: number } | { silent: true };
interface FakePod {
  address: string;
  /** tasks received */
  calls: number;
  /** task batches received */
  batches: number;
  /** Session streams opened */
  sessions: number;
  requests: TaskBatch[];
  server: grpc.Server;
}

function resultFor(name: string, answer: Answer, t: { id: string; job_id?: string }): TaskResult {
  return 'code' in answer
    ? { id: t.id, ok: false, model: 'm', costUsd: 0, attempts: 4, latencyMs: 1, agentId: name, error: { code: answer.code, message: `${answer.code} at ${name}` } }
    : { id: t.id, ok: true, model: 'm', content: `from ${name} for ${t.job_id}`, costUsd: 0.001, attempts: 1, latencyMs: 1, agentId: name };
}

async function startPod(name: string, answer: Answer): Promise<FakePod> {
  const server = new grpc.Server(SERVER_OPTIONS);
  const pod: FakePod = { address: '', calls: 0, batches: 0, sessions: 0, requests: [], server };
  server.addService(agentService().service, {
    Execute: (_call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      cb({ code: grpc.status.UNIMPLEMENTED, details: 'the dispatcher must use Session' });
    },
    Session: (call: grpc.ServerDuplexStream<TaskBatch, ResultBatch>) => {
      pod.sessions += 1;
      let broken = false;
      call.on('data', (batch: TaskBatch) => {
        pod.batches += 1;
        pod.requests.push(batch);
        pod.calls += batch.tasks.length;
        if ('silent' in answer) return;
        // answer on a later turn, one message per result, in reverse order:
        // results stream back as they finish, not in request order
        setTimeout(() => {
          for (const [i, t] of [...batch.tasks].reverse().entries()) {
            if (broken) return;
            if ('breakAfter' in answer && i >= answer.breakAfter) {
              broken = true;
              call.emit('error', { code: grpc.status.UNAVAILABLE, details: `${name} went away` });
              return;
            }
            call.write({ results: [{ ...toWireResult(resultFor(name, answer, t)), seq: t.seq }] });
          }
        }, 5);
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

async function dispatcherFor(answers: Answer[], fanOut = 4, maxMessageBytes?: number): Promise<Dispatcher> {
  pods = await Promise.all(answers.map((a, i) => startPod(`pod-${i}`, a)));
  pool = new PeerPool(
    [{ role: 'worker', kind: 'worker', address: 'worker.test.svc:50051', maxInFlightTasks: 8 }],
    { 'worker.test.svc': pods.map((p) => p.address) },
    createLogger({ level: 'silent' }),
  );
  await pool.start();
  dispatcher = new Dispatcher({ pool, fanOut, metrics: new RuntimeMetrics(), logger: createLogger({ level: 'silent' }), agentId: 'coordinator-0', maxMessageBytes });
  return dispatcher;
}

let dispatcher: Dispatcher | undefined;
afterEach(async () => {
  dispatcher?.close();
  dispatcher = undefined;
  pool?.close();
  pool = undefined;
  await Promise.all(pods.map((p) => new Promise<void>((r) => p.server.tryShutdown(() => r()))));
  pods = [];
});

const task = { id: 't1', messages: [{ role: 'user' as const, content: 'hi' }] };

test.each(['upstream_error', 'timeout', 'rate_limited', 'circuit_open'] as TaskErrorCode[])(
  "a pod's transient upstream failure (%s) gets a second chance on another pod",
  async (code) => {
    const d = await dispatcherFor([{ ok: false, code }, { ok: true }]);
    // whichever pod is picked first, the answer must come from the healthy one
    const r = await d.dispatch('job', task, Date.now() + 5000, 0);
    expect(r.ok).toBe(true);
    expect(r.content).toBe('from pod-1 for job');
    expect(pods[1].calls).toBe(1);
    expect(pods[0].calls).toBeLessThanOrEqual(1);
    // upstream attempts are counted across pods
    expect(r.attempts).toBe(pods[0].calls * 4 + 1);
  },
);

test('when every pod fails the task against the upstream, that failure is the result: one call per pod, no loop', async () => {
  const d = await dispatcherFor([{ ok: false, code: 'upstream_error' }, { ok: false, code: 'upstream_error' }]);
  const started = Date.now();
  const r = await d.dispatch('job', task, Date.now() + 5000, 0);
  expect(r.ok).toBe(false);
  expect(r.error!.code).toBe('upstream_error');
  expect(r.error!.message).toMatch(/upstream_error at pod-\d/);
  expect(pods.map((p) => p.calls)).toEqual([1, 1]);
  expect(r.attempts).toBe(8);
  expect(Date.now() - started).toBeLessThan(2500); // it did not wait for the deadline
});

test.each(['bad_request', 'context_overflow', 'auth'] as TaskErrorCode[])('a permanent failure (%s) is returned at once, not re-dispatched', async (code) => {
  const d = await dispatcherFor([{ ok: false, code }, { ok: false, code }]);
  const r = await d.dispatch('job', task, Date.now() + 5000, 0);
  expect(r.error!.code).toBe(code);
  expect(pods[0].calls + pods[1].calls).toBe(1);
});

const job = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, messages: [{ role: 'user' as const, content: `task ${i}` }] }));

test('a fan-out sends one batch per pod per turn on one session, and every task gets its own result exactly once', async () => {
  const d = await dispatcherFor([{ ok: true }, { ok: true }], 16);
  const tasks = job(16);
  const results = await d.runJob('job-a', tasks, Date.now() + 5000, 0);
  expect(results.map((r) => r.id)).toEqual(tasks.map((t) => t.id));
  expect(results.every((r) => r.ok)).toBe(true);
  expect(pods[0].calls + pods[1].calls).toBe(16); // each task sent once
  expect(pods[0].batches + pods[1].batches).toBe(2); // one message per pod for the whole wave
  for (const req of pods.flatMap((p) => p.requests)) {
    expect(req.hop).toBe(1);
    for (const t of req.tasks) {
      expect(t.job_id).toBe('job-a');
      expect(Number(t.deadline_unix_ms)).toBeGreaterThan(Date.now());
    }
  }
});

test('jobs one after another reuse the session with each pod: no stream is set up per job', async () => {
  const d = await dispatcherFor([{ ok: true }, { ok: true }], 4);
  for (let j = 0; j < 5; j++) {
    const results = await d.runJob(`job-${j}`, job(8), Date.now() + 5000, 0);
    expect(results.every((r) => r.ok && r.content === `from ${r.agentId} for job-${j}`)).toBe(true);
  }
  expect(pods.map((p) => p.sessions)).toEqual([1, 1]);
  expect(pods[0].calls + pods[1].calls).toBe(40);
});

test("tasks of two jobs with the same ids, sent to one pod at once, share a batch and each get their own job's result", async () => {
  const d = await dispatcherFor([{ ok: true }], 8);
  const deadline = Date.now() + 5000;
  const [a, b] = await Promise.all([d.runJob('job-a', job(3), deadline, 0), d.runJob('job-b', job(3), deadline, 0)]);
  expect(a.map((r) => r.content)).toEqual(['from pod-0 for job-a', 'from pod-0 for job-a', 'from pod-0 for job-a']);
  expect(b.map((r) => r.content)).toEqual(['from pod-0 for job-b', 'from pod-0 for job-b', 'from pod-0 for job-b']);
  expect(pods[0].calls).toBe(6);
  expect(pods[0].batches).toBe(1); // results are matched by seq, not by task id
  expect(new Set(pods[0].requests[0].tasks.map((t) => t.seq)).size).toBe(6);
});

test('a session that fails mid-stream: the results already streamed count, the rest are re-dispatched once each', async () => {
  const d = await dispatcherFor([{ breakAfter: 2 }, { ok: true }], 16);
  const tasks = job(12);
  const results = await d.runJob('job', tasks, Date.now() + 5000, 0);
  expect(results.map((r) => r.id)).toEqual(tasks.map((t) => t.id));
  expect(results.every((r) => r.ok)).toBe(true);
  const fromBroken = results.filter((r) => r.agentId === 'pod-0').length;
  // pod-0 streamed 2 results per batch before failing; everything else came from pod-1
  expect(fromBroken).toBe(2 * pods[0].batches);
  expect(results.filter((r) => r.agentId === 'pod-1').length).toBe(12 - fromBroken);
  // once its session broke, pod-0 was sent nothing more in this job
  expect(pods[0].sessions).toBe(1);
});

test('a pod that takes a task and never answers: the task ends with deadline_exceeded at its deadline, not later', async () => {
  const d = await dispatcherFor([{ silent: true }], 4);
  const started = Date.now();
  const r = await d.dispatch('job', task, Date.now() + 400, 0);
  const took = Date.now() - started;
  expect(r.error!.code).toBe('deadline_exceeded');
  expect(took).toBeGreaterThanOrEqual(300);
  expect(took).toBeLessThan(1500);
  expect(pods[0].calls).toBe(1);
});

test("a task larger than a callee's message limit is refused as bad_request without being sent; the others still go", async () => {
  const d = await dispatcherFor([{ ok: true }], 4, 64 * 1024);
  const big = { id: 'big', messages: [{ role: 'user' as const, content: 'x'.repeat(70 * 1024) }] };
  const [r, small] = await Promise.all([d.dispatch('job', big, Date.now() + 5000, 0), d.dispatch('job', task, Date.now() + 5000, 0)]);
  expect(r.error!.code).toBe('bad_request');
  expect(r.error!.message).toMatch(/maxRequestBytes/);
  expect(small.ok).toBe(true);
  expect(pods[0].calls).toBe(1);
});

test('tasks that together pass the message limit go in several batches, each under it', async () => {
  const d = await dispatcherFor([{ ok: true }], 16, 64 * 1024);
  const tasks = Array.from({ length: 12 }, (_, i) => ({ id: `t${i}`, messages: [{ role: 'user' as const, content: 'y'.repeat(6 * 1024) }] }));
  const results = await d.runJob('job', tasks, Date.now() + 5000, 0);
  expect(results.every((r) => r.ok)).toBe(true);
  expect(pods[0].batches).toBeGreaterThan(1);
  for (const b of pods[0].requests) expect(b.tasks.reduce((s, t) => s + t.messages[0].content.length, 0)).toBeLessThan(64 * 1024);
});

test('a draining pod hands tasks back and gets no new ones for a while; they go to the other pod', async () => {
  const d = await dispatcherFor([{ ok: false, code: 'unavailable' }, { ok: true }], 4);
  const results = await d.runJob('job', job(8), Date.now() + 5000, 0);
  expect(results.every((r) => r.ok && r.agentId === 'pod-1')).toBe(true);
  expect(pods[0].calls).toBeLessThanOrEqual(2); // only what was sent before its first answer came back
});

describe('routing by role through peers[].roles', () => {
  /** pod-0 is a supervisor that has `deep` below it, pod-1 a worker `w`. */
  async function routed(): Promise<Dispatcher> {
    pods = await Promise.all([startPod('pod-0', { ok: true }), startPod('pod-1', { ok: true })]);
    pool = new PeerPool(
      [
        { role: 'sup', kind: 'supervisor', address: 'sup.test.svc:50051', maxInFlightTasks: 8, models: ['m1'], roles: ['sup', 'deep'] },
        { role: 'w', kind: 'worker', address: 'w.test.svc:50051', maxInFlightTasks: 8, models: ['m2'] },
      ],
      { 'sup.test.svc': [pods[0].address], 'w.test.svc': [pods[1].address] },
      createLogger({ level: 'silent' }),
    );
    await pool.start();
    dispatcher = new Dispatcher({ pool, fanOut: 4, metrics: new RuntimeMetrics(), logger: createLogger({ level: 'silent' }), agentId: 'self-0', role: 'self' });
    return dispatcher;
  }

  test('a role below a supervisor goes to that supervisor, with the role passed down; a direct role to its callee', async () => {
    const d = await routed();
    const deep = await d.dispatch('job', { ...task, role: 'deep' }, Date.now() + 5000, 0);
    expect(deep.content).toBe('from pod-0 for job');
    expect(pods[0].requests[0].tasks[0].role).toBe('deep');
    const w = await d.dispatch('job', { ...task, role: 'w' }, Date.now() + 5000, 0);
    expect(w.content).toBe('from pod-1 for job');
  });

  test('an unreachable role, or a model its way does not serve, is a bad_request that names what is reachable', async () => {
    const d = await routed();
    const nobody = await d.dispatch('job', { ...task, role: 'nobody' }, Date.now() + 5000, 0);
    expect(nobody.error).toEqual({ code: 'bad_request', message: "role 'nobody' is not a callee of this agent nor below one (reachable: sup, deep, w)" });
    const wrongModel = await d.dispatch('job', { ...task, role: 'deep', model: 'm2' }, Date.now() + 5000, 0);
    expect(wrongModel.error!.message).toMatch(/no callee accepts model 'm2' on the way to role 'deep'/);
    expect(pods[0].calls + pods[1].calls).toBe(0);
  });

  test("a task for the agent's own role (a supervisor handed it down) may go to any callee", async () => {
    const d = await routed();
    const r = await d.dispatch('job', { ...task, role: 'self', model: 'm2' }, Date.now() + 5000, 0);
    expect(r.ok).toBe(true);
    expect(pods[1].calls).toBe(1);
  });
});
