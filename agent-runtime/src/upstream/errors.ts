// Typed failures of the upstream, one class per kind, so policies decide by
// type (transient or not) and results carry a stable error code.

export abstract class UpstreamError extends Error {
  /** True when another attempt may succeed (retry, count toward the breaker). */
  abstract readonly transient: boolean;
  constructor(
    message: string,
    readonly status?: number,
    /** How long the upstream asked us to wait before the next call. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 401/403: the key is wrong; retrying cannot help. */
export class AuthenticationError extends UpstreamError {
  readonly transient = false;
}
/** 429: slow down, then retry (after Retry-After when given). */
export class RateLimitError extends UpstreamError {
  readonly transient = true;
}
/** 500/502/503/504: retry. */
export class ServerError extends UpstreamError {
  readonly transient = true;
}
/** Any other 4xx (and unexpected statuses): the request itself is wrong; fail fast with the upstream's message. */
export class BadRequestError extends UpstreamError {
  readonly transient = false;
}
/** One attempt ran out of time. */
export class UpstreamTimeoutError extends UpstreamError {
  readonly transient = true;
}
/**
 * The caller cancelled the attempt (a client's cancel, a job's DELETE, a
 * drain hand-back): not the upstream's fault, so never retried and never
 * counted toward the model's circuit breaker.
 */
export class UpstreamAbortedError extends UpstreamError {
  readonly transient = false;
}
/** Connection refused/reset/closed before a response. */
export class ConnectionError extends UpstreamError {
  readonly transient = true;
}

const TRANSIENT_5XX = new Set([500, 502, 503, 504]);

/** Retry-After is seconds or an HTTP date; retry-after-ms is an OpenAI extension. */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | undefined {
  const ms = headers['retry-after-ms'];
  if (typeof ms === 'string' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers['retry-after'];
  if (typeof ra !== 'string' || ra.trim() === '') return undefined;
  const secs = Number(ra);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const date = Date.parse(ra);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** Maps a non-2xx response to its error class. */
export function errorForStatus(status: number, message: string, retryAfterMs?: number): UpstreamError {
  const text = `upstream ${status}: ${message}`;
  if (status === 401 || status === 403) return new AuthenticationError(text, status);
  if (status === 429) return new RateLimitError(text, status, retryAfterMs);
  if (TRANSIENT_5XX.has(status)) return new ServerError(text, status, retryAfterMs);
  return new BadRequestError(text, status);
}
