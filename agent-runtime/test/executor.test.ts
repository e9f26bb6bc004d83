import { InferenceExecutor } from '../src/inference/executor';
import { DeadlineExceededError, ModelPolicy } from '../src/resilience/model-policy';
import { RateLimitError, ServerError } from '../src/upstream/errors';
import { RuntimeMetrics } from '../src/metrics';
import { startMockUpstream, MockUpstream } from '../src/mock/upstream';
import { UpstreamClient } from '../src/upstream/client';
import { AgentConfig } from '../src/config';
import { referenceCatalog, silentLogger, workerConfig } from './support/fixtures';

let mock: MockUpstream;
let client: UpstreamClient;

beforeAll(async () => {
  mock = await startMockUpstream({});
  client = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-test-0123456789' });
});
afterEach(() => mock.reset());
afterAll(async () => {
  await client.close();
  await mock.close();
});

function executor(config: AgentConfig = workerConfig(), metrics = new RuntimeMetrics()) {
  return new InferenceExecutor({ config, client, metrics, logger: silentLogger, agentId: 'w-0' });
}
const task = (id: string, model?: string) => ({ id, messages: [{ role: 'user' as const, content: `task ${id}` }], ...(model ? { model } : {}) });
const inMs = (ms: number) => Date.now() + ms;

test('a permanent 400 is not retried and carries the upstream message', async () => {
  mock.setBehaviour({ script: ['400'] });
  const r = await executor().execute(task('a'), inMs(5000));
  expect(r.ok).toBe(false);
  expect(r.error?.code).toBe('bad_request');
  expect(r.error?.message).toContain('scripted 400');
  expect(mock.stats().calls).toBe(1);
  expect(r.attempts).toBe(1);
});

test('transient 503s are retried until success', async () => {
  mock.setBehaviour({ script: ['503', '503', 'reset'] });
  const r = await executor().execute(task('b'), inMs(5000));
  expect(r.ok).toBe(true);
  expect(r.attempts).toBe(4);
  expect(mock.stats().calls).toBe(4);
});

test('Retry-After is honoured before the next attempt', async () => {
  mock.setBehaviour({ script: ['429'], retryAfterSeconds: 1 });
  const r = await executor().execute(task('c'), inMs(5000));
  expect(r.ok).toBe(true);
  const [first, second] = mock.stats().times;
  expect(second - first).toBeGreaterThanOrEqual(990);
});

test.each([
  // random() -> the delay before retries 1, 2 and 3: uniform over [0, min(cap, base x 2^n)), here base 40 and cap 60
  [0, [0, 0, 0]],
  [0.5, [20, 30, 30]],
  [0.999999, [39, 59, 59]],
])('backoff is full jitter, bounded by maxDelayMs (random %p -> %p ms)', async (r, expected) => {
  const delays: number[] = [];
  const retry = { maxAttempts: 4, initialDelayMs: 40, maxDelayMs: 60 };
  const policy = new ModelPolicy('gpt-4.1', referenceCatalog()['gpt-4.1'], retry, 64, { onRetry: (_m, _reason, ms) => delays.push(ms) }, () => r);
  let calls = 0;
  const out = await policy.execute(inMs(5000), async () => {
    calls += 1;
    if (calls < 4) throw new ServerError('scripted 503', 503);
    return 'ok';
  });
  expect(out).toEqual({ value: 'ok', attempts: 4 });
  // the delays the policy scheduled, not the time that passed: a loaded machine cannot change them
  expect(delays).toEqual(expected);
});

test("one model's policy serves calls with different deadlines: each retry's sleep is bounded by its own call's deadline", async () => {
  const delays: number[] = [];
  const retry = { maxAttempts: 2, initialDelayMs: 0, maxDelayMs: 0 };
  const policy = new ModelPolicy('gpt-4.1', referenceCatalog()['gpt-4.1'], retry, 64, { onRetry: (_m, _reason, ms) => delays.push(ms) });
  // both calls are asked to wait 2 s (Retry-After); only the one with the time for it does
  const flaky = () => {
    let calls = 0;
    return async () => {
      calls += 1;
      if (calls === 1) throw new RateLimitError('scripted 429', 429, 2000);
      return 'ok';
    };
  };
  const started = Date.now();
  const [near, far] = await Promise.all([policy.execute(inMs(150), flaky()).catch((e: Error) => e), policy.execute(inMs(10_000), flaky())]);
  // the near call slept at most to its deadline, then found it passed
  expect(delays.sort((a, b) => a - b)[0]).toBeLessThanOrEqual(150);
  expect(delays[1]).toBe(2000);
  expect(near).toBeInstanceOf(DeadlineExceededError);
  expect(far).toEqual({ value: 'ok', attempts: 2 });
  expect(Date.now() - started).toBeGreaterThanOrEqual(1990);
}, 10_000);

test('retries stop at the deadline: a hanging upstream ends as a timeout within the deadline', async () => {
  mock.setBehaviour({ script: ['hang', 'hang', 'hang', 'hang'] });
  const deadline = inMs(400);
  const r = await executor().execute(task('e'), deadline);
  const endedAt = Date.now();
  expect(r.ok).toBe(false);
  expect(['deadline_exceeded', 'timeout']).toContain(r.error?.code);
  // the call ends with the deadline, not when the hanging upstream would
  // answer (never): the 1 s is scheduling slack on a loaded machine, far
  // below the hang it guards against
  expect(mock.stats().calls).toBeGreaterThan(0);
  expect(endedAt - deadline).toBeLessThan(1000);
});

test('a breaker opens after exactly the catalog threshold, traffic falls back, then recovers', async () => {
  // gpt-4.1 opens after 3 consecutive failures and recovers after 0.5 s.
  const catalog = referenceCatalog({ 'gpt-4.1': { breaker: { failureThreshold: 3, recoverySeconds: 0.5 } } });
  const config = workerConfig({ catalog, retry: { maxAttempts: 1, initialDelayMs: 0, maxDelayMs: 0 } });
  const metrics = new RuntimeMetrics();
  const ex = executor(config, metrics);
  mock.setBehaviour({ failModels: { 'gpt-4.1': 503 } });
  for (let i = 0; i < 3; i++) {
    const r = await ex.execute(task(`f${i}`), inMs(5000));
    expect(r.ok).toBe(true);
    expect(r.model).toBe('claude-sonnet-4.5'); // fell back after gpt-4.1 failed
  }
  expect(ex.circuitStates()['gpt-4.1']).toBe('open');
  const before = mock.stats().byModel['gpt-4.1'];
  expect(before).toBe(3);
  const r = await ex.execute(task('f3'), inMs(5000));
  expect(r.model).toBe('claude-sonnet-4.5');
  expect(mock.stats().byModel['gpt-4.1']).toBe(3); // the open circuit kept the call from the upstream
  expect(await metrics.text()).toMatch(/agent_circuit_breaker_state\{model="gpt-4.1"\} 2/);

  mock.setBehaviour({ failModels: {} });
  await new Promise((res) => setTimeout(res, 600));
  const healed = await ex.execute(task('f4'), inMs(5000));
  expect(healed.model).toBe('gpt-4.1');
  expect(ex.circuitStates()['gpt-4.1']).toBe('closed');
});

test('when every model in the chain is open the task fails with circuit_open', async () => {
  const catalog = referenceCatalog({
    'gpt-4.1': { breaker: { failureThreshold: 1, recoverySeconds: 60 }, fallbacks: [] },
  });
  const config = workerConfig({ catalog, models: { default: 'gpt-4.1', allowed: ['gpt-4.1'] }, retry: { maxAttempts: 1, initialDelayMs: 0, maxDelayMs: 0 } });
  const ex = executor(config);
  mock.setBehaviour({ failModels: { 'gpt-4.1': 503 } });
  await ex.execute(task('g0'), inMs(5000));
  const r = await ex.execute(task('g1'), inMs(5000));
  expect(r.error?.code).toBe('circuit_open');
  expect(ex.allCircuitsOpen()).toBe(true);
});

test('the bulkhead bounds concurrent upstream calls per model', async () => {
  const catalog = referenceCatalog({ 'gpt-4.1': { maxConcurrency: 3 } });
  const ex = executor(workerConfig({ catalog }));
  mock.setBehaviour({ latencyMs: 30 });
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => ex.execute(task(`h${i}`), inMs(5000))));
  expect(results.every((r) => r.ok)).toBe(true);
  expect(mock.stats().maxConcurrent).toBe(3);
});

test('cost is usage × catalog prices', async () => {
  const r = await executor().execute(task('i', 'claude-sonnet-4.5'), inMs(5000));
  expect(r.ok).toBe(true);
  expect(r.costUsd).toBeCloseTo((r.usage!.promptTokens * 15 + r.usage!.completionTokens * 15) / 1e6, 12);
  const d = await executor().execute(task('j', 'deepseek-v3.2'), inMs(5000));
  expect(d.costUsd).toBeCloseTo((d.usage!.promptTokens * 0.42 + d.usage!.completionTokens * 0.42) / 1e6, 12);
});

test('a model not allowed for the role is a bad request naming the allowed ones', async () => {
  const r = await executor(workerConfig({ models: { default: 'gpt-4.1', allowed: ['gpt-4.1'] } })).execute(task('k', 'deepseek-v3.2'), inMs(5000));
  expect(r.error?.code).toBe('bad_request');
  expect(r.error?.message).toMatch(/not allowed.*allowed: gpt-4.1/);
  expect(mock.stats().calls).toBe(0);
});

test('metrics expose requests, tokens and cost by model', async () => {
  const metrics = new RuntimeMetrics();
  await executor(workerConfig(), metrics).execute(task('m'), inMs(5000));
  const text = await metrics.text();
  expect(text).toMatch(/agent_upstream_requests_total\{model="gpt-4.1",outcome="ok"\} 1/);
  expect(text).toMatch(/agent_tokens_total\{model="gpt-4.1",kind="completion"\} 8/);
  expect(text).toMatch(/agent_cost_usd_total\{model="gpt-4.1"\} [0-9.e-]+/);
});

test('with 20 % of calls failing transiently, 1,000 tasks all succeed', async () => {
  mock.setBehaviour({ errorRate: 0.2, seed: 7 });
  const ex = executor(workerConfig({ concurrency: { maxInFlightTasks: 1000 } }));
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => ex.execute(task(`n${i}`), inMs(30000))));
  expect(results.filter((r) => r.ok)).toHaveLength(1000);
  expect(mock.stats().byStatus['503']).toBeGreaterThan(150); // the faults really happened
});

test("fallbacks from the catalog slice are used even when the role's allowed list names only its default", async () => {
  const ex = executor(workerConfig({ models: { default: 'gpt-4.1', allowed: ['gpt-4.1'] }, retry: { maxAttempts: 1, initialDelayMs: 0, maxDelayMs: 0 } }));
  mock.setBehaviour({ failModels: { 'gpt-4.1': 503 } });
  const r = await ex.execute(task('o'), inMs(5000));
  expect(r.ok).toBe(true);
  expect(r.model).toBe('claude-sonnet-4.5');
  expect(r.attempts).toBe(2);
});
