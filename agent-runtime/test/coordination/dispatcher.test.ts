import * as grpc from '@grpc/grpc-js';
import { Dispatcher } from '../../src/coordination/dispatcher';
import { PeerPool } from '../../src/coordination/peers';
import { agentService, ExecuteRequest, ExecuteResponse, SERVER_OPTIONS, toWireResult, WireResult } from '../../src/grpc/service';
import { createLogger } from '../../src/logger';
import { RuntimeMetrics } from '../../src/metrics';
import { TaskErrorCode, TaskResult } from '../../src/types';

// Two fake callee pods of one role, each answering from a script, behind a
// real gRPC server: what the dispatcher does with each kind of answer.

/** ok / a task error / one result then the call fails (the pod died mid-stream). */
type Answer = { ok: true } | { ok: false; code: TaskErrorCode } | { breakAfter: number };
interface FakePod {
  address: string;
  /** tasks received */
  calls: number;
  /** ExecuteStream calls received */
  rpcs: number;
  requests: ExecuteRequest[];
  server: grpc.Server;
}

function resultFor(name: string, answer: Answer, t: { id: string; job_id?: string }): TaskResult {
  return 'code' in answer
    ? { id: t.id, ok: false, model: 'm', costUsd: 0, attempts: 4, latencyMs: 1, agentId: name, error: { code: answer.code, message: `${answer.code} at ${name}` } }
    : { id: t.id, ok: true, model: 'm', content: `from ${name} for ${t.job_id}`, costUsd: 0.001, attempts: 1, latencyMs: 1, agentId: name };
}

async function startPod(name: string, answer: Answer): Promise<FakePod> {
  const server = new grpc.Server(SERVER_OPTIONS);
  const pod: FakePod = { address: '', calls: 0, rpcs: 0, requests: [], server };
  server.addService(agentService().service, {
    Execute: (_call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      cb({ code: grpc.status.UNIMPLEMENTED, details: 'the dispatcher must use ExecuteStream' });
    },
    ExecuteStream: (call: grpc.ServerWritableStream<ExecuteRequest, WireResult>) => {
      pod.rpcs += 1;
      pod.requests.push(call.request);
      const tasks = call.request.tasks;
      pod.calls += tasks.length;
      // answer on a later turn, in reverse order: results stream back as they finish, not in request order
      setTimeout(() => {
        for (const [i, t] of [...tasks].reverse().entries()) {
          if ('breakAfter' in answer && i >= answer.breakAfter) {
            call.emit('error', { code: grpc.status.UNAVAILABLE, details: `${name} went away` });
            return;
          }
          call.write(toWireResult(resultFor(name, answer, t)));
        }
        call.end();
      }, 5);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  pod.address = `127.0.0.1:${port}`;
  return pod;
}

let pods: FakePod[] = [];
let pool: PeerPool | undefined;

async function dispatcherFor(answers: Answer[], fanOut = 4): Promise<Dispatcher> {
  pods = await Promise.all(answers.map((a, i) => startPod(`pod-${i}`, a)));
  pool = new PeerPool(
    [{ role: 'worker', kind: 'worker', address: 'worker.test.svc:50051', maxInFlightTasks: 8 }],
    { 'worker.test.svc': pods.map((p) => p.address) },
    createLogger({ level: 'silent' }),
  );
  await pool.start();
  return new Dispatcher({ pool, fanOut, metrics: new RuntimeMetrics(), logger: createLogger({ level: 'silent' }), agentId: 'coordinator-0' });
}

afterEach(async () => {
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

test('a fan-out shares one call per pod per turn, and every task gets its own result exactly once', async () => {
  const d = await dispatcherFor([{ ok: true }, { ok: true }], 16);
  const tasks = job(16);
  const results = await d.runJob('job-a', tasks, Date.now() + 5000, 0);
  expect(results.map((r) => r.id)).toEqual(tasks.map((t) => t.id));
  expect(results.every((r) => r.ok)).toBe(true);
  expect(pods[0].calls + pods[1].calls).toBe(16); // each task sent once
  expect(pods[0].rpcs + pods[1].rpcs).toBe(2); // one call per pod for the whole wave
  for (const req of pods.flatMap((p) => p.requests)) {
    for (const t of req.tasks) {
      expect(t.job_id).toBe('job-a');
      expect(Number(t.deadline_unix_ms)).toBeGreaterThan(Date.now());
    }
  }
});

test('tasks of two jobs with the same ids, sent to one pod at once, each get their own job\'s result', async () => {
  const d = await dispatcherFor([{ ok: true }], 8);
  const deadline = Date.now() + 5000;
  const [a, b] = await Promise.all([d.runJob('job-a', job(3), deadline, 0), d.runJob('job-b', job(3), deadline, 0)]);
  expect(a.map((r) => r.content)).toEqual(['from pod-0 for job-a', 'from pod-0 for job-a', 'from pod-0 for job-a']);
  expect(b.map((r) => r.content)).toEqual(['from pod-0 for job-b', 'from pod-0 for job-b', 'from pod-0 for job-b']);
  expect(pods[0].calls).toBe(6);
  expect(pods[0].rpcs).toBe(2); // same ids cannot share a call
});

test('a call that fails mid-stream: the results already streamed count, the rest are re-dispatched once each', async () => {
  const d = await dispatcherFor([{ breakAfter: 2 }, { ok: true }], 16);
  const tasks = job(12);
  const results = await d.runJob('job', tasks, Date.now() + 5000, 0);
  expect(results.map((r) => r.id)).toEqual(tasks.map((t) => t.id));
  expect(results.every((r) => r.ok)).toBe(true);
  const fromBroken = results.filter((r) => r.agentId === 'pod-0').length;
  // pod-0 streamed 2 results per call before failing; everything else came from pod-1
  expect(fromBroken).toBe(2 * pods[0].rpcs);
  expect(results.filter((r) => r.agentId === 'pod-1').length).toBe(12 - fromBroken);
});
