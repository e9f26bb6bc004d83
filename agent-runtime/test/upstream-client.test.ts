import { startMockUpstream, MockUpstream } from '../src/mock/upstream';
import { UpstreamClient } from '../src/upstream/client';
import { AuthenticationError, BadRequestError, ConnectionError, parseRetryAfter, RateLimitError, ServerError, UpstreamAbortedError, UpstreamTimeoutError } from '../src/upstream/errors';

let mock: MockUpstream;
let client: UpstreamClient;
const req = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hello there' }] };

beforeAll(async () => {
  mock = await startMockUpstream({ apiKey: 'sk-good-key-123' });
  client = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-good-key-123' });
});
afterEach(() => mock.reset());
afterAll(async () => {
  await client.close();
  await mock.close();
});

test('a completion returns content and the reported usage', async () => {
  const res = await client.chat(req);
  expect(res.content).toMatch(/^echo:[0-9a-f]{16}/);
  expect(res.usage).toEqual({ promptTokens: 6, completionTokens: 8, totalTokens: 14 });
});

test.each([
  ['503', ServerError, true],
  ['500', ServerError, true],
  ['429', RateLimitError, true],
  ['400', BadRequestError, false],
] as const)('status %s maps to %p (transient=%p)', async (fault, cls, transient) => {
  mock.setBehaviour({ script: [fault] });
  const err = await client.chat(req).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(cls);
  expect((err as ServerError).transient).toBe(transient);
  expect((err as ServerError).status).toBe(Number(fault));
});

test('a wrong key is an AuthenticationError carrying the upstream message', async () => {
  const bad = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-wrong-key-123' });
  const err = await bad.chat(req).catch((e: unknown) => e);
  await bad.close();
  expect(err).toBeInstanceOf(AuthenticationError);
  expect((err as Error).message).toContain('Incorrect API key provided');
});

test('a 400 keeps the upstream message', async () => {
  const err = await client.chat({ ...req, model: 'bad-model' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BadRequestError);
  expect((err as Error).message).toContain("The model 'bad-model' does not exist");
});

test('429 carries Retry-After in ms', async () => {
  mock.setBehaviour({ script: ['429'], retryAfterSeconds: 2 });
  const err = (await client.chat(req).catch((e: unknown) => e)) as RateLimitError;
  expect(err.retryAfterMs).toBe(2000);
});

test('a reset connection is a transient ConnectionError', async () => {
  mock.setBehaviour({ script: ['reset'] });
  const err = await client.chat(req).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectionError);
  expect((err as ConnectionError).transient).toBe(true);
});

test('a hung call times out with UpstreamTimeoutError', async () => {
  mock.setBehaviour({ script: ['hang'] });
  const t0 = Date.now();
  const err = await client.chat(req, { timeoutMs: 150 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamTimeoutError);
  expect(Date.now() - t0).toBeLessThan(1000);
});

test('cancelling the signal ends a call in progress at once', async () => {
  mock.setBehaviour({ script: ['hang'] });
  const ac = new AbortController();
  const t0 = Date.now();
  setTimeout(() => ac.abort(), 50);
  const err = await client.chat(req, { signal: ac.signal, timeoutMs: 10_000 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamAbortedError);
  expect((err as Error).message).toMatch(/aborted/);
  expect(Date.now() - t0).toBeLessThan(1000);
});

test('a signal already aborted sends nothing', async () => {
  const ac = new AbortController();
  ac.abort();
  const before = mock.stats().calls;
  const err = await client.chat(req, { signal: ac.signal }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamAbortedError);
  await new Promise((r) => setTimeout(r, 50));
  expect(mock.stats().calls).toBe(before);
});

test('a response larger than maxResponseBytes is refused, not buffered', async () => {
  const small = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-good-key-123', maxResponseBytes: 64 });
  const err = await small.chat(req).catch((e: unknown) => e);
  await small.close();
  expect(err).toBeInstanceOf(BadRequestError);
  expect((err as Error).message).toMatch(/larger than 64 bytes/);
});

test('streaming yields the content in pieces and the usage last', async () => {
  const chunks = [];
  for await (const c of client.chatStream(req)) chunks.push(c);
  const text = chunks.map((c) => c.delta).join('');
  expect(chunks.length).toBeGreaterThan(2);
  expect(text.trim()).toBe((await client.chat(req)).content);
  expect(chunks[chunks.length - 1].usage).toEqual({ promptTokens: 6, completionTokens: 8, totalTokens: 14 });
});

test('Retry-After parses seconds, HTTP dates and retry-after-ms', () => {
  expect(parseRetryAfter({ 'retry-after': '3' })).toBe(3000);
  expect(parseRetryAfter({ 'retry-after-ms': '250' })).toBe(250);
  expect(parseRetryAfter({ 'retry-after': new Date(10_000).toUTCString() }, 4_000)).toBe(6000);
  expect(parseRetryAfter({})).toBeUndefined();
});
