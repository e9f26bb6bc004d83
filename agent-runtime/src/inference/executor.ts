import type Ajv from 'ajv';
import type { ValidateFunction } from 'ajv';
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { AgentConfig } from '../config';
import { BudgetExceededError, Budgets, BudgetUnavailableError, worstCaseNano } from '../budget/budgets';
import type { Reservation } from '../budget/ledger';
import { ContextOverflowError, countTokens, fitsWithoutCounting, fitToWindow, messageTokens, REPLY_PRIMING_TOKENS } from '../context/window';
import { costUsd } from '../cost';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { buildModelPolicies, DeadlineExceededError, drainPolicies, ModelPolicy } from '../resilience/model-policy';
import { ChatRequest, ChatResponse, ResponseFormat, ToolDefinition, UpstreamClient } from '../upstream/client';
import { AuthenticationError, BadRequestError, RateLimitError, ServerError, UpstreamAbortedError, UpstreamError, UpstreamTimeoutError } from '../upstream/errors';
import type { AgentTracer, TraceContext } from '../telemetry';
import { counterSeries, CounterSeries, histogramSeries, HistogramSeries } from '../telemetry/prom-series';
import { OPERATION_CHAT, PROVIDER_OPENAI } from '../telemetry/semconv';
import type { ToolRunner } from '../tools/mcp-toolbox';
import { ChatMessage, SpendScope, Task, TaskErrorCode, TaskExecutor, TaskResult, ToolCallRecord, Usage } from '../types';

export interface InferenceExecutorOptions {
  readonly config: AgentConfig;
  readonly client: Pick<UpstreamClient, 'chat'>;
  readonly metrics: RuntimeMetrics;
  readonly logger: Logger;
  readonly agentId: string;
  /** Random source for backoff jitter (tests make it deterministic). */
  readonly random?: () => number;
  /** The role's MCP tools (config `tools`); absent: the model is offered none. */
  readonly tools?: ToolRunner;
  /** Budgets every upstream attempt reserves against (absent: none apply). */
  readonly budgets?: Budgets;
  /** Spans for upstream attempts (`chat {model}`), retries and fallbacks; absent: tracing is off. */
  readonly tracer?: AgentTracer;
}

/**
 * Turns a task into upstream calls, each protected by its model's policy and
 * falling back along the catalog's chain: one call, or one per tool round
 * when the model asks for the role's MCP tools. Sends the role's
 * instructions first and checks structured answers against their schema.
 * Always resolves to exactly one result; never rejects.
 */
export class InferenceExecutor implements TaskExecutor {
  private readonly policies: Map<string, ModelPolicy>;
  private readonly config: AgentConfig;
  // Made on the first response schema: roles without one do not load them at boot.
  private readonly ajvs = new Map<'draft-07' | '2020-12', Ajv>();
  private readonly validators = new Map<string, ValidateFunction>();
  // metric series bound once (per model, per task outcome) rather than labelled on every call
  private readonly series = new Map<string, ModelSeries>();
  private readonly outcomes = new Map<string, CounterSeries>();
  private readonly chains = new Map<string, readonly string[]>();

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
    // What the task has spent so far, over every round's upstream calls.
    let attempts = 0;
    let costSoFar = 0;
    let usage: Usage | undefined;
    const toolCalls: ToolCallRecord[] = [];
    const finish = (r: Omit<TaskResult, 'id' | 'latencyMs' | 'agentId' | 'attempts' | 'costUsd' | 'usage' | 'toolCalls'>): TaskResult => {
      metrics.inFlightTasks.dec();
      this.outcomeSeries(r.ok ? 'ok' : r.error!.code).inc();
      return {
        id: task.id,
        latencyMs: Date.now() - started,
        agentId,
        attempts,
        costUsd: costSoFar,
        ...(usage ? { usage } : {}),
        ...(toolCalls.length > 0 ? { toolCalls } : {}),
        ...r,
      };
    };
    const fail = (code: TaskErrorCode, message: string, model?: string) => finish({ ok: false, model, error: { code, message } });

    const requested = task.model ?? this.config.models.default;
    if (!this.config.models.allowed.includes(requested)) {
      return fail('bad_request', `model '${requested}' is not allowed for role '${this.config.role}' (allowed: ${this.config.models.allowed.join(', ')})`);
    }
    if (task.messages.length === 0) return fail('bad_request', 'task has no messages');

    // The role's behaviour gives the defaults; the task's own fields win.
    const behavior = this.config.behavior;
    const call: CallShape = {
      maxTokens: task.maxTokens ?? behavior?.maxTokens,
      temperature: task.temperature ?? behavior?.temperature,
    };
    const schema = task.responseSchema ?? behavior?.responseSchema;
    let validate: ValidateFunction | undefined;
    if (schema) {
      try {
        validate = this.answerValidator(schema.schema);
      } catch (e) {
        return fail('bad_request', `responseSchema '${schema.name}' is not a valid JSON Schema: ${(e as Error).message}`);
      }
      call.responseFormat = { type: 'json_schema', json_schema: { name: schema.name, schema: schema.schema, strict: true } };
    }
    // The instructions go first on every call; the window keeps system messages.
    let conversation: readonly ChatMessage[] = behavior?.instructions ? [{ role: 'system', content: behavior.instructions }, ...task.messages] : task.messages;
    const tools = this.opts.tools;
    if (tools) call.tools = await tools.offer(deadlineAt);
    const maxRounds = this.config.tools?.maxRounds ?? 0;

    // `allowed` limits what a task may ask for; the fallbacks the catalog slice
    // carries are usable whenever the requested model cannot answer.
    const chain = this.chainOf(requested);
    let from = 0;
    for (let round = 0; ; round++) {
      const answer = await this.callModel(chain, from, conversation, call, deadlineAt, task.id, signal, task.trace, task.spend);
      attempts += answer.attempts;
      if (!answer.ok) return fail(answer.code, answer.message, answer.model);
      // later rounds start at the model that answered, not back at a failing one
      from = answer.index;
      const { model, response } = answer;
      const spent = this.account(model, response);
      costSoFar += spent;
      usage = addUsage(usage, response.usage);

      if (response.toolCalls) {
        if (round >= maxRounds) {
          const asked = response.toolCalls.map((c) => c.function.name).join(', ');
          const why = this.config.tools
            ? `the model still asked for tools (${asked}) after ${maxRounds} tool round${maxRounds === 1 ? '' : 's'} (tools.maxRounds)`
            : `the model asked for tools (${asked}) but role '${this.config.role}' has no tools configured`;
          return fail('tool_rounds_exceeded', why, model);
        }
        const turn: ChatMessage[] = [{ role: 'assistant', content: response.content, tool_calls: response.toolCalls }];
        const outcomes = await Promise.all(
          response.toolCalls.map((c) =>
            tools
              ? tools.call(c.function.name, c.function.arguments, deadlineAt, signal)
              : Promise.resolve({ ok: false, outcome: 'unknown_tool' as const, content: `error: this role offers no tools (asked for ${c.function.name})`, latencyMs: 0 }),
          ),
        );
        response.toolCalls.forEach((c, i) => {
          toolCalls.push({ name: c.function.name, ok: outcomes[i].ok, latencyMs: outcomes[i].latencyMs });
          turn.push({ role: 'tool', tool_call_id: c.id, content: outcomes[i].content });
        });
        conversation = [...conversation, ...turn];
        if (signal?.aborted) return fail('cancelled', cancelMessage(signal), model);
        continue;
      }

      if (validate && schema) {
        const problem = answerProblem(response.content, validate);
        if (problem) return fail('bad_response', `the answer of ${model} ${problem} (response schema '${schema.name}')`, model);
      }
      return finish({ ok: true, model, content: response.content });
    }
  }

  /**
   * One model turn: the first model of `chain[from..]` that answers, each
   * protected by its policy (retries, breaker, bulkhead, attempt timeout).
   */
  private async callModel(
    chain: readonly string[],
    from: number,
    conversation: readonly ChatMessage[],
    call: CallShape,
    deadlineAt: number,
    taskId: string,
    signal?: AbortSignal,
    trace?: TraceContext,
    spend?: SpendScope,
  ): Promise<{ ok: true; model: string; index: number; response: ChatResponse; attempts: number } | { ok: false; code: TaskErrorCode; message: string; model?: string; attempts: number }> {
    const { metrics, tracer } = this.opts;
    let attempts = 0;
    let lastError: { code: TaskErrorCode; message: string; model: string } | undefined;
    // a fallback not yet told: an event on the next attempt's span
    let fallback: { from: string; to: string; errorType: string } | undefined;
    for (let i = from; i < chain.length; i++) {
      const model = chain[i];
      if (i > from) {
        metrics.fallbacks.inc({ from: chain[i - 1], to: model });
        if (tracer) fallback = { from: chain[i - 1], to: model, errorType: lastError?.code ?? 'internal' };
      }
      const entry = this.config.catalog[model];
      const policy = this.policies.get(model)!;
      const series = this.seriesOf(model);
      let messages: readonly ChatMessage[];
      try {
        const window = { contextWindowTokens: entry.contextWindowTokens, reserveTokens: entry.reserveTokens, maxTokens: call.maxTokens, tokenizer: entry.tokenizer };
        messages = fitsWithoutCounting(conversation, window) ? conversation : pairToolTurns(fitToWindow(conversation, window).messages);
      } catch (e) {
        if (e instanceof ContextOverflowError) {
          lastError = { code: 'context_overflow', message: e.message, model };
          continue; // a fallback may have a larger window
        }
        throw e;
      }
      const budgets = this.opts.budgets?.applies(spend) ? this.opts.budgets : undefined;
      // With a budget, the call must have a bound: without max_tokens the
      // worst case is the rest of the model's window, and the request says so.
      const worst = budgets ? this.worstCase(model, messages, call) : undefined;
      // fields set one by one: conditional spreads cost a temporary object each
      const req: { -readonly [K in keyof ChatRequest]: ChatRequest[K] } = { model, messages, max_tokens: call.maxTokens ?? worst?.maxTokens };
      if (call.temperature !== undefined) req.temperature = call.temperature;
      if (call.tools && call.tools.length > 0) req.tools = call.tools;
      if (call.responseFormat) req.response_format = call.responseFormat;
      // attempts on this model so far: a retry's span counts the ones before it
      let tries = 0;
      try {
        const { value, attempts: n } = await policy.execute(
          deadlineAt,
          async (timeoutMs, s) => {
            // each attempt (retries too) holds its worst case first; one that does not fit is not made
            const hold: Reservation | undefined = budgets && worst ? await budgets.reserve(spend, worst.nano) : undefined;
            let spentUsd = 0;
            const resend = tries++;
            const span = tracer?.startChat(trace, model, resend, call, fallback);
            fallback = undefined;
            const t0 = process.hrtime.bigint();
            try {
              const res = await this.opts.client.chat(req, span ? { timeoutMs, signal: s, headers: tracer!.carrierOf(span) as Record<string, string> } : { timeoutMs, signal: s });
              const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
              series.ok.inc();
              if (hold) spentUsd = costUsd(entry, res.usage);
              series.latency.observe(seconds);
              const genAi = series.answeredBy(res.model);
              genAi.duration.observe(seconds);
              genAi.input.observe(res.usage.promptTokens);
              genAi.output.observe(res.usage.completionTokens);
              if (span) tracer!.endChat(span, { ok: true, model: res.model, id: res.id, finishReason: res.finishReason, inputTokens: res.usage.promptTokens, outputTokens: res.usage.completionTokens });
              return res;
            } catch (e) {
              const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
              const type = errorType(e);
              metrics.upstreamRequests.inc({ model, outcome: e instanceof UpstreamError ? e.name : 'error' });
              series.latency.observe(seconds);
              metrics.genAiOperationDuration.observe({ gen_ai_operation_name: OPERATION_CHAT, gen_ai_provider_name: PROVIDER_OPENAI, gen_ai_request_model: model, error_type: type }, seconds);
              if (span) tracer!.endChat(span, { ok: false, errorType: type, message: (e as Error).message });
              throw e;
            } finally {
              if (hold) {
                // a failed settle leaves the worst case held: the budget stays on the safe side
                await budgets!.settle(hold, spentUsd, spend).catch((e: Error) => this.opts.logger.error({ task: taskId, model, err: e.message }, 'budget settle failed; the reservation stays held'));
              }
            }
          },
          signal,
        );
        attempts += n;
        return { ok: true, model, index: i, response: value, attempts };
      } catch (e) {
        // a refused attempt was counted by the policy but never made
        attempts += attemptsOf(e) - (e instanceof BudgetExceededError || e instanceof BudgetUnavailableError ? 1 : 0);
        if (signal?.aborted) return { ok: false, code: 'cancelled', message: cancelMessage(signal), model, attempts };
        const mapped = mapError(e);
        lastError = { ...mapped, model };
        if (!mapped.tryNext) return { ok: false, code: mapped.code, message: mapped.message, model, attempts };
        this.opts.logger.debug({ task: taskId, model, code: mapped.code }, 'model failed, trying next');
      }
    }
    return { ok: false, code: lastError?.code ?? 'internal', message: lastError?.message ?? 'no model could be tried', model: lastError?.model, attempts };
  }

  /**
   * The most one attempt can cost: every prompt token (messages, tool
   * definitions and the answer schema, counted with the model's tokenizer)
   * at the input price, and max_tokens (the task's, else what is left of the
   * window) at the output price.
   */
  private worstCase(model: string, messages: readonly ChatMessage[], call: CallShape): { nano: number; maxTokens: number } {
    const entry = this.config.catalog[model];
    let prompt = REPLY_PRIMING_TOKENS;
    for (const m of messages) prompt += messageTokens(m, entry.tokenizer);
    if (call.tools && call.tools.length > 0) prompt += countTokens(JSON.stringify(call.tools), entry.tokenizer);
    if (call.responseFormat) prompt += countTokens(JSON.stringify(call.responseFormat), entry.tokenizer);
    const maxTokens = call.maxTokens ?? Math.max(1, entry.contextWindowTokens - prompt);
    return { nano: worstCaseNano(entry, prompt, maxTokens), maxTokens };
  }

  /** Records one answer's tokens and spend; returns its cost. */
  private account(model: string, res: ChatResponse): number {
    const entry = this.config.catalog[model];
    const cost = costUsd(entry, res.usage);
    const series = this.seriesOf(model);
    series.promptTokens.inc(res.usage.promptTokens);
    series.completionTokens.inc(res.usage.completionTokens);
    series.cost.inc(cost);
    return cost;
  }

  /** The requested model, then its catalog fallbacks this role has a policy for, each once (fixed per model: made on first use). */
  private chainOf(requested: string): readonly string[] {
    let chain = this.chains.get(requested);
    if (!chain) {
      chain = [requested, ...this.config.catalog[requested].fallbacks].filter((m, i, all) => all.indexOf(m) === i && this.policies.has(m));
      this.chains.set(requested, chain);
    }
    return chain;
  }

  private seriesOf(model: string): ModelSeries {
    let s = this.series.get(model);
    if (!s) {
      s = new ModelSeries(this.opts.metrics, model);
      this.series.set(model, s);
    }
    return s;
  }

  /** agent_tasks_total's series for one outcome ('ok' or an error code: a closed set). */
  private outcomeSeries(outcome: string): CounterSeries {
    let s = this.outcomes.get(outcome);
    if (!s) {
      s = counterSeries(this.opts.metrics.tasks, { outcome });
      this.outcomes.set(outcome, s);
    }
    return s;
  }

  /** A compiled validator per distinct answer schema (tasks of a workflow share a few). */
  private answerValidator(schema: Readonly<Record<string, unknown>>): ValidateFunction {
    const key = JSON.stringify(schema);
    let v = this.validators.get(key);
    if (!v) {
      if (this.validators.size >= 256) this.validators.clear();
      const dialect = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12') ? '2020-12' : 'draft-07';
      let ajv = this.ajvs.get(dialect);
      if (!ajv) {
        /* eslint-disable @typescript-eslint/no-require-imports */
        const Ctor = dialect === '2020-12' ? (require('ajv/dist/2020') as typeof import('ajv/dist/2020')).default : (require('ajv') as typeof import('ajv')).default;
        const addFormats = (require('ajv-formats') as typeof import('ajv-formats')).default;
        /* eslint-enable @typescript-eslint/no-require-imports */
        // answer schemas come from configs and tasks, not from us: lenient about unknown keywords
        ajv = addFormats(new Ctor({ allErrors: true, strict: false }));
        this.ajvs.set(dialect, ajv);
      }
      v = ajv.compile(schema);
      this.validators.set(key, v);
    }
    return v;
  }
}

/** The series one model's successful upstream attempts record. */
class ModelSeries {
  readonly ok: CounterSeries;
  readonly latency: HistogramSeries;
  readonly promptTokens: CounterSeries;
  readonly completionTokens: CounterSeries;
  readonly cost: CounterSeries;
  // by the model the upstream says answered (normally the one asked for); the
  // upstream names it, so only the first few are kept bound
  private readonly genAi = new Map<string, GenAiSeries>();

  constructor(
    private readonly metrics: RuntimeMetrics,
    private readonly model: string,
  ) {
    this.ok = counterSeries(metrics.upstreamRequests, { model, outcome: 'ok' });
    this.latency = histogramSeries(metrics.upstreamLatency, { model });
    this.promptTokens = counterSeries(metrics.tokens, { model, kind: 'prompt' });
    this.completionTokens = counterSeries(metrics.tokens, { model, kind: 'completion' });
    this.cost = counterSeries(metrics.costUsd, { model });
  }

  /** gen_ai_client_* series of an answer from `responseModel`. */
  answeredBy(responseModel: string): GenAiSeries {
    let s = this.genAi.get(responseModel);
    if (!s) {
      const labels = { gen_ai_operation_name: OPERATION_CHAT, gen_ai_provider_name: PROVIDER_OPENAI, gen_ai_request_model: this.model, gen_ai_response_model: responseModel };
      const m = this.metrics;
      const input = { ...labels, gen_ai_token_type: 'input' };
      const output = { ...labels, gen_ai_token_type: 'output' };
      if (this.genAi.size >= 16) {
        return {
          duration: { observe: (v) => m.genAiOperationDuration.observe(labels, v) },
          input: { observe: (v) => m.genAiTokenUsage.observe(input, v) },
          output: { observe: (v) => m.genAiTokenUsage.observe(output, v) },
        };
      }
      s = { duration: histogramSeries(m.genAiOperationDuration, labels), input: histogramSeries(m.genAiTokenUsage, input), output: histogramSeries(m.genAiTokenUsage, output) };
      this.genAi.set(responseModel, s);
    }
    return s;
  }
}

interface GenAiSeries {
  readonly duration: HistogramSeries;
  readonly input: HistogramSeries;
  readonly output: HistogramSeries;
}

interface CallShape {
  maxTokens?: number;
  temperature?: number;
  tools?: ToolDefinition[];
  responseFormat?: ResponseFormat;
}

/** The usage of a task's model turns together (tool rounds, validation rounds); cached prompt tokens too, when any turn reported them. */
export function addUsage(a: Usage | undefined, b: Usage): Usage {
  if (!a) return b;
  const cached = (a.cachedPromptTokens ?? 0) + (b.cachedPromptTokens ?? 0);
  return { promptTokens: a.promptTokens + b.promptTokens, completionTokens: a.completionTokens + b.completionTokens, totalTokens: a.totalTokens + b.totalTokens, ...(a.cachedPromptTokens !== undefined || b.cachedPromptTokens !== undefined ? { cachedPromptTokens: cached } : {}) };
}

/** Why an answer is not what the schema asks for, or undefined when it is. */
function answerProblem(content: string, validate: ValidateFunction): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (e) {
    return `is not JSON (${(e as Error).message}): ${JSON.stringify(content.slice(0, 120))}`;
  }
  if (!validate(parsed)) {
    const errors = (validate.errors ?? []).slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    return `does not match the schema: ${errors.join('; ')}`;
  }
  return undefined;
}

/**
 * The window drops the oldest turns first and may cut between an assistant
 * turn that asked for tools and the tool results that answer it; a tool
 * message without its call is refused by OpenAI-compatible APIs, so such
 * leading orphans go too.
 */
function pairToolTurns(messages: ChatMessage[]): ChatMessage[] {
  const asked = new Set<string>();
  for (const m of messages) for (const c of m.tool_calls ?? []) asked.add(c.id);
  return messages.filter((m) => m.role !== 'tool' || (m.tool_call_id !== undefined && asked.has(m.tool_call_id)));
}

/** Why a task's signal was aborted: the job's cancel, its client leaving, or the drain's hand-back. */
function cancelMessage(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'agent shutting down';
  return `cancelled: ${why}`;
}

// Attempts are counted inside ModelPolicy.execute; when it throws we only
// know that at least one attempt happened unless the circuit refused it.
function attemptsOf(e: unknown): number {
  const n = (e as { attempts?: number }).attempts;
  if (typeof n === 'number') return n;
  return e instanceof BrokenCircuitError ? 0 : 1;
}

/**
 * `error.type` of a failed upstream attempt: the HTTP status when the
 * upstream answered with an error status, else the failure's class
 * (UpstreamTimeoutError, ConnectionError, ...).
 */
function errorType(e: unknown): string {
  if (e instanceof UpstreamError && e.status !== undefined && e.status >= 400) return String(e.status);
  return e instanceof Error ? e.name : '_OTHER';
}

/** Error → result code, and whether the next model of the chain may help. */
function mapError(e: unknown): { code: TaskErrorCode; message: string; tryNext: boolean } {
  const message = (e as Error).message ?? String(e);
  if (e instanceof DeadlineExceededError) return { code: 'deadline_exceeded', message, tryNext: false };
  if (e instanceof BudgetExceededError) return { code: 'budget_exceeded', message, tryNext: false };
  if (e instanceof BudgetUnavailableError) return { code: 'unavailable', message, tryNext: false };
  if (e instanceof BrokenCircuitError) return { code: 'circuit_open', message: `circuit open: ${message}`, tryNext: true };
  if (e instanceof TaskCancelledError) return { code: 'cancelled', message: `cancelled: ${message}`, tryNext: false };
  if (e instanceof UpstreamAbortedError) return { code: 'cancelled', message, tryNext: false };
  if (e instanceof BulkheadRejectedError) return { code: 'overloaded', message: 'model concurrency limit and queue are full', tryNext: true };
  if (e instanceof AuthenticationError) return { code: 'auth', message, tryNext: false };
  if (e instanceof BadRequestError) return { code: 'bad_request', message, tryNext: false };
  if (e instanceof RateLimitError) return { code: 'rate_limited', message, tryNext: true };
  if (e instanceof ServerError) return { code: 'upstream_error', message, tryNext: true };
  if (e instanceof UpstreamTimeoutError) return { code: 'timeout', message, tryNext: true };
  if (e instanceof UpstreamError) return { code: 'upstream_error', message, tryNext: true };
  return { code: 'internal', message, tryNext: false };
}
