import * as grpc from '@grpc/grpc-js';
import { AgentHandle, startAgent } from '../src/agent';
import { AgentConfig } from '../src/config';
import { Dispatcher } from '../src/coordination/dispatcher';
import { PeerPool } from '../src/coordination/peers';
import { agentService, ExecuteRequest, fromWireResult, fromWireTask, newClient, ResultBatch, TaskBatch, toWireResult, toWireTask } from '../src/grpc/service';
import { RuntimeMetrics } from '../src/metrics';
import { MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { startDocsMcpServer } from '../src/tools/docs-server';
import { McpHttpServer } from '../src/tools/mcp-http';
import { Task, TaskResult } from '../src/types';
import { silentLogger, workerConfig } from './support/fixtures';

// The agent fields on the wire: a task's temperature, response schema and
// tool turns across a gRPC hop (dispatcher → worker), tool call records
// back, and `tool_calls` in the HTTP result JSON.

const KEY = 'sk-test-0123456789';
const COUNT = { name: 'count', schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer', minimum: 2 } } } };

describe('wire mapping', () => {
  const { service } = agentService();
  const roundTrip = (t: Task): Task => {
    const req: ExecuteRequest = { job_id: 'j', tasks: [toWireTask(t)], deadline_unix_ms: 1, hop: 0 };
    const bytes = service.Execute.requestSerialize(req);
    return fromWireTask((service.Execute.requestDeserialize(bytes) as ExecuteRequest).tasks[0]);
  };

  test('temperature (0 included), response schema and tool turns survive protobuf; absent stays absent', () => {
    const task: Task = {
      id: 't1',
      model: 'gpt-4.1',
      maxTokens: 50,
      temperature: 0,
      responseSchema: COUNT,
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'docs__get_doc', arguments: '{"id":"x"}' } }] },
        { role: 'tool', content: 'result', tool_call_id: 'c1' },
      ],
    };
    expect(roundTrip(task)).toEqual(task);
    const plain: Task = { id: 't2', messages: [{ role: 'user', content: 'q' }] };
    expect(roundTrip(plain)).toEqual(plain);
  });

  test('tool call records survive protobuf', () => {
    const r: TaskResult = { id: 't', ok: true, content: 'x', costUsd: 0.1, attempts: 2, latencyMs: 5, agentId: 'a', toolCalls: [{ name: 's__t', ok: false, latencyMs: 12 }] };
    const bytes = service.Execute.responseSerialize({ results: [toWireResult(r)] });
    const back = fromWireResult((service.Execute.responseDeserialize(bytes) as { results: ReturnType<typeof toWireResult>[] }).results[0]);
    expect(back).toEqual(r);
  });

  test('a response schema that is not JSON is refused as that task\'s bad_request', () => {
    const w = { ...toWireTask({ id: 't', messages: [{ role: 'user', content: 'q' }] }), response_schema: { name: 'x', schema_json: '{nope' } };
    expect(() => fromWireTask(w)).toThrow(/response_schema 'x': schema_json is not JSON/);
  });
});

describe('a worker with behavior and tools', () => {
  let mock: MockUpstream;
  let docs: McpHttpServer;
  let worker: AgentHandle;
  let pool: PeerPool | undefined;
  let dispatcher: Dispatcher | undefined;

  const boot = (config: AgentConfig) =>
    startAgent(config, { agentId: 'worker-0', role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: mock.url, upstreamApiKey: KEY, peerEndpoints: {}, logLevel: 'silent' }, { logger: silentLogger });

  beforeAll(async () => {
    mock = await startMockUpstream({ apiKey: KEY, recordRequests: true });
    docs = await startDocsMcpServer();
  });
  afterEach(async () => {
    dispatcher?.close();
    pool?.close();
    dispatcher = undefined;
    pool = undefined;
    await worker?.shutdown();
    mock.reset();
    mock.setBehaviour({ recordRequests: true });
  });
  afterAll(async () => {
    await mock.close();
    await docs.close();
  });

  const agentConfig = (servers = [{ name: 'docs', url: '' }]) =>
    workerConfig({
      role: 'data-retrieval',
      behavior: { instructions: 'Retrieve facts with the docs tools.', temperature: 0.9 },
      tools: { mcpServers: servers.map((s) => ({ ...s, url: s.url || docs.url })), maxRounds: 3, callTimeoutMs: 2000 },
    });

  test('dispatcher → worker: temperature and response schema reach the upstream, tool call records come back', async () => {
    worker = await boot(agentConfig());
    pool = new PeerPool([{ role: 'data-retrieval', kind: 'worker', address: 'data-retrieval-grpc.test.svc:50051', maxInFlightTasks: 8 }], { 'data-retrieval-grpc.test.svc': [`127.0.0.1:${worker.grpcPort}`] }, silentLogger);
    await pool.start();
    dispatcher = new Dispatcher({ pool, fanOut: 4, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'coordinator-0' });
    const r = await dispatcher.dispatch(
      'job',
      { id: 't', role: 'data-retrieval', temperature: 0.25, responseSchema: COUNT, messages: [{ role: 'user', content: '[[tool:docs__search_docs {"query":"eviction"}]]' }] },
      Date.now() + 10_000,
      0,
    );
    expect(r.ok).toBe(true);
    expect(r.agentId).toBe('worker-0');
    expect(JSON.parse(r.content!)).toEqual({ n: 2 });
    expect(r.toolCalls).toEqual([{ name: 'docs__search_docs', ok: true, latencyMs: expect.any(Number) }]);
    expect(r.attempts).toBe(2);
    const reqs = mock.requests();
    expect(reqs).toHaveLength(2);
    for (const req of reqs) {
      expect(req.temperature).toBe(0.25);
      expect(req.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'count', schema: COUNT.schema, strict: true } });
      expect(req.messages![0]).toEqual({ role: 'system', content: 'Retrieve facts with the docs tools.' });
    }
  });

  test('a malformed response schema on a Session is that task\'s bad_request; the worker keeps serving', async () => {
    worker = await boot(agentConfig());
    const client = newClient(`127.0.0.1:${worker.grpcPort}`);
    try {
      const call = client.Session(new grpc.Metadata(), {});
      const results = new Promise<ResultBatch['results']>((resolve) => {
        const got: ResultBatch['results'] = [];
        call.on('data', (b: ResultBatch) => {
          got.push(...b.results);
          if (got.length === 2) resolve(got);
        });
      });
      const base = { deadline_unix_ms: Date.now() + 10_000, job_id: 'j', messages: [{ role: 'user', content: 'hi' }] };
      const batch: TaskBatch = { hop: 1, tasks: [{ ...base, id: 'bad', seq: 1, response_schema: { name: 'x', schema_json: '{nope' } }, { ...base, id: 'good', seq: 2 }] };
      call.write(batch);
      const got = await results;
      call.end();
      const bad = got.find((g) => g.id === 'bad')!;
      expect([bad.ok, bad.error?.code]).toEqual([false, 'bad_request']);
      expect(bad.error?.message).toMatch(/schema_json is not JSON/);
      expect(got.find((g) => g.id === 'good')!.ok).toBe(true);
    } finally {
      client.close();
    }
  });

  test('HTTP: the result JSON lists tool_calls with name, ok and latency_ms (empty when none)', async () => {
    worker = await boot(agentConfig());
    const res = await fetch(`http://127.0.0.1:${worker.httpPort}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ tasks: [{ id: 'with', prompt: '[[tool:docs__get_doc {"id":"network-policies"}]] [[tool:docs__get_doc {"id":"nope"}]]' }, { id: 'without', prompt: 'hello' }] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: Array<{ id: string; tool_calls: unknown[]; content: string }> };
    const withTools = body.results.find((r) => r.id === 'with')!;
    expect(withTools.tool_calls).toEqual([
      { name: 'docs__get_doc', ok: true, latency_ms: expect.any(Number) },
      { name: 'docs__get_doc', ok: false, latency_ms: expect.any(Number) },
    ]);
    expect(Object.keys(withTools.tool_calls[0] as object).sort()).toEqual(['latency_ms', 'name', 'ok']);
    expect(body.results.find((r) => r.id === 'without')!.tool_calls).toEqual([]);
    const metrics = await (await fetch(`http://127.0.0.1:${worker.httpPort}/metrics`, { headers: { connection: 'close' } })).text();
    expect(metrics).toMatch(/agent_tool_calls_total\{server="docs",tool="get_doc",outcome="tool_error",role="data-retrieval"\} 1/);
  });

  test('an MCP server that is down does not stop the worker from booting, being ready, or answering', async () => {
    worker = await boot(agentConfig([{ name: 'gone', url: 'http://127.0.0.1:9/mcp' }]));
    const ready = await fetch(`http://127.0.0.1:${worker.httpPort}/readyz`, { headers: { connection: 'close' } });
    expect(ready.status).toBe(200);
    const res = await fetch(`http://127.0.0.1:${worker.httpPort}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ tasks: [{ id: 'a', prompt: '[[tool:gone__lookup {}]]' }] }),
    });
    const body = (await res.json()) as { results: Array<{ ok: boolean; content: string; tool_calls: Array<{ ok: boolean }> }> };
    // never listed, so nothing of it is offered: the model answers without tools
    expect(body.results[0].ok).toBe(true);
    expect(body.results[0].tool_calls).toEqual([]);
    expect(mock.requests()[0].tools).toBeUndefined();
  });
});
