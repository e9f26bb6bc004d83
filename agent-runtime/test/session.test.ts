import * as grpc from '@grpc/grpc-js';
import { AgentHandle, startAgent } from '../src/agent';
import { newClient, ResultBatch, TaskBatch, WireResult, WireTask } from '../src/grpc/service';
import { MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { silentLogger, workerConfig } from './support/fixtures';

// The callee's side of a Session (agent.proto), spoken to directly: what a
// worker answers to each task it is sent, and when.

const KEY = 'sk-test-0123456789';
let mock: MockUpstream;
let agent: AgentHandle;
let client: ReturnType<typeof newClient>;

beforeEach(async () => {
  mock = await startMockUpstream({ apiKey: KEY, latencyMs: 150 });
  agent = await startAgent(workerConfig({ concurrency: { maxInFlightTasks: 3 } }), {
    agentId: 'worker-0',
    role: 'task-executor-a',
    configFile: '-',
    httpPort: 0,
    grpcPort: 0,
    upstreamBaseUrl: mock.url,
    upstreamApiKey: KEY,
    peerEndpoints: {},
    logLevel: 'silent',
  }, { logger: silentLogger });
  client = newClient(`127.0.0.1:${agent.grpcPort}`);
});

afterEach(async () => {
  client.close();
  await agent.shutdown();
  await mock.close();
});

const wireTask = (seq: number, extra: Partial<WireTask> = {}): WireTask => ({
  id: 't',
  seq,
  job_id: `job-${seq}`,
  deadline_unix_ms: Date.now() + 5000,
  messages: [{ role: 'user', content: `task ${seq}` }],
  ...extra,
});

/** Opens a session, writes `batches`, and collects every result message until `count` results came. */
async function exchange(batches: TaskBatch[], count: number, afterWrite?: () => void): Promise<{ results: WireResult[]; messages: number }> {
  const call = client.Session(new grpc.Metadata(), {});
  const results: WireResult[] = [];
  let messages = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (b: ResultBatch) => {
      messages += 1;
      results.push(...b.results);
      if (results.length >= count) resolve();
    });
    call.on('error', reject);
  });
  for (const b of batches) call.write(b);
  afterWrite?.();
  await done;
  call.end();
  return { results, messages };
}

test('every task is answered once with its own seq, whatever its id; what finishes together comes back in one message', async () => {
  // three tasks, all with the id 't' (from different jobs), one batch
  const { results, messages } = await exchange([{ hop: 1, tasks: [wireTask(7), wireTask(8), wireTask(9)] }], 3);
  expect(results.map((r) => r.seq).sort()).toEqual([7, 8, 9]);
  expect(results.every((r) => r.ok && r.id === 't')).toBe(true);
  expect(messages).toBeLessThan(3);
});

test('tasks past the agent\'s in-flight limit are handed back as overloaded at once, the rest run', async () => {
  const started = Date.now();
  const { results } = await exchange([{ hop: 1, tasks: [1, 2, 3, 4, 5].map((s) => wireTask(s)) }], 5);
  const bySeq = new Map(results.map((r) => [r.seq, r]));
  expect([1, 2, 3].map((s) => bySeq.get(s)!.ok)).toEqual([true, true, true]);
  for (const s of [4, 5]) {
    expect(bySeq.get(s)!.error!.code).toBe('overloaded');
    expect(bySeq.get(s)!.error!.message).toMatch(/limit of 3 tasks/);
  }
  expect(Date.now() - started).toBeGreaterThanOrEqual(140); // the three ran against the 150 ms mock
});

test('a task without a deadline gets bad_request naming the field; the session goes on serving', async () => {
  const { results } = await exchange([{ hop: 1, tasks: [wireTask(1, { deadline_unix_ms: 0 })] }, { hop: 1, tasks: [wireTask(2)] }], 2);
  const bySeq = new Map(results.map((r) => [r.seq, r]));
  expect(bySeq.get(1)!.error!.code).toBe('bad_request');
  expect(bySeq.get(1)!.error!.message).toMatch(/deadline_unix_ms is required/);
  expect(bySeq.get(2)!.ok).toBe(true);
});

test('a draining agent finishes the tasks it holds, hands new ones back as unavailable, then ends the session', async () => {
  const call = client.Session(new grpc.Metadata(), {});
  const results: WireResult[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    call.on('data', (b: ResultBatch) => results.push(...b.results));
    call.on('end', resolve);
    call.on('error', reject);
  });
  call.write({ hop: 1, tasks: [wireTask(1)] });
  await new Promise((r) => setTimeout(r, 50)); // task 1 is running against the mock
  const stopping = agent.shutdown();
  call.write({ hop: 1, tasks: [wireTask(2)] });
  await ended;
  await stopping;
  const bySeq = new Map(results.map((r) => [r.seq, r]));
  expect(bySeq.get(1)!.ok).toBe(true);
  expect(bySeq.get(2)!.error!.code).toBe('unavailable');
  expect(results).toHaveLength(2);
});

test("cancel_job_ids aborts every task of that job on the stream, sent in any batch, and no other job's; a later task of the job runs", async () => {
  const call = client.Session(new grpc.Metadata(), {});
  const results: WireResult[] = [];
  let want = 0;
  let got: () => void = () => undefined;
  call.on('data', (b: ResultBatch) => {
    results.push(...b.results);
    if (results.length >= want) got();
  });
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      want = n;
      got = resolve;
      if (results.length >= n) resolve();
    });
  // job A's tasks in two batches, job B's beside the second
  call.write({ hop: 1, tasks: [wireTask(1, { job_id: 'A' })] });
  call.write({ hop: 1, tasks: [wireTask(2, { job_id: 'A' }), wireTask(3, { job_id: 'B' })] });
  await new Promise((r) => setTimeout(r, 50)); // all three are at the mock (150 ms)
  call.write({ hop: 1, tasks: [], cancel_job_ids: ['A'] });
  await until(3);
  const bySeq = new Map(results.map((r) => [r.seq, r]));
  expect(bySeq.get(1)!.error?.code).toBe('cancelled');
  expect(bySeq.get(2)!.error?.code).toBe('cancelled');
  expect(bySeq.get(3)!.ok).toBe(true);
  // the cancel was for the tasks out at the time: one of job A sent after it runs
  call.write({ hop: 1, tasks: [wireTask(4, { job_id: 'A' })] });
  await until(4);
  expect(results.find((r) => r.seq === 4)!.ok).toBe(true);
  call.end();
});

/** One sample of a gauge from the agent's /metrics text. */
async function gauge(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${agent.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} not in /metrics`);
  return Number(line.split(' ').pop());
}

test('the load gauges the autoscaler divides: tasks held rise with admitted work and fall back; capacity is maxInFlightTasks; ready is 1', async () => {
  expect(await gauge('agent_task_capacity')).toBe(3);
  expect(await gauge('agent_tasks_held')).toBe(0);
  expect(await gauge('agent_ready')).toBe(1);
  // 4 tasks: 3 admitted (the limit), 1 handed back; polled while the 150 ms mock holds them
  const seen: number[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) seen.push(await gauge('agent_tasks_held'));
  })();
  await exchange([{ hop: 1, tasks: [1, 2, 3, 4].map((s) => wireTask(s)) }], 4);
  polling = false;
  await poll;
  expect(Math.max(...seen)).toBe(3);
  expect(await gauge('agent_tasks_held')).toBe(0);
});
