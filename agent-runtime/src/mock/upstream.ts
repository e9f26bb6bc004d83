import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { AddressInfo, Socket } from 'node:net';

/** What the next calls do, in order, before normal behaviour resumes. */
export type ScriptedFault = 'ok' | '500' | '503' | '429' | 'hang' | 'reset' | '400';

export interface MockBehaviour {
  /** Fixed delay before answering, ms. */
  latencyMs?: number;
  /** Extra uniform random delay 0..jitterMs. */
  jitterMs?: number;
  /** Share of calls (0..1) answered with a transient 503 (seeded PRNG). */
  errorRate?: number;
  /** Seed of the PRNG behind errorRate and jitter. */
  seed?: number;
  /** Faults for the next calls, consumed one per call. */
  script?: ScriptedFault[];
  /** Retry-After seconds sent with scripted 429s. */
  retryAfterSeconds?: number;
  /** Models that always fail with this status (e.g. { "gpt-4.1": 503 }). */
  failModels?: Record<string, number>;
  /** Completion tokens to generate (words of content). */
  completionTokens?: number;
}

export interface MockStats {
  calls: number;
  byStatus: Record<string, number>;
  byModel: Record<string, number>;
  /** Arrival time (epoch ms) of every call, in order. */
  times: number[];
  /** Model of every call, in order. */
  models: string[];
  maxConcurrent: number;
  concurrent: number;
}

export interface MockUpstreamOptions extends MockBehaviour {
  port?: number;
  /** Bearer key required; any key when absent. */
  apiKey?: string;
}

export interface MockUpstream {
  /** Base URL ending in /v1. */
  readonly url: string;
  readonly port: number;
  setBehaviour(b: MockBehaviour): void;
  stats(): MockStats;
  reset(): void;
  close(): Promise<void>;
}

/** mulberry32: tiny seeded PRNG so error injection is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function emptyStats(): MockStats {
  return { calls: 0, byStatus: {}, byModel: {}, times: [], models: [], maxConcurrent: 0, concurrent: 0 };
}

interface ChatBody {
  model?: unknown;
  messages?: Array<{ role?: unknown; content?: unknown }>;
  stream?: unknown;
  max_tokens?: unknown;
}

/**
 * A local OpenAI-compatible API for tests, benchmarks and the demo. The
 * answer is derived from the prompt (`echo:<sha256 prefix>`) so a test can
 * tell which task an answer belongs to; usage is a deterministic count
 * (whitespace-separated words + 4 per message), cheap enough for benchmarks.
 */
export async function startMockUpstream(opts: MockUpstreamOptions = {}): Promise<MockUpstream> {
  let behaviour: MockBehaviour = { ...opts };
  let random = prng(behaviour.seed ?? 42);
  let stats = emptyStats();
  const sockets = new Set<Socket>();
  const hung = new Set<http.ServerResponse>();

  const count = (status: number | string) => {
    stats.byStatus[String(status)] = (stats.byStatus[String(status)] ?? 0) + 1;
  };
  const sendError = (res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}) => {
    count(status);
    const body = JSON.stringify({ error: { message, type: status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error', code: null } });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === '/__mock/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && url === '/__mock/behaviour') {
        try {
          api.setBehaviour(JSON.parse(raw) as MockBehaviour);
          res.writeHead(204).end();
        } catch (e) {
          sendError(res, 400, (e as Error).message);
        }
        return;
      }
      if (req.method === 'GET' && url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2'].map((id) => ({ id, object: 'model' })) }));
        return;
      }
      if (req.method !== 'POST' || url !== '/v1/chat/completions') {
        sendError(res, 404, `no route ${req.method} ${url}`);
        return;
      }
      void handleChat(req, res, raw);
    });
  });

  async function handleChat(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    stats.calls += 1;
    stats.times.push(Date.now());
    stats.concurrent += 1;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, stats.concurrent);
    res.on('close', () => {
      stats.concurrent -= 1;
    });
    let body: ChatBody;
    try {
      body = JSON.parse(raw) as ChatBody;
    } catch {
      stats.models.push('');
      sendError(res, 400, 'body is not JSON');
      return;
    }
    const model = typeof body.model === 'string' ? body.model : '';
    stats.models.push(model);
    stats.byModel[model] = (stats.byModel[model] ?? 0) + 1;
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      sendError(res, 401, 'Incorrect API key provided');
      return;
    }
    const fault: ScriptedFault = behaviour.script && behaviour.script.length > 0 ? behaviour.script.shift()! : 'ok';
    const delay = (behaviour.latencyMs ?? 0) + (behaviour.jitterMs ? Math.floor(random() * behaviour.jitterMs) : 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (res.destroyed) return;

    switch (fault) {
      case 'hang':
        count('hang');
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      case 'reset':
        count('reset');
        req.socket.resetAndDestroy();
        return;
      case '429':
        sendError(res, 429, 'Rate limit reached', { 'retry-after': String(behaviour.retryAfterSeconds ?? 1) });
        return;
      case '500':
      case '503':
      case '400':
        sendError(res, Number(fault), `scripted ${fault}`);
        return;
      default:
        break;
    }
    if (!model) return sendError(res, 400, "'model' is required");
    if (model === 'bad-model') return sendError(res, 400, `The model '${model}' does not exist`);
    if (!Array.isArray(body.messages) || body.messages.length === 0) return sendError(res, 400, "'messages' must be a non-empty array");
    const failStatus = behaviour.failModels?.[model];
    if (failStatus) return sendError(res, failStatus, `model ${model} is failing (mock rule)`);
    if (behaviour.errorRate && random() < behaviour.errorRate) return sendError(res, 503, 'injected transient failure');

    const prompt = body.messages.map((m) => String(m.content ?? '')).join('\n');
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length + 4 * body.messages.length;
    const digest = createHash('sha256').update(prompt).digest('hex').slice(0, 16);
    const words = Math.max(1, behaviour.completionTokens ?? 8);
    const content = [`echo:${digest}`, ...Array.from({ length: words - 1 }, (_, i) => `w${i}`)].join(' ');
    const usage = { prompt_tokens: promptTokens, completion_tokens: words, total_tokens: promptTokens + words };
    const id = `chatcmpl-${digest}`;
    count(200);
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (const piece of content.split(' ')) {
        res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content: piece + ' ' } }] })}\n\n`);
      }
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model, choices: [], usage })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    const out = JSON.stringify({
      id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  }

  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const api: MockUpstream = {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    setBehaviour(b) {
      behaviour = { ...behaviour, ...b, script: b.script ? [...b.script] : behaviour.script };
      if (b.seed !== undefined) random = prng(b.seed);
    },
    stats: () => ({ ...stats, times: [...stats.times], models: [...stats.models] }),
    reset() {
      stats = emptyStats();
      behaviour = { ...opts };
      random = prng(behaviour.seed ?? 42);
    },
    close: async () => {
      for (const r of hung) r.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}
