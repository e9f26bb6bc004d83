import { IncomingHttpHeaders } from 'node:http';
import { Dispatcher, Pool, errors as undiciErrors } from 'undici';
import { ChatMessage, ToolCall } from '../types';
import { BadRequestError, ConnectionError, errorForStatus, parseRetryAfter, UpstreamAbortedError, UpstreamError, UpstreamTimeoutError } from './errors';

/** A function the model may call (OpenAI `tools[]`). */
export interface ToolDefinition {
  readonly type: 'function';
  readonly function: { readonly name: string; readonly description?: string; readonly parameters: Readonly<Record<string, unknown>> };
}

/** OpenAI structured outputs: the answer must be JSON matching `schema`. */
export interface ResponseFormat {
  readonly type: 'json_schema';
  readonly json_schema: { readonly name: string; readonly schema: Readonly<Record<string, unknown>>; readonly strict: boolean };
}

export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly max_tokens?: number;
  readonly temperature?: number;
  /** Offered tools; absent or empty: none (the field is then left out of the body). */
  readonly tools?: readonly ToolDefinition[];
  readonly response_format?: ResponseFormat;
}

export interface ChatResponse {
  readonly id: string;
  readonly model: string;
  /** Empty when the model only asked for tools. */
  readonly content: string;
  /** The tools the model asked to run (absent: none; the answer is final). */
  readonly toolCalls?: readonly ToolCall[];
  readonly finishReason?: string;
  readonly usage: { readonly promptTokens: number; readonly cachedPromptTokens?: number; readonly completionTokens: number; readonly totalTokens: number };
}

export interface ChatChunk {
  readonly delta: string;
  readonly usage?: ChatResponse['usage'];
}

export interface UpstreamClientOptions {
  /** e.g. http://127.0.0.1:8000/v1 */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** Keep-alive connections to the upstream. @default 64 */
  readonly connections?: number;
  /** Largest response body accepted. @default 4 MiB */
  readonly maxResponseBytes?: number;
}

interface OpenAiCompletion {
  id?: string;
  model?: string;
  choices?: Array<{ message?: { content?: string | null; tool_calls?: unknown }; finish_reason?: string }>;
  usage?: OpenAiUsage;
}

interface OpenAiUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** The usage block in our shape; cachedPromptTokens only when the upstream reports it. */
function usageOf(u: OpenAiUsage): ChatResponse['usage'] {
  const promptTokens = u.prompt_tokens ?? 0;
  const completionTokens = u.completion_tokens ?? 0;
  const cached = u.prompt_tokens_details?.cached_tokens;
  return {
    promptTokens,
    ...(typeof cached === 'number' ? { cachedPromptTokens: cached } : {}),
    completionTokens,
    totalTokens: u.total_tokens ?? promptTokens + completionTokens,
  };
}

/**
 * An OpenAI-compatible chat client over one undici keep-alive pool.
 * Every failure is one of the typed errors in ./errors.
 */
export class UpstreamClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly headers: Record<string, string>;
  private readonly maxResponseBytes: number;

  constructor(opts: UpstreamClientOptions) {
    const url = new URL(opts.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: opts.connections ?? 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: 5_000 },
    });
    this.headers = { authorization: `Bearer ${opts.apiKey}`, 'content-type': 'application/json', accept: 'application/json' };
    this.maxResponseBytes = opts.maxResponseBytes ?? 4 * 1024 * 1024;
  }

  /**
   * One chat completion. `timeoutMs` bounds this attempt; `signal` cancels it;
   * `headers` are added to the request (the attempt's `traceparent`).
   */
  async chat(req: ChatRequest, opts: { signal?: AbortSignal; timeoutMs?: number; headers?: Readonly<Record<string, string>> } = {}): Promise<ChatResponse> {
    const res = await this.exchange(payloadOf(req, false), opts);
    if (res.status < 200 || res.status >= 300) throw errorForStatus(res.status, upstreamMessage(res.body.slice(0, 64 * 1024)), parseRetryAfter(res.headers));
    const body = res.body;
    let parsed: OpenAiCompletion;
    try {
      parsed = JSON.parse(body) as OpenAiCompletion;
    } catch {
      throw new BadRequestError('upstream returned a body that is not JSON', 200);
    }
    const choice = parsed.choices?.[0];
    const toolCalls = parseToolCalls(choice?.message?.tool_calls);
    if (!choice || (typeof choice.message?.content !== 'string' && !toolCalls)) {
      throw new BadRequestError('upstream response has no choices[0].message.content nor tool_calls', 200);
    }
    return {
      id: parsed.id ?? '',
      model: parsed.model ?? req.model,
      content: choice.message?.content ?? '',
      ...(toolCalls ? { toolCalls } : {}),
      finishReason: choice.finish_reason,
      usage: usageOf(parsed.usage ?? {}),
    };
  }

  /** A streamed chat completion (SSE), yielding content deltas and, last, the usage when sent. */
  async *chatStream(req: ChatRequest, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): AsyncIterable<ChatChunk> {
    const { res, done, timedOut } = await this.open({ ...payloadOf(req, true), stream_options: { include_usage: true } }, { ...opts, accept: 'text/event-stream' });
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') return;
          const evt = JSON.parse(data) as OpenAiCompletion & { choices?: Array<{ delta?: { content?: string } }> };
          const delta = evt.choices?.[0]?.delta?.content ?? '';
          const u = evt.usage;
          yield { delta, usage: u ? usageOf(u) : undefined };
        }
      }
    } catch (e) {
      throw toUpstreamError(e, timedOut());
    } finally {
      done();
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /**
   * Starts a request. One AbortController per attempt carries both the
   * caller's cancel signal and the attempt timeout (a plain timer: undici's
   * own timeouts are coarse, and AbortSignal.any is costly on Node 20).
   * `done()` must be called once the body is consumed.
   */
  private async open(payload: object, opts: { signal?: AbortSignal; timeoutMs?: number; accept?: string }) {
    const ac = new AbortController();
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
          timedOut = true;
          ac.abort();
        }, Math.max(1, opts.timeoutMs))
        : undefined;
    const onCancel = () => ac.abort();
    opts.signal?.addEventListener('abort', onCancel, { once: true });
    const done = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCancel);
    };
    let res;
    try {
      res = await this.pool.request({
        method: 'POST',
        path: `${this.basePath}/chat/completions`,
        headers: opts.accept ? { ...this.headers, accept: opts.accept } : this.headers,
        body: JSON.stringify(payload),
        signal: ac.signal,
      });
    } catch (e) {
      done();
      throw toUpstreamError(e, timedOut);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return { res, done, timedOut: () => timedOut };
    const text = await readLimited(res.body, 64 * 1024).catch(() => '');
    done();
    throw errorForStatus(res.statusCode, upstreamMessage(text), parseRetryAfter(res.headers));
  }

  /**
   * One buffered request straight on the pool's dispatcher: the body is
   * collected (up to maxResponseBytes) without a stream object in between,
   * which costs about 30 % less CPU per call than request() and reading its
   * body stream (measured: 27 vs 40 us per call at 64 in flight). The
   * attempt timeout and the caller's cancel signal abort it directly.
   */
  private exchange(payload: object, opts: { signal?: AbortSignal; timeoutMs?: number; headers?: Readonly<Record<string, string>> }): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    const limit = this.maxResponseBytes;
    return new Promise((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined;
      let abortReason: Error | undefined;
      let timedOut = false;
      let settled = false;
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      const stop = (reason: Error) => {
        abortReason ??= reason;
        controller?.abort(reason);
      };
      const timer =
        opts.timeoutMs !== undefined
          ? setTimeout(() => {
            timedOut = true;
            stop(new UpstreamTimeoutError('upstream attempt timed out'));
          }, Math.max(1, opts.timeoutMs))
          : undefined;
      const onCancel = () => stop(new UpstreamAbortedError('upstream attempt aborted by the caller'));
      opts.signal?.addEventListener('abort', onCancel, { once: true });
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onCancel);
        if (err) reject(toUpstreamError(err, timedOut));
        else resolve({ status, headers, body: (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)).toString('utf8') });
      };
      if (opts.signal?.aborted) return finish(new UpstreamAbortedError('upstream attempt aborted by the caller'));
      try {
        this.pool.dispatch(
          { method: 'POST', path: `${this.basePath}/chat/completions`, headers: opts.headers ? { ...this.headers, ...opts.headers } : this.headers, body: JSON.stringify(payload) },
          {
            onRequestStart(c) {
              controller = c;
              if (abortReason) c.abort(abortReason);
            },
            onResponseStart(_c, statusCode, h) {
              status = statusCode;
              headers = h;
            },
            onResponseData(c, chunk) {
              size += chunk.length;
              if (size > limit) return c.abort(new BadRequestError(`upstream response larger than ${limit} bytes`, 200));
              chunks.push(chunk);
            },
            onResponseEnd() {
              finish();
            },
            onResponseError(_c, e) {
              finish(e);
            },
          },
        );
      } catch (e) {
        finish(e);
      }
      return undefined;
    });
  }
}

/** The request body: optional fields left out when unset, as OpenAI-compatible servers expect. */
function payloadOf(req: ChatRequest, stream: boolean): object {
  // the common case copies as is: JSON.stringify drops an undefined response_format itself
  if (req.tools === undefined || req.tools.length > 0) return { ...req, stream };
  const { tools, response_format: responseFormat, ...rest } = req;
  return {
    ...rest,
    ...(tools && tools.length > 0 ? { tools } : {}),
    ...(responseFormat ? { response_format: responseFormat } : {}),
    stream,
  };
}

/** `message.tool_calls` of an answer, or undefined when there are none; a malformed list is the upstream's fault. */
function parseToolCalls(raw: unknown): ToolCall[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw new BadRequestError('upstream response has a tool_calls that is not a list', 200);
  if (raw.length === 0) return undefined;
  return raw.map((c: { id?: unknown; function?: { name?: unknown; arguments?: unknown } }, i) => {
    if (typeof c?.id !== 'string' || typeof c.function?.name !== 'string') {
      throw new BadRequestError(`upstream response tool_calls[${i}] has no id or function.name`, 200);
    }
    const args = c.function.arguments;
    return { id: c.id, type: 'function' as const, function: { name: c.function.name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) } };
  });
}

async function readLimited(body: AsyncIterable<unknown> & { destroy?: () => void }, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) {
      body.destroy?.();
      throw new BadRequestError(`upstream response larger than ${limit} bytes`, 200);
    }
    parts.push(b);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The `error.message` of an OpenAI error body, or the raw text. */
function upstreamMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
    if (typeof j.error === 'string') return j.error;
    return j.error?.message ?? j.message ?? text.slice(0, 500);
  } catch {
    return text.slice(0, 500) || '(empty body)';
  }
}

function toUpstreamError(e: unknown, timedOut = false): UpstreamError {
  if (e instanceof UpstreamError) return e;
  const err = e as Error & { code?: string; name?: string };
  if (timedOut || err.name === 'TimeoutError' || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new UpstreamTimeoutError('upstream attempt timed out');
  }
  // the attempt's timer sets timedOut; any other abort came from the caller's signal
  if (err instanceof UpstreamAbortedError || err.name === 'AbortError' || err instanceof undiciErrors.RequestAbortedError) {
    return new UpstreamAbortedError('upstream attempt aborted by the caller');
  }
  return new ConnectionError(`upstream connection failed: ${err.code ?? err.name}: ${err.message}`);
}
