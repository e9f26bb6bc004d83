import * as grpc from '@grpc/grpc-js';
import { Dispatcher } from '../../src/coordination/dispatcher';
import { PeerPool } from '../../src/coordination/peers';
import { agentService, ExecuteRequest, ExecuteResponse, SERVER_OPTIONS, toWireResult } from '../../src/grpc/service';
import { createLogger } from '../../src/logger';
import { RuntimeMetrics } from '../../src/metrics';
import { TaskErrorCode, TaskResult } from '../../src/types';

// Two fake callee pods of one role, each answering from a script, behind a
// real gRPC server: what the dispatcher does with each kind of answer.

type Answer = { ok: true } | { ok: false; code: TaskErrorCode };
interface FakePod {
  address: string;
  calls: number;
  server: grpc.Server;
}

async function startPod(name: string, answer: Answer): Promise<FakePod> {
  const server = new grpc.Server(SERVER_OPTIONS);
  const pod: FakePod = { address: '', calls: 0, server };
  server.addService(agentService().service, {
    Execute: (call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      pod.calls += 1;
      const results = call.request.tasks.map((t) => {
        const r: TaskResult = answer.ok
          ? { id: t.id, ok: true, model: 'm', content: `from ${name}`, costUsd: 0.001, attempts: 1, latencyMs: 1, agentId: name }
          : { id: t.id, ok: false, model: 'm', costUsd: 0, attempts: 4, latencyMs: 1, agentId: name, error: { code: answer.code, message: `${answer.code} at ${name}` } };
        return toWireResult(r);
      });
      cb(null, { results });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  pod.address = `127.0.0.1:${port}`;
  return pod;
}

let pods: FakePod[] = [];
let pool: PeerPool | undefined;

async function dispatcherFor(answers: Answer[]): Promise<Dispatcher> {
  pods = await Promise.all(answers.map((a, i) => startPod(`pod-${i}`, a)));
  pool = new PeerPool(
    [{ role: 'worker', kind: 'worker', address: 'worker.test.svc:50051', maxInFlightTasks: 8 }],
    { 'worker.test.svc': pods.map((p) => p.address) },
    createLogger({ level: 'silent' }),
  );
  await pool.start();
  return new Dispatcher({ pool, fanOut: 4, metrics: new RuntimeMetrics(), logger: createLogger({ level: 'silent' }), agentId: 'coordinator-0' });
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
    expect(r.content).toBe('from pod-1');
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
