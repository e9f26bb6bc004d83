// The mock upstream's answers to tools and structured output, deterministic
// (markers are looked for in the request's user messages):
// - A request that offers `tools` gets `tool_calls` when a user message
//   carries `[[tool:NAME {json args}]]` markers (one call per marker, any
//   NAME, offered or not), or else when the last user message asks to
//   "look up" or "find" something and an offered tool has "search" in its
//   name (called with its first required string parameter set to that
//   message). Call ids are `call_<round>_<n>`.
// - Once the last message is a tool result, the answer is
//   `tools:<sha256 prefix> ` followed by the tool results of that round
//   joined by ` | `, so a test can see them fed back; with `[[tools:loop]]`
//   in a user message the mock asks for the same tools again instead, forever.
// - A request with `response_format` json_schema gets a JSON answer that
//   matches the schema (the smallest value each keyword allows, strings
//   "mock"); `[[bad-json]]` makes the answer not JSON, `[[bad-schema]]`
//   makes it JSON of the wrong type.
// The code is in toolReply / structuredReply at the end of the file.

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
//   judged on its last user message (one carrying `[[bad-json]]` or
//   `[[bad-schema]]` is left to the structured-answer rule above):
//     contains `REJECT-ALWAYS`  → {"pass": false, "feedback": "mock: REJECT-ALWAYS asks for another round"}
//     contains `NOT-A-VERDICT`  → plain text, not a verdict
//     contains `draft-v1`       → {"pass": false, "feedback": "mock: draft-v1 needs a concrete example"}
//     otherwise                 → {"pass": true, "feedback": "mock"}
// - Any other request whose messages contain `#revise-once` is a draft: its
//   answer starts with `draft-v<N>`, N = 1 + the revision requests (user
//   turns carrying REVISION_MARKER) in it. So the first draft is rejected and
//   the revised one passes.
// - With `recordRequests` on, every chat request body is kept, read with
//   requests() or GET /__mock/requests.

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
  /** Keep every chat request body, for `requests()` (tests that look at what was sent). */
  recordRequests?: boolean;
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
  /** Calls whose caller went away (aborted) while the mock was still waiting out the latency. */
  abandoned: number;
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
  /** The chat request bodies received while `recordRequests` was on, in arrival order. */
  requests(): ChatRequestBody[];
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
  return { calls: 0, byStatus: {}, byModel: {}, times: [], models: [], maxConcurrent: 0, concurrent: 0, abandoned: 0 };
}

/** A chat request as the mock reads it (OpenAI's field names). */
export interface ChatRequestBody {
  model?: unknown;
  messages?: Array<{ role?: unknown; content?: unknown; tool_calls?: unknown; tool_call_id?: unknown }>;
  stream?: unknown;
  max_tokens?: unknown;
  temperature?: unknown;
  tools?: Array<{ type?: unknown; function?: { name?: unknown; parameters?: unknown } }>;
  response_format?: { type?: unknown; json_schema?: { name?: unknown; schema?: unknown } };
}
type ChatBody = ChatRequestBody;

function lastUserText(body: ChatBody): string {
  const users = (body.messages ?? []).filter((m) => m.role === 'user');
  return users.length > 0 ? String(users[users.length - 1].content ?? '') : '';
}

/** The mock's verdict for a verdict request (see the workflow rules at the top), or undefined for any other request. */
export function verdictAnswer(body: ChatBody): string | undefined {
  const schema = body.response_format?.type === 'json_schema' ? (body.response_format.json_schema?.schema as { properties?: Record<string, unknown> } | undefined) : undefined;
  const props = schema?.properties;
  const judged = lastUserText(body);
  const asked = (props !== undefined && 'pass' in props && 'feedback' in props) || judged.trimEnd().endsWith(VERDICT_INSTRUCTION);
  if (!asked || judged.includes('[[bad-json]]') || judged.includes('[[bad-schema]]')) return undefined;
  if (judged.includes('NOT-A-VERDICT')) return 'I think it is fine.';
  if (judged.includes('REJECT-ALWAYS')) return JSON.stringify({ pass: false, feedback: 'mock: REJECT-ALWAYS asks for another round' });
  if (judged.includes('draft-v1')) return JSON.stringify({ pass: false, feedback: 'mock: draft-v1 needs a concrete example' });
  return JSON.stringify({ pass: true, feedback: 'mock' });
}

/** `draft-v<N> ` for a draft request (see the workflow rules at the top), else ''. */
export function draftPrefix(body: ChatBody): string {
  const messages = body.messages ?? [];
  if (!messages.some((m) => String(m.content ?? '').includes('#revise-once'))) return '';
  const revisions = messages.filter((m) => m.role === 'user' && String(m.content ?? '').includes(REVISION_MARKER)).length;
  return `draft-v${revisions + 1} `;
}

/** What the mock answers instead of its echo: a final text, or tool calls. */
type Reply = { content: string } | { toolCalls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> };

/**
 * A local OpenAI-compatible API for tests, benchmarks and the demo. The
 * answer is derived from the prompt (`echo:<sha256 prefix>`) so a test can
 * tell which task an answer belongs to; usage is a deterministic count
 * (whitespace-separated words + 4 per message), cheap enough for benchmarks.
 * Tools and structured answers follow the rules at the top of this file.
 */
export async function startMockUpstream(opts: MockUpstreamOptions = {}): Promise<MockUpstream> {
  let behaviour: MockBehaviour = { ...opts };
  let random = prng(behaviour.seed ?? 42);
  let stats = emptyStats();
  let recorded: ChatRequestBody[] = [];
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
      res.end(JSON.stringify(recorded));
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
    stats.byModel[model] = (stats.byModel[model] ?? 0) + 1;
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      sendError(res, 401, 'Incorrect API key provided');
      return;
    }
    const fault: ScriptedFault = behaviour.script && behaviour.script.length > 0 ? behaviour.script.shift()! : 'ok';
    const delay = (behaviour.latencyMs ?? 0) + (behaviour.jitterMs ? Math.floor(random() * behaviour.jitterMs) : 0);
    // the wait ends early when the caller goes away (an aborted call leaves no timer behind)
    if (delay > 0) {
      await new Promise<void>((r) => {
        const timer = setTimeout(r, delay);
        res.once('close', () => {
          if (!res.writableEnded) stats.abandoned += 1;
          clearTimeout(timer);
          r();
        });
      });
    }
    if (res.destroyed || res.writableEnded) return;

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

    if (behaviour.recordRequests) recorded.push(body);

    const prompt = body.messages.map((m) => String(m.content ?? '') + (m.tool_calls ? JSON.stringify(m.tool_calls) : '')).join('\n');
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length + 4 * body.messages.length;
    const digest = createHash('sha256').update(prompt).digest('hex').slice(0, 16);
    const verdict = verdictAnswer(body);
    const reply = toolReply(body, digest) ?? (verdict !== undefined ? { content: verdict } : undefined) ?? structuredReply(body);
    const words = reply ? replyWords(reply) : Math.max(1, behaviour.completionTokens ?? 8);
    const content = reply ? ('content' in reply ? reply.content : '') : draftPrefix(body) + [`echo:${digest}`, ...Array.from({ length: words - 1 }, (_, i) => `w${i}`)].join(' ');
    const usage = { prompt_tokens: promptTokens, completion_tokens: words, total_tokens: promptTokens + words };
    const id = `chatcmpl-${digest}`;
    count(200);
    if (reply && 'toolCalls' in reply) {
      const out = JSON.stringify({
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: reply.toolCalls }, finish_reason: 'tool_calls' }],
        usage,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
      return;
    }
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
    requests: () => [...recorded],
    reset() {
      stats = emptyStats();
      recorded = [];
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

// ---- tool calls and structured answers (rules in startMockUpstream's comment) ----

function userText(body: ChatBody): string {
  return (body.messages ?? [])
    .filter((m) => m.role === 'user')
    .map((m) => String(m.content ?? ''))
    .join('\n');
}

const TOOL_MARKER = /\[\[tool:([A-Za-z0-9_.-]+)(\s+\{[^\]]*\})?\]\]/g;

/** The tool calls the user messages' markers ask for, or what a "look up"/"find" request implies. */
function wantedToolCalls(body: ChatBody): Array<{ name: string; arguments: string }> {
  const text = userText(body);
  const marked = [...text.matchAll(TOOL_MARKER)].map((m) => ({ name: m[1], arguments: (m[2] ?? '{}').trim() }));
  if (marked.length > 0) return marked;
  const users = (body.messages ?? []).filter((m) => m.role === 'user');
  const last = String(users[users.length - 1]?.content ?? '');
  if (!/\b(look up|find)\b/i.test(last)) return [];
  const search = (body.tools ?? []).find((t) => typeof t.function?.name === 'string' && t.function.name.includes('search'));
  if (!search) return [];
  const params = (search.function?.parameters ?? {}) as { required?: string[]; properties?: Record<string, { type?: string }> };
  const param = (params.required ?? []).find((r) => params.properties?.[r]?.type === 'string');
  if (!param) return [];
  return [{ name: String(search.function!.name), arguments: JSON.stringify({ [param]: last }) }];
}

/** Tool calls to make, or the answer that reads the tool results; undefined when tools play no part. */
function toolReply(body: ChatBody, digest: string): Reply | undefined {
  if (!Array.isArray(body.tools) || body.tools.length === 0) return undefined;
  const messages = body.messages ?? [];
  const round = messages.filter((m) => m.role === 'assistant' && Array.isArray(m.tool_calls)).length;
  const last = messages[messages.length - 1];
  const calls = () => wantedToolCalls(body).map((c, i) => ({ id: `call_${round}_${i}`, type: 'function' as const, function: c }));
  if (last?.role === 'tool') {
    if (userText(body).includes('[[tools:loop]]')) {
      const again = calls();
      if (again.length > 0) return { toolCalls: again };
    }
    if (body.response_format) return undefined; // answered as structured
    let i = messages.length - 1;
    while (i > 0 && messages[i - 1].role === 'tool') i--;
    const results = messages.slice(i).map((m) => String(m.content ?? ''));
    return { content: `tools:${digest} ${results.join(' | ')}` };
  }
  const wanted = calls();
  return wanted.length > 0 ? { toolCalls: wanted } : undefined;
}

/** A JSON answer for a response_format json_schema request (or a deliberately bad one). */
function structuredReply(body: ChatBody): Reply | undefined {
  const rf = body.response_format;
  if (!rf || rf.type !== 'json_schema') return undefined;
  const schema = (rf.json_schema?.schema ?? {}) as JsonSchema;
  const text = userText(body);
  if (text.includes('[[bad-json]]')) return { content: '{"answer": "cut off' };
  if (text.includes('[[bad-schema]]')) return { content: schema.type === 'object' ? '"not an object"' : '{"not": "the expected type"}' };
  return { content: JSON.stringify(sampleOf(schema)) };
}

interface JsonSchema {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  minItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
}

/**
 * The smallest value a schema allows, by hand: the mock only needs a
 * deterministic instance of the simple schemas tests and the demo use
 * (objects, arrays, scalars, enum/const, anyOf), not a schema faker.
 */
export function sampleOf(schema: JsonSchema): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.enum && schema.enum.length > 0) return schema.enum[0];
  const branch = schema.anyOf?.[0] ?? schema.oneOf?.[0] ?? schema.allOf?.[0];
  if (branch) return sampleOf(branch);
  const type = Array.isArray(schema.type) ? (schema.type.find((t) => t !== 'null') ?? 'null') : (schema.type ?? (schema.properties ? 'object' : 'string'));
  switch (type) {
    case 'object':
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, sampleOf(v)]));
    case 'array':
      return Array.from({ length: schema.minItems ?? 1 }, () => sampleOf(schema.items ?? {}));
    case 'integer':
    case 'number':
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? Math.floor(schema.exclusiveMinimum) + 1 : Math.min(0, schema.maximum ?? 0));
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return 'mock'.padEnd(schema.minLength ?? 0, 'k').slice(0, schema.maxLength ?? Infinity);
  }
}

function replyWords(reply: Reply): number {
  const text = 'content' in reply ? reply.content : JSON.stringify(reply.toolCalls);
  return Math.max(1, text.split(/\s+/).filter(Boolean).length);
}
