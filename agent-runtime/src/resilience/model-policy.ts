import {
  BrokenCircuitError,
  bulkhead,
  BulkheadPolicy,
  BulkheadRejectedError,
  circuitBreaker,
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  IBackoff,
  IBackoffFactory,
  IRetryBackoffContext,
  retry,
  wrap,
} from 'cockatiel';
import { setMaxListeners } from 'node:events';
import { AgentConfig, ModelEntry } from '../config';
import { UpstreamError } from '../upstream/errors';

/** The job's deadline will pass before another attempt could finish. */
export class DeadlineExceededError extends Error {
  constructor(message = 'deadline exceeded') {
    super(message);
    this.name = 'DeadlineExceededError';
  }
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

const isTransient = (e: Error) => e instanceof UpstreamError && e.transient;

// Every call in flight listens on its parent signal. Without a parent,
// cockatiel uses one shared signal, so a few hundred concurrent calls would
// trip Node's "possible EventTarget memory leak" warning (10 listeners).
const NEVER_ABORTED = new AbortController().signal;
setMaxListeners(0, NEVER_ABORTED);

/**
 * Full-jitter exponential backoff that also honours the upstream's
 * Retry-After and never sleeps past the deadline. Written as an
 * IBackoffFactory because cockatiel's ExponentialBackoff knows neither the
 * failure's Retry-After nor the task's deadline.
 */
class JitterRetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly deadlineAt: number,
    private readonly random: () => number,
    private readonly attempt = 0,
  ) {}

  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
    let duration = Math.floor(this.random() * ceiling);
    const err = 'error' in context.result ? context.result.error : undefined;
    if (err instanceof UpstreamError && err.retryAfterMs !== undefined) duration = Math.max(duration, err.retryAfterMs);
    // A sleep that would end after the deadline is pointless: the attempt
    // after it fails at once with DeadlineExceededError (see ModelPolicy.execute).
    duration = Math.max(0, Math.min(duration, this.deadlineAt - Date.now()));
    const nextFactory = new JitterRetryAfterBackoff(this.baseMs, this.capMs, this.deadlineAt, this.random, this.attempt + 1);
    return { duration, next: (ctx) => nextFactory.next(ctx) };
  }
}

export interface PolicyEvents {
  onRetry?(model: string, reason: string, delayMs: number): void;
  onStateChange?(model: string, state: BreakerState): void;
}

/**
 * Everything that protects one model: retry → circuit breaker → bulkhead →
 * the attempt (whose timeout is the remaining deadline, applied by the
 * client's abort signal). The breaker and bulkhead live as long as the
 * process; the retry policy is made per call because its backoff depends on
 * that call's deadline.
 */
export class ModelPolicy {
  readonly breaker: CircuitBreakerPolicy;
  readonly bulkhead: BulkheadPolicy;

  constructor(
    readonly model: string,
    entry: ModelEntry,
    private readonly retryConfig: AgentConfig['retry'],
    queueSize: number,
    private readonly events: PolicyEvents = {},
    private readonly random: () => number = Math.random,
  ) {
    this.breaker = circuitBreaker(handleWhen(isTransient), {
      halfOpenAfter: entry.breaker.recoverySeconds * 1000,
      breaker: new ConsecutiveBreaker(entry.breaker.failureThreshold),
    });
    this.breaker.onStateChange((s) => events.onStateChange?.(model, STATE_NAMES[s]));
    this.bulkhead = bulkhead(entry.maxConcurrency, queueSize);
  }

  get state(): BreakerState {
    return STATE_NAMES[this.breaker.state];
  }

  /**
   * Runs `attempt` with retries until it succeeds, fails permanently, the
   * circuit opens, or the deadline comes. `attempt` gets the time it may take.
   */
  async execute<T>(deadlineAt: number, attempt: (timeoutMs: number, signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<{ value: T; attempts: number }> {
    let attempts = 0;
    const retryPolicy = retry(handleWhen((e) => isTransient(e) || e instanceof BulkheadRejectedError), {
      maxAttempts: this.retryConfig.maxAttempts - 1,
      backoff: new JitterRetryAfterBackoff(this.retryConfig.initialDelayMs, this.retryConfig.maxDelayMs, deadlineAt, this.random),
    });
    retryPolicy.onRetry((r) => {
      const reason = 'error' in r ? r.error.name : 'value';
      this.events.onRetry?.(this.model, reason, r.delay);
    });
    const policy = wrap(retryPolicy, this.breaker, this.bulkhead);
    try {
      const value = await policy.execute(({ signal: s }) => {
        const left = deadlineAt - Date.now();
        if (left <= 0) throw new DeadlineExceededError(`deadline passed after ${attempts} attempt(s) on ${this.model}`);
        attempts += 1;
        return attempt(Math.min(left, this.retryConfig.attemptTimeoutMs ?? left), s);
      }, signal ?? NEVER_ABORTED);
      return { value, attempts };
    } catch (e) {
      // The caller reports attempts across retries and fallbacks.
      if (e instanceof Error) Object.assign(e, { attempts });
      throw e;
    }
  }
}

export { BrokenCircuitError, BulkheadRejectedError };

/** One policy per catalog model of this role. */
export function buildModelPolicies(config: AgentConfig, events: PolicyEvents = {}, random: () => number = Math.random): Map<string, ModelPolicy> {
  const out = new Map<string, ModelPolicy>();
  for (const [model, entry] of Object.entries(config.catalog)) {
    out.set(model, new ModelPolicy(model, entry, config.retry, config.concurrency.maxInFlightTasks, events, random));
  }
  return out;
}
