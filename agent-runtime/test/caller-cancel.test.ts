import { InferenceExecutor } from '../src/inference/executor';
import { RuntimeMetrics } from '../src/metrics';
import { MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { UpstreamClient } from '../src/upstream/client';
import { UpstreamAbortedError, UpstreamTimeoutError } from '../src/upstream/errors';
import { referenceCatalog, silentLogger, workerConfig } from './support/fixtures';

// A caller's cancel (a job's DELETE, a client that went away, the drain's
// hand-back) is not an upstream failure: it is neither retried nor counted
// toward the model's circuit breaker. Only the attempt's own timeout is.

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

/** Aborts `ac` once the mock has received its `n`th call (the attempt is on the wire, not refused before it). */
async function abortAtCall(ac: AbortController, n: number, reason?: Error) {
  while (mock.stats().calls < n) await new Promise((r) => setTimeout(r, 5));
  ac.abort(reason);
}

const req = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'q' }], max_tokens: 5 };
const task = (id: string) => ({ id, model: 'gpt-4.1', messages: [{ role: 'user' as const, content: `task ${id}` }] });

test('the client tells a caller abort (not transient) from an attempt timeout (transient)', async () => {
  mock.setBehaviour({ script: ['hang', 'hang'] });
  const ac = new AbortController();
  void abortAtCall(ac, 1);
  const aborted = await client.chat(req, { signal: ac.signal, timeoutMs: 10_000 }).catch((e: unknown) => e);
  expect(aborted).toBeInstanceOf(UpstreamAbortedError);
  expect((aborted as UpstreamAbortedError).transient).toBe(false);
  const timedOut = await client.chat(req, { timeoutMs: 30 }).catch((e: unknown) => e);
  expect(timedOut).toBeInstanceOf(UpstreamTimeoutError);
  expect((timedOut as UpstreamTimeoutError).transient).toBe(true);
});

test('cancelled calls leave the circuit closed and are not retried; timeouts open it', async () => {
  // a breaker that opens after 2 consecutive failures, no fallbacks
  const catalog = referenceCatalog({ 'gpt-4.1': { breaker: { failureThreshold: 2, recoverySeconds: 60 }, fallbacks: [] } });
  const config = workerConfig({ catalog, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 } });
  const executor = new InferenceExecutor({ config, client, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'w-0' });

  mock.setBehaviour({ script: Array(6).fill('hang') });
  for (let i = 0; i < 3; i++) {
    const ac = new AbortController();
    void abortAtCall(ac, i + 1, new Error('job cancelled by its client'));
    const r = await executor.execute(task(`c${i}`), Date.now() + 10_000, ac.signal);
    expect(r.error?.code).toBe('cancelled');
    expect(r.error?.message).toMatch(/job cancelled by its client/);
  }
  // three cancels, one upstream call each (no retry), and the circuit still closed
  expect(mock.stats().calls).toBe(3);
  expect(executor.circuitStates()['gpt-4.1']).toBe('closed');

  // the same hang ended by the attempt timeout does count
  mock.reset();
  mock.setBehaviour({ script: Array(6).fill('hang') });
  const timed = workerConfig({ catalog, retry: { maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 2, attemptTimeoutMs: 30 } });
  const ex2 = new InferenceExecutor({ config: timed, client, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'w-1' });
  for (let i = 0; i < 2; i++) {
    const r = await ex2.execute(task(`t${i}`), Date.now() + 10_000);
    expect(r.error?.code).toBe('timeout');
  }
  expect(ex2.circuitStates()['gpt-4.1']).toBe('open');
});
