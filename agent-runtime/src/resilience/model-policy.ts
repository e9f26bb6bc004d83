import {
  BrokenCircuitError,
  BulkheadRejectedError,
  circuitBreaker,
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  IBackoff,
  IBackoffFactory,
  IDefaultPolicyContext,
  IPolicy,
  IRetryBackoffContext,
  retry,
  TaskCancelledError,
  wrap,
} from 'cockatiel';
import { setMaxListeners } from 'node:events';
import { AgentConfig, ModelEntry } from '../config';
import { AdmissionExit, FifoSlots, QueueObserver } from '../coordination/admission';
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

// Without a caller's signal, cockatiel passes its policies one shared signal
// that never aborts. Nothing below listens on it (execute hands the bulkhead
// and the attempt no signal then): a listener per call in flight would cost
// an add and a remove each, the remove a walk of hundreds of listeners.
// Listeners allowed without limit anyway, so none can trip Node's "possible
// EventTarget memory leak" warning.
const NEVER_ABORTED = new AbortController().signal;
setMaxListeners(0, NEVER_ABORTED);

/**
 * Full-jitter exponential backoff that also honours the upstream's
 * Retry-After and never sleeps past the call's deadline. Written as an
 * IBackoffFactory because cockatiel's ExponentialBackoff knows neither the
 * failure's Retry-After nor the task's deadline. One instance serves every
 * call of a model: the exponent comes from cockatiel's attempt number, and
 * the deadline from the failure that is retried (`deadlineOf`).
 */
class JitterRetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly deadlineOf: (failure: unknown) => number | undefined,
    private readonly random: () => number,
  ) {}

  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    // cockatiel numbers the first retry 1
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** (context.attempt - 1));
    let duration = Math.floor(this.random() * ceiling);
    const err = 'error' in context.result ? context.result.error : undefined;
    if (err instanceof UpstreamError && err.retryAfterMs !== undefined) duration = Math.max(duration, err.retryAfterMs);
    // A sleep that would end after the deadline is pointless: the attempt
    // after it fails at once with DeadlineExceededError (see ModelPolicy.execute).
    const deadlineAt = this.deadlineOf(err);
    if (deadlineAt !== undefined) duration = Math.min(duration, deadlineAt - Date.now());
    return { duration: Math.max(0, duration), next: (ctx) => this.next(ctx) };
  }
}

export interface PolicyEvents {
  onRetry?(model: string, reason: string, delayMs: number): void;
  onStateChange?(model: string, state: BreakerState): void;
  /** Counts and times of the model's bulkhead queue (metrics). */
  queue?(model: string): QueueObserver | undefined;
}

/**
 * Everything that protects one model: retry → circuit breaker → bulkhead →
 * the attempt (whose timeout is the remaining deadline, applied by the
 * client's abort signal). All of it is made once and lives as long as the
 * process; what differs per call (its deadline, its attempt count) travels
 * with the call, and the backoff finds the deadline of a retried failure
 * through `failedBefore`.
 *
 * The bulkhead is FifoSlots (coordination/admission.ts), not cockatiel's:
 * cockatiel's queue lets a newcomer take a slot freed for the head of the
 * queue (the dequeued call re-enters `execute` a microtask later and goes to
 * the tail if the slot is gone), keeps a queued call past its deadline and
 * its abort signal until a slot frees, and its full-queue rejection was
 * retried here with backoff (polling). FifoSlots hands the freed slot to the
 * head, lets a waiter leave at its deadline (DeadlineExceededError, nothing
 * spent) or on abort (TaskCancelledError), and sheds a call that could not
 * finish in time (BulkheadRejectedError → `overloaded`, next model).
 */
export class ModelPolicy {
  readonly breaker: CircuitBreakerPolicy;
  readonly bulkhead: FifoSlots;
  private readonly policy: IPolicy<IDefaultPolicyContext>;
  // the deadline of the call each failure ended, for the backoff (keys are the thrown errors)
  private readonly failedBefore = new WeakMap<object, number>();

  constructor(
    readonly model: string,
    entry: ModelEntry,
    private readonly retryConfig: AgentConfig['retry'],
    queueSize: number,
    events: PolicyEvents = {},
    random: () => number = Math.random,
  ) {
    this.breaker = circuitBreaker(handleWhen(isTransient), {
      halfOpenAfter: entry.breaker.recoverySeconds * 1000,
      breaker: new ConsecutiveBreaker(entry.breaker.failureThreshold),
    });
    this.breaker.onStateChange((s) => events.onStateChange?.(model, STATE_NAMES[s]));
    this.bulkhead = new FifoSlots({ capacity: entry.maxConcurrency, queueLimit: queueSize, observer: events.queue?.(model) });
    const retryPolicy = retry(handleWhen(isTransient), {
      maxAttempts: retryConfig.maxAttempts - 1,
      backoff: new JitterRetryAfterBackoff(retryConfig.initialDelayMs, retryConfig.maxDelayMs, (e) => (typeof e === 'object' && e !== null ? this.failedBefore.get(e) : undefined), random),
    });
    retryPolicy.onRetry((r) => {
      const reason = 'error' in r ? r.error.name : 'value';
      events.onRetry?.(model, reason, r.delay);
    });
    this.policy = wrap(retryPolicy, this.breaker);
  }

  get state(): BreakerState {
    return STATE_NAMES[this.breaker.state];
  }

  /**
   * Runs `attempt` with retries until it succeeds, fails permanently, the
   * circuit opens, or the deadline comes. `attempt` gets the time it may take,
   * and the signal that cancels it (none when the caller gave none).
   */
  async execute<T>(deadlineAt: number, attempt: (timeoutMs: number, signal: AbortSignal | undefined) => Promise<T>, signal?: AbortSignal): Promise<{ value: T; attempts: number }> {
    let attempts = 0;
    try {
      const value = await this.policy.execute(
        ({ signal: policySignal }) => {
          const s = signal === undefined ? undefined : policySignal;
          return this.bulkhead.run(deadlineAt, s, () => {
            const left = deadlineAt - Date.now();
            if (left <= 0) throw new DeadlineExceededError(`deadline passed after ${attempts} attempt(s) on ${this.model}`);
            attempts += 1;
            return attempt(Math.min(left, this.retryConfig.attemptTimeoutMs ?? left), s);
          }).catch((e: unknown) => {
            if (e instanceof AdmissionExit) throw bulkheadError(e, this.model);
            if (typeof e === 'object' && e !== null) this.failedBefore.set(e, deadlineAt);
            throw e;
          });
        },
        signal ?? NEVER_ABORTED,
      );
      return { value, attempts };
    } catch (e) {
      // The caller reports attempts across retries and fallbacks.
      if (e instanceof Error) Object.assign(e, { attempts });
      throw e;
    }
  }
}

export { BrokenCircuitError, BulkheadRejectedError };

/** The errors the executor already maps: a wait that ended without a slot. */
function bulkheadError(e: AdmissionExit, model: string): Error {
  if (e.reason === 'deadline') return new DeadlineExceededError(`deadline would pass while waiting for ${model}'s bulkhead: ${e.message}`);
  if (e.reason === 'cancelled' || e.reason === 'drained') return new TaskCancelledError(e.message);
  return Object.assign(new BulkheadRejectedError(0, 0), { message: `${model}: ${e.message}` });
}

/** Every call waiting in a bulkhead leaves at once (the agent drains): handed back as cancelled. */
export function drainPolicies(policies: Iterable<ModelPolicy>, message: string): void {
  for (const p of policies) p.bulkhead.drain(message);
}

/** One policy per catalog model of this role. */
export function buildModelPolicies(config: AgentConfig, events: PolicyEvents = {}, random: () => number = Math.random): Map<string, ModelPolicy> {
  const out = new Map<string, ModelPolicy>();
  for (const [model, entry] of Object.entries(config.catalog)) {
    out.set(model, new ModelPolicy(model, entry, config.retry, config.concurrency.maxInFlightTasks, events, random));
  }
  return out;
}
