import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { costUsd } from '../src/cost';
import { agentService, ExecuteResponse, fromWireResult, toWireResult } from '../src/grpc/service';
import { resultJson } from '../src/http/jobs';
import { addUsage } from '../src/inference/executor';
import { TaskResult } from '../src/types';
import { UpstreamClient } from '../src/upstream/client';

// Cost = uncached prompt tokens × input price + cached prompt tokens × cached
// price + completion tokens × output price, prices in USD per million tokens.

const entry = { inputUsdPerMTok: 2, outputUsdPerMTok: 8, cachedInputUsdPerMTok: 0.5 };

test('prompt and completion tokens at their own prices', () => {
  expect(costUsd(entry, { promptTokens: 1_000_000, completionTokens: 1_000_000, totalTokens: 2_000_000 })).toBeCloseTo(10, 12);
  expect(costUsd(entry, { promptTokens: 12_000, completionTokens: 3_000, totalTokens: 15_000 })).toBeCloseTo(0.048, 12);
});

test('cached prompt tokens are charged at the cached price, the rest of the prompt at the input price', () => {
  const usage = { promptTokens: 12_000, cachedPromptTokens: 4_000, completionTokens: 3_000, totalTokens: 15_000 };
  // 8,000 × 2 + 4,000 × 0.5 + 3,000 × 8 = 42,000 USD per million
  expect(costUsd(entry, usage)).toBeCloseTo(0.042, 12);
});

test('without a cached price, cached tokens cost the input price', () => {
  const usage = { promptTokens: 12_000, cachedPromptTokens: 4_000, completionTokens: 3_000, totalTokens: 15_000 };
  expect(costUsd({ inputUsdPerMTok: 2, outputUsdPerMTok: 8 }, usage)).toBeCloseTo(0.048, 12);
});

test('a cached count above the prompt count is capped at the prompt', () => {
  const usage = { promptTokens: 1_000, cachedPromptTokens: 5_000, completionTokens: 0, totalTokens: 1_000 };
  expect(costUsd(entry, usage)).toBeCloseTo(0.0005, 12);
});

describe('the client reads usage.prompt_tokens_details.cached_tokens', () => {
  let server: Server;
  let client: UpstreamClient;
  const usage = { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500, prompt_tokens_details: { cached_tokens: 1024 } };

  beforeAll(async () => {
    // A stand-in upstream that reports cached prompt tokens, as OpenAI's API does.
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        const parsed = JSON.parse(body) as { stream?: boolean; model: string };
        if (parsed.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`data: ${JSON.stringify({ id: 'c1', model: parsed.model, choices: [{ delta: { content: 'hi' } }] })}\n\n`);
          res.write(`data: ${JSON.stringify({ id: 'c1', model: parsed.model, choices: [], usage })}\n\n`);
          res.end('data: [DONE]\n\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'c1', model: parsed.model, choices: [{ message: { content: 'hi' }, finish_reason: 'stop' }], usage }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new UpstreamClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, apiKey: 'sk-test-123456789' });
  });
  afterAll(async () => {
    await client.close();
    await new Promise((r) => server.close(r));
  });

  const req = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hello' }] };

  test('in a completion', async () => {
    const res = await client.chat(req);
    expect(res.usage).toEqual({ promptTokens: 1200, cachedPromptTokens: 1024, completionTokens: 300, totalTokens: 1500 });
  });

  test('in the last chunk of a stream', async () => {
    const chunks = [];
    for await (const c of client.chatStream(req)) chunks.push(c);
    expect(chunks.map((c) => c.usage).filter(Boolean)).toEqual([{ promptTokens: 1200, cachedPromptTokens: 1024, completionTokens: 300, totalTokens: 1500 }]);
  });
});

describe('cached prompt tokens in results', () => {
  test('summed over a task\'s model turns, across the gRPC wire, and shown as prompt_tokens_details.cached_tokens', () => {
    const turns = addUsage(addUsage(undefined, { promptTokens: 1200, cachedPromptTokens: 1024, completionTokens: 300, totalTokens: 1500 }), { promptTokens: 1600, cachedPromptTokens: 1536, completionTokens: 100, totalTokens: 1700 });
    expect(turns).toEqual({ promptTokens: 2800, cachedPromptTokens: 2560, completionTokens: 400, totalTokens: 3200 });
    const { service } = agentService();
    const result: TaskResult = { id: 't', ok: true, content: 'hi', usage: turns, costUsd: costUsd(entry, turns), attempts: 2, latencyMs: 5 };
    const bytes = service.Execute.responseSerialize({ results: [toWireResult(result)] });
    const back = fromWireResult((service.Execute.responseDeserialize(bytes) as ExecuteResponse).results[0]);
    expect(back.usage).toEqual(turns);
    expect(resultJson(back).usage).toEqual({ prompt_tokens: 2800, completion_tokens: 400, total_tokens: 3200, prompt_tokens_details: { cached_tokens: 2560 } });
  });

  test('a usage without cached tokens stays without them, on the wire and in the JSON', () => {
    const { service } = agentService();
    const usage = { promptTokens: 10, completionTokens: 5, totalTokens: 15 };
    const bytes = service.Execute.responseSerialize({ results: [toWireResult({ id: 't', ok: true, content: 'x', usage, costUsd: 0, attempts: 1, latencyMs: 1 })] });
    const back = fromWireResult((service.Execute.responseDeserialize(bytes) as ExecuteResponse).results[0]);
    expect(back.usage).toEqual(usage);
    expect(resultJson(back).usage).toEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
  });
});
