import { readFileSync } from 'node:fs';
import { startLocalCluster, LocalCluster } from '../../src/local/launcher';
import { startMockUpstream, MockUpstream } from '../../src/mock/upstream';
import { expectExactlyOnce, postJob, synthesizedManifests, tasks, TOPOLOGIES } from '../support/cluster';

// Every role of every synthesized topology answers a job end to end, through
// `local` mode booted from the constructs' own manifests.

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

const WORKERS = ['task-executor-a', 'task-executor-b', 'data-retrieval', 'validation'];

describe.each(TOPOLOGIES)('%s', (topology) => {
  test('every worker answers; results are exactly once, priced and attributed', async () => {
    cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
    // Untargeted tasks get the cluster's default model (gpt-4.1) and spread over
    // the workers serving it; role-targeted ones reach the others, through a
    // supervisor in the hierarchy.
    const sent = [...tasks(40)];
    sent.push({ id: 'to-validation', prompt: 'check this', role: 'validation', model: 'deepseek-v3.2' } as (typeof sent)[number]);
    sent.push({ id: 'to-retrieval', prompt: 'fetch this', role: 'data-retrieval' } as (typeof sent)[number]);
    const res = await postJob(cluster.entryUrl, { tasks: sent, deadline_ms: 20000 });
    expect(res.status).toBe(200);
    expectExactlyOnce(sent, res.body.results);
    expect(res.body.success_rate).toBe(1);
    const roles = new Set(res.body.results.map((r) => r.agent_id!.replace(/-\d+$/, '')));
    const expected = topology === 'mesh' ? ['coordinator', ...WORKERS] : WORKERS;
    expect([...roles].sort()).toEqual(expected.sort());
    for (const r of res.body.results) {
      expect(r.content).toMatch(/^echo:[0-9a-f]{16}/);
      expect(r.cost_usd).toBeGreaterThan(0);
    }
    expect(res.body.total_cost_usd).toBeCloseTo(res.body.results.reduce((s, r) => s + r.cost_usd, 0), 12);
    const v = res.body.results.find((r) => r.id === 'to-validation')!;
    expect(v.agent_id).toMatch(/^validation-/);
    expect(v.model).toBe('deepseek-v3.2');
    const d = res.body.results.find((r) => r.id === 'to-retrieval')!;
    expect(d.agent_id).toMatch(/^data-retrieval-/);
    expect(d.model).toBe('gemini-2.5-flash');
    for (const r of res.body.results.filter((x) => /^t\d+$/.test(x.id))) expect(r.model).toBe('gpt-4.1');
  });
});

test('hierarchical: a task naming a model goes down the subtree that serves it; an unserved model is a clear 4xx-style error', async () => {
  cluster = await startLocalCluster({ manifests: manifests.hierarchical, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
  const sent = [...tasks(6, 'ds', { model: 'deepseek-v3.2' }), ...tasks(6, 'gf', { model: 'gemini-2.5-flash' }), { id: 'nobody', prompt: 'x', model: 'claude-sonnet-4.5' }];
  const res = await postJob(cluster.entryUrl, { tasks: sent, deadline_ms: 20000 });
  expectExactlyOnce(sent, res.body.results);
  for (const r of res.body.results.filter((x) => x.id.startsWith('ds'))) expect([r.ok, r.agent_id]).toEqual([true, 'validation-0']);
  for (const r of res.body.results.filter((x) => x.id.startsWith('gf'))) expect([r.ok, r.agent_id]).toEqual([true, 'data-retrieval-0']);
  const nobody = res.body.results.find((r) => r.id === 'nobody')!;
  expect(nobody.error).toEqual({ code: 'bad_request', message: expect.stringMatching(/no callee accepts model 'claude-sonnet-4.5'/) });
});

test('hierarchical: a deadline across two hops is kept within a small margin', async () => {
  cluster = await startLocalCluster({ manifests: manifests.hierarchical, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
  mock.setBehaviour({ script: Array(200).fill('hang') });
  const t0 = Date.now();
  const res = await postJob(cluster.entryUrl, { tasks: tasks(6), deadline_ms: 1500 });
  const took = Date.now() - t0;
  expect(res.status).toBe(200);
  expect(took).toBeLessThan(1500 + 250);
  for (const r of res.body.results) {
    expect(r.ok).toBe(false);
    expect(['deadline_exceeded', 'timeout']).toContain(r.error!.code);
  }
});

test('hub-and-spoke: a SIGKILLed worker loses no task and answers none twice', async () => {
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
  mock.setBehaviour({ latencyMs: 300 });
  const sent = tasks(30);
  const job = postJob(cluster.entryUrl, { tasks: sent, deadline_ms: 20000 });
  await new Promise((r) => setTimeout(r, 150));
  const exited = cluster.agent('task-executor-a').exited; // this process's end (local mode then starts a new one)
  cluster.kill('task-executor-a', 0, 'SIGKILL');
  const res = await job;
  expectExactlyOnce(sent, res.body.results);
  expect(res.body.success_rate).toBe(1);
  expect(await exited).toBe('SIGKILL');
});

test('hub-and-spoke: SIGTERM on a worker mid-job drains its work and exits 0', async () => {
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
  mock.setBehaviour({ latencyMs: 400 });
  const sent = tasks(20);
  const job = postJob(cluster.entryUrl, { tasks: sent, deadline_ms: 20000 });
  // terminate it once it holds tasks of the job (not after a guessed sleep: a loaded machine is slower)
  const worker = cluster.agent('task-executor-b');
  const held = async () => Number(/^agent_tasks_held(?:\{[^}]*\})? (\d+)/m.exec(await (await fetch(`${worker.httpUrl}/metrics`)).text())?.[1] ?? 0);
  while ((await held()) === 0) await new Promise((r) => setTimeout(r, 10));
  const exited = worker.exited;
  cluster.kill('task-executor-b', 0, 'SIGTERM');
  const res = await job;
  expectExactlyOnce(sent, res.body.results);
  expect(res.body.success_rate).toBe(1);
  // the terminated worker finished what it had (drain), it did not drop it
  expect(res.body.results.some((r) => r.agent_id === 'task-executor-b-0')).toBe(true);
  expect(await exited).toBe(0);
});

test('bad requests get a 400 with a message and the entry keeps serving', async () => {
  // (nodeArgs reach every agent process: checked on the way)
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', nodeArgs: ['--max-http-header-size=20000'] });
  for (const a of cluster.agents) expect(readFileSync(`/proc/${a.process.pid}/cmdline`, 'utf8').split('\0')).toContain('--max-http-header-size=20000');
  const cases: Array<[unknown, RegExp]> = [
    ['{not json', /not valid JSON/],
    [{}, /must have required property 'tasks'/],
    [{ tasks: [] }, /tasks: must NOT have fewer than 1 items/],
    [{ tasks: [{ prompt: 'a', colour: 'red' }] }, /unknown field 'colour'/],
    [{ tasks: [{ id: 'x', prompt: 'a' }, { id: 'x', prompt: 'b' }] }, /'x' is used twice/],
    [{ tasks: [{ prompt: 'a', messages: [{ role: 'user', content: 'b' }] }] }, /exactly one of 'prompt' or 'messages'/],
    [{ tasks: [{ prompt: 'a' }], deadline_ms: 10_000_000 }, /deadline_ms: 10000000 exceeds the maximum/],
    [{ tasks: [{ prompt: 'a', max_tokens: -1 }] }, /max_tokens: must be >= 1/],
  ];
  for (const [body, message] of cases) {
    const res = await postJob(cluster.entryUrl, body);
    expect(res.status).toBe(400);
    expect(res.body.error!.message).toMatch(message);
  }
  const ok = await postJob(cluster.entryUrl, { tasks: tasks(2) });
  expect(ok.status).toBe(200);
  expect(ok.body.success_rate).toBe(1);
  const unknownRole = await postJob(cluster.entryUrl, { tasks: [{ prompt: 'a', role: 'nobody' }] });
  expect(unknownRole.body.results[0].error!.message).toMatch(/role 'nobody' is not a callee/);
});
