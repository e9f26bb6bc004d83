import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { REVISION_MARKER, VERDICT_INSTRUCTION } from '../workflow/verdict';

// Workflow rules of the mock (deterministic, so tests and the demo can drive
// a validation loop through a prompt alone):
// - A verdict request is one whose response_format is a json_schema with the
//   properties `pass` and `feedback`, or whose last user message ends with
//   the verdict instruction the workflow engine adds (VERDICT_INSTRUCTION, for
//   workers that do not send response_format). It is answered with a verdict
//   judged on its last user message:
//     contains `REJECT-ALWAYS`  → {"pass": false, "feedback": "mock: REJECT-ALWAYS asks for another round"}
//     contains `NOT-A-VERDICT`  → plain text, not a verdict
//     contains `draft-v1`       → {"pass": false, "feedback": "mock: draft-v1 needs a concrete example"}
//     otherwise                 → {"pass": true, "feedback": "mock: accepted"}
// - Any other request whose messages contain `#revise-once` is a draft: its
//   answer starts with `draft-v<N>`, N = 1 + the revision requests (user
//   turns carrying REVISION_MARKER) in it. So the first draft is rejected and
//   the revised one passes.
// - Every chat request's model, messages and response_format are kept in a
//   log (the last REQUEST_LOG_LIMIT), read with requests() or GET /__mock/requests.

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
  /** The last chat requests received, oldest first. */
  requests(): LoggedRequest[];
  close(): Promise<void>;
}

/** One chat request as the mock received it. */
export interface LoggedRequest {
  readonly model: string;
  readonly messages: ReadonlyArray<{ role: string; content: string }>;
  readonly response_format?: unknown;
}

export const REQUEST_LOG_LIMIT = 2000;

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
  response_format?: { type?: unknown; json_schema?: { schema?: { properties?: Record<string, unknown> } } };
}

function lastUserText(body: ChatBody): string {
  const users = (body.messages ?? []).filter((m) => m.role === 'user');
  return users.length > 0 ? String(users[users.length - 1].content ?? '') : '';
}

/** The mock's verdict for a verdict request (see the rules at the top), or undefined for any other request. */
export function verdictAnswer(body: ChatBody): string | undefined {
  const props = body.response_format?.type === 'json_schema' ? body.response_format.json_schema?.schema?.properties : undefined;
  const judged = lastUserText(body);
  const asked = (props !== undefined && 'pass' in props && 'feedback' in props) || judged.trimEnd().endsWith(VERDICT_INSTRUCTION);
  if (!asked) return undefined;
  if (judged.includes('NOT-A-VERDICT')) return 'I think it is fine.';
  if (judged.includes('REJECT-ALWAYS')) return JSON.stringify({ pass: false, feedback: 'mock: REJECT-ALWAYS asks for another round' });
  if (judged.includes('draft-v1')) return JSON.stringify({ pass: false, feedback: 'mock: draft-v1 needs a concrete example' });
  return JSON.stringify({ pass: true, feedback: 'mock: accepted' });
}

/** `draft-v<N> ` for a draft request (see the rules at the top), else ''. */
export function draftPrefix(body: ChatBody): string {
  const messages = body.messages ?? [];
  if (!messages.some((m) => String(m.content ?? '').includes('#revise-once'))) return '';
  const revisions = messages.filter((m) => m.role === 'user' && String(m.content ?? '').includes(REVISION_MARKER)).length;
  return `draft-v${revisions + 1} `;
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
  let requestLog: LoggedRequest[] = [];
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
    if (req.method === 'GET' && url === '/__mock/requests') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(requestLog));
      return;
    }
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
    logRequest(model, body);
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
    const verdict = verdictAnswer(body);
    const words = verdict ? verdict.split(/\s+/).length : Math.max(1, behaviour.completionTokens ?? 8);
    const content = verdict ?? draftPrefix(body) + [`echo:${digest}`, ...Array.from({ length: words - 1 }, (_, i) => `w${i}`)].join(' ');
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

  function logRequest(model: string, body: ChatBody): void {
    const messages = Array.isArray(body.messages) ? body.messages.map((m) => ({ role: String(m.role ?? ''), content: String(m.content ?? '') })) : [];
    requestLog.push({ model, messages, ...(body.response_format !== undefined ? { response_format: body.response_format } : {}) });
    if (requestLog.length > REQUEST_LOG_LIMIT) requestLog = requestLog.slice(-REQUEST_LOG_LIMIT / 2);
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
    requests: () => [...requestLog],
    reset() {
      stats = emptyStats();
      requestLog = [];
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
