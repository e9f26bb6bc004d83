import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { AgentConfig } from '../config';
import { ContextOverflowError, countTokens, fitsWithoutCounting, fitToWindow } from '../context/window';
import { costUsd } from '../cost';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { buildModelPolicies, DeadlineExceededError, drainPolicies, ModelPolicy } from '../resilience/model-policy';
import { ChatResponse, UpstreamClient } from '../upstream/client';
import { AuthenticationError, BadRequestError, RateLimitError, ServerError, UpstreamError, UpstreamTimeoutError } from '../upstream/errors';
import { Task, TaskErrorCode, TaskExecutor, TaskResult } from '../types';

export interface InferenceExecutorOptions {
  readonly config: AgentConfig;
  readonly client: Pick<UpstreamClient, 'chat'>;
  readonly metrics: RuntimeMetrics;
  readonly logger: Logger;
  readonly agentId: string;
  /** Random source for backoff jitter (tests make it deterministic). */
  readonly random?: () => number;
}

/**
 * Turns a task into one upstream call, protected by its model's policy and
 * falling back along the catalog's chain. Always resolves to exactly one
 * result; never rejects.
 */
export class InferenceExecutor implements TaskExecutor {
  private readonly policies: Map<string, ModelPolicy>;
  private readonly config: AgentConfig;

  constructor(private readonly opts: InferenceExecutorOptions) {
    this.config = opts.config;
    const m = opts.metrics;
    this.policies = buildModelPolicies(
      opts.config,
      {
        onRetry: (model, reason) => m.retries.inc({ model, reason }),
        onStateChange: (model, state) => {
          m.setBreakerState(model, state);
          opts.logger.warn({ model, state }, 'circuit state changed');
        },
        queue: (model) => m.admissionQueue('model', model),
      },
      opts.random,
    );
    for (const model of this.policies.keys()) m.breakerState.set({ model }, 0);
    // Load each tokenizer table now (~1 s) rather than on the first task.
    for (const entry of Object.values(opts.config.catalog)) countTokens('', entry.tokenizer);
  }

  /** Calls waiting in a model's bulkhead leave at once, handed back as cancelled (the agent drains). */
  drain(): void {
    drainPolicies(this.policies.values(), `agent ${this.opts.agentId} is draining`);
  }

  circuitStates(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [model, p] of this.policies) out[model] = p.state;
    return out;
  }

  /** True when no allowed model can take a call now (readiness fails). */
  allCircuitsOpen(): boolean {
    return this.config.models.allowed.every((m) => {
      const s = this.policies.get(m)?.state;
      return s === 'open' || s === 'isolated';
    });
  }

  async execute(task: Task, deadlineAt: number, signal?: AbortSignal): Promise<TaskResult> {
    const started = Date.now();
    const { metrics, agentId } = this.opts;
    metrics.inFlightTasks.inc();
    let attempts = 0;
    const finish = (r: Omit<TaskResult, 'id' | 'latencyMs' | 'agentId' | 'attempts' | 'costUsd'> & { costUsd?: number }): TaskResult => {
      metrics.inFlightTasks.dec();
      metrics.tasks.inc({ outcome: r.ok ? 'ok' : r.error!.code });
      return { id: task.id, latencyMs: Date.now() - started, agentId, attempts, costUsd: r.costUsd ?? 0, ...r };
    };
    const fail = (code: TaskErrorCode, message: string, model?: string) => finish({ ok: false, model, error: { code, message } });

    const requested = task.model ?? this.config.models.default;
    if (!this.config.models.allowed.includes(requested)) {
      return fail('bad_request', `model '${requested}' is not allowed for role '${this.config.role}' (allowed: ${this.config.models.allowed.join(', ')})`);
    }
    if (task.messages.length === 0) return fail('bad_request', 'task has no messages');

    // `allowed` limits what a task may ask for; the fallbacks the catalog slice
    // carries are usable whenever the requested model cannot answer.
    const chain = [requested, ...this.config.catalog[requested].fallbacks].filter((m, i, all) => all.indexOf(m) === i && this.policies.has(m));
    let lastError: { code: TaskErrorCode; message: string; model: string } | undefined;
    for (const [i, model] of chain.entries()) {
      if (i > 0) metrics.fallbacks.inc({ from: chain[i - 1], to: model });
      const entry = this.config.catalog[model];
      const policy = this.policies.get(model)!;
      let messages;
      try {
        const window = { ...entry, maxTokens: task.maxTokens };
        messages = fitsWithoutCounting(task.messages, window) ? task.messages : fitToWindow(task.messages, window).messages;
      } catch (e) {
        if (e instanceof ContextOverflowError) {
          lastError = { code: 'context_overflow', message: e.message, model };
          continue; // a fallback may have a larger window
        }
        throw e;
      }
      try {
        const { value, attempts: n } = await policy.execute(
          deadlineAt,
          async (timeoutMs, s) => {
            const t0 = process.hrtime.bigint();
            try {
              const res = await this.opts.client.chat({ model, messages, max_tokens: task.maxTokens }, { timeoutMs, signal: s });
              metrics.upstreamRequests.inc({ model, outcome: 'ok' });
              return res;
            } catch (e) {
              metrics.upstreamRequests.inc({ model, outcome: e instanceof UpstreamError ? e.name : 'error' });
              throw e;
            } finally {
              metrics.upstreamLatency.observe({ model }, Number(process.hrtime.bigint() - t0) / 1e9);
            }
          },
          signal,
        );
        attempts += n;
        return this.success(finish, model, value);
      } catch (e) {
        attempts += attemptsOf(e);
        if (signal?.aborted) return fail('cancelled', 'handed back: agent shutting down', model);
        const mapped = mapError(e);
        lastError = { ...mapped, model };
        if (!mapped.tryNext) return fail(mapped.code, mapped.message, model);
        this.opts.logger.debug({ task: task.id, model, code: mapped.code }, 'model failed, trying next');
      }
    }
    return fail(lastError?.code ?? 'internal', lastError?.message ?? 'no model could be tried', lastError?.model);
  }

  private success(finish: (r: Omit<TaskResult, 'id' | 'latencyMs' | 'agentId' | 'attempts' | 'costUsd'> & { costUsd?: number }) => TaskResult, model: string, res: ChatResponse): TaskResult {
    const entry = this.config.catalog[model];
    const cost = costUsd(entry, res.usage);
    const m = this.opts.metrics;
    m.tokens.inc({ model, kind: 'prompt' }, res.usage.promptTokens);
    m.tokens.inc({ model, kind: 'completion' }, res.usage.completionTokens);
    m.costUsd.inc({ model }, cost);
    return finish({ ok: true, model, content: res.content, usage: res.usage, costUsd: cost });
  }
}

// Attempts are counted inside ModelPolicy.execute; when it throws we only
// know that at least one attempt happened unless the circuit refused it.
function attemptsOf(e: unknown): number {
  const n = (e as { attempts?: number }).attempts;
  if (typeof n === 'number') return n;
  return e instanceof BrokenCircuitError ? 0 : 1;
}

/** Error → result code, and whether the next model of the chain may help. */
function mapError(e: unknown): { code: TaskErrorCode; message: string; tryNext: boolean } {
  const message = (e as Error).message ?? String(e);
  if (e instanceof DeadlineExceededError) return { code: 'deadline_exceeded', message, tryNext: false };
  if (e instanceof BrokenCircuitError) return { code: 'circuit_open', message: `circuit open: ${message}`, tryNext: true };
  if (e instanceof TaskCancelledError) return { code: 'cancelled', message: `cancelled: ${message}`, tryNext: false };
  if (e instanceof BulkheadRejectedError) return { code: 'overloaded', message: 'model concurrency limit and queue are full', tryNext: true };
  if (e instanceof AuthenticationError) return { code: 'auth', message, tryNext: false };
  if (e instanceof BadRequestError) return { code: 'bad_request', message, tryNext: false };
  if (e instanceof RateLimitError) return { code: 'rate_limited', message, tryNext: true };
  if (e instanceof ServerError) return { code: 'upstream_error', message, tryNext: true };
  if (e instanceof UpstreamTimeoutError) return { code: 'timeout', message, tryNext: true };
  if (e instanceof UpstreamError) return { code: 'upstream_error', message, tryNext: true };
  return { code: 'internal', message, tryNext: false };
}
