import { AgentHandle, startAgent } from '../src/agent';
import { silentLogger, workerConfig } from './support/fixtures';

// The HTTP router of every agent (http/server.ts): unknown paths and
// methods, oversized bodies, and a handler that throws, each answered with a
// status and a message while the process keeps serving.

type ErrorBody = { error: { message: string } };
const errorOf = async (r: Response) => ((await r.json()) as ErrorBody).error.message;

let agent: AgentHandle;
let base: string;

beforeAll(async () => {
  const config = workerConfig({ limits: { maxTasksPerJob: 10, maxRequestBytes: 2048 } });
  agent = await startAgent(config, { agentId: 'w-0', role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: 'http://127.0.0.1:9', upstreamApiKey: 'sk-x', peerEndpoints: {}, logLevel: 'silent' }, { logger: silentLogger });
  base = `http://127.0.0.1:${agent.httpPort}`;
});
afterAll(() => agent.shutdown());

test('an unknown path is a 404 that names the job route', async () => {
  const r = await fetch(`${base}/v2/nothing`);
  expect(r.status).toBe(404);
  expect(await errorOf(r)).toBe('no route GET /v2/nothing; try POST /v1/jobs');
});

test('a known path with another method is a 405 with Allow', async () => {
  const r = await fetch(`${base}/v1/jobs`, { method: 'PUT' });
  expect(r.status).toBe(405);
  expect(r.headers.get('allow')).toBe('POST');
  expect(await errorOf(r)).toBe('use POST /v1/jobs');
});

test('a body over maxRequestBytes is a 413 (declared or streamed), and the server keeps serving', async () => {
  const big = JSON.stringify({ tasks: [{ prompt: 'x'.repeat(4096) }] });
  const declared = await fetch(`${base}/v1/jobs`, { method: 'POST', body: big, headers: { 'content-type': 'application/json' } });
  expect(declared.status).toBe(413);
  expect(await errorOf(declared)).toMatch(/exceeds the limit of 2048 bytes/);
  const chunked = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    body: new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  expect(chunked.status).toBe(413);
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
});

test('a body that is not a job is a 400 with a message, counted as rejected', async () => {
  const r = await fetch(`${base}/v1/jobs`, { method: 'POST', body: '{"tasks": 3}' });
  expect(r.status).toBe(400);
  expect(await errorOf(r)).toMatch(/tasks/);
  expect(await agent.metrics.text()).toMatch(/outcome="rejected"[^\n]* 1\n/);
});
