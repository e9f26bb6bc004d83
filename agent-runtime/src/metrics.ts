import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BudgetMetrics } from './budget/budgets';
import type { BudgetKind } from './budget/ledger';
import { ExitReason, QueueObserver } from './coordination/admission';
import { histogramSeries } from './telemetry/prom-series';
import { OPERATION_DURATION_BUCKETS, TOKEN_USAGE_BUCKETS } from './telemetry/semconv';

const BREAKER_VALUE = { closed: 0, 'half-open': 1, open: 2, isolated: 3 } as const;

/** Every metric of one process, on its own registry (nothing global). */
export class RuntimeMetrics implements BudgetMetrics {
  readonly registry = new Registry();
  readonly upstreamRequests: Counter<'model' | 'outcome'>;
  readonly upstreamLatency: Histogram<'model'>;
  readonly retries: Counter<'model' | 'reason'>;
  readonly breakerState: Gauge<'model'>;
  readonly breakerTransitions: Counter<'model' | 'state'>;
  readonly tokens: Counter<'model' | 'kind'>;
  readonly costUsd: Counter<'model'>;
  readonly tasks: Counter<'outcome'>;
  readonly inFlightTasks: Gauge;
  readonly fallbacks: Counter<'from' | 'to'>;
  readonly httpRequests: Histogram<'route' | 'status'>;
  readonly jobs: Counter<'outcome'>;
  readonly dispatches: Counter<'peer' | 'outcome'>;
  readonly redispatches: Counter<'reason'>;
  readonly taskCapacity: Gauge;
  readonly tasksHeld: Gauge;
  private readyCheck: () => boolean = () => true;
  readonly toolCalls: Counter<'server' | 'tool' | 'outcome'>;
  readonly toolLatency: Histogram<'server' | 'tool'>;
  // ---- admission queues (issue 14): in front of callee pods and of each model's upstream calls ----
  readonly queueLength: Gauge<'stage' | 'target'>;
  readonly queueWait: Histogram<'stage' | 'target'>;
  readonly queueExits: Counter<'stage' | 'target' | 'reason'>;
  private readonly queueObservers = new Map<string, QueueObserver>();
  // ---- budgets (issue 12): tenant labels are tenant names from keys.json, never keys ----
  readonly tenantSpendUsd: Counter<'tenant'>;
  readonly budgetLimitUsd: Gauge<'budget' | 'tenant'>;
  readonly budgetSpentUsd: Gauge<'budget' | 'tenant'>;
  readonly budgetRemainingUsd: Gauge<'budget' | 'tenant'>;
  readonly budgetRefusals: Counter<'budget'>;
  readonly budgetConflicts: Counter;
  readonly authFailures: Counter<'reason'>;
  /** gRPC calls refused by the per-edge mTLS rule (grpc/mtls.ts): caller_not_allowed, no_role. */
  readonly grpcRefused: Counter<'reason'>;
  // ---- OpenTelemetry GenAI client metrics, in Prometheus form (attribute dots become underscores) ----
  readonly genAiTokenUsage: Histogram<'gen_ai_operation_name' | 'gen_ai_provider_name' | 'gen_ai_request_model' | 'gen_ai_response_model' | 'gen_ai_token_type'>;
  readonly genAiOperationDuration: Histogram<'gen_ai_operation_name' | 'gen_ai_provider_name' | 'gen_ai_request_model' | 'gen_ai_response_model' | 'error_type'>;

  constructor(labels: Record<string, string> = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    this.grpcRefused = new Counter({ name: 'agent_grpc_refused_total', help: 'gRPC calls refused by mTLS per-edge authorization, by reason (caller_not_allowed, no_role)', labelNames: ['reason'], registers });
    collectDefaultMetrics({ register: this.registry });
    this.upstreamRequests = new Counter({ name: 'agent_upstream_requests_total', help: 'Upstream attempts by model and outcome', labelNames: ['model', 'outcome'], registers });
    this.upstreamLatency = new Histogram({
      name: 'agent_upstream_request_duration_seconds',
      help: 'Upstream attempt latency',
      labelNames: ['model'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.retries = new Counter({ name: 'agent_upstream_retries_total', help: 'Retries by model and reason', labelNames: ['model', 'reason'], registers });
    this.breakerState = new Gauge({ name: 'agent_circuit_breaker_state', help: 'Circuit state per model: 0 closed, 1 half-open, 2 open, 3 isolated', labelNames: ['model'], registers });
    this.breakerTransitions = new Counter({ name: 'agent_circuit_breaker_transitions_total', help: 'Circuit state changes', labelNames: ['model', 'state'], registers });
    this.tokens = new Counter({ name: 'agent_tokens_total', help: 'Tokens by model and kind (prompt, completion)', labelNames: ['model', 'kind'], registers });
    this.costUsd = new Counter({ name: 'agent_cost_usd_total', help: 'Spend in USD by model, from catalog prices and reported usage', labelNames: ['model'], registers });
    this.tasks = new Counter({ name: 'agent_tasks_total', help: 'Tasks finished by outcome (ok or error code)', labelNames: ['outcome'], registers });
    this.inFlightTasks = new Gauge({ name: 'agent_in_flight_tasks', help: 'Tasks being executed or dispatched now', registers });
    this.fallbacks = new Counter({ name: 'agent_model_fallbacks_total', help: 'Fallbacks from one model to the next', labelNames: ['from', 'to'], registers });
    this.httpRequests = new Histogram({
      name: 'agent_http_request_duration_seconds',
      help: 'HTTP API latency',
      labelNames: ['route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    });
    this.jobs = new Counter({ name: 'agent_jobs_total', help: 'Jobs accepted on HTTP by outcome', labelNames: ['outcome'], registers });
    this.dispatches = new Counter({ name: 'agent_dispatches_total', help: 'RPCs to peers by peer role and outcome', labelNames: ['peer', 'outcome'], registers });
    this.redispatches = new Counter({ name: 'agent_redispatches_total', help: 'Tasks sent again to another peer', labelNames: ['reason'], registers });
    // The pair an autoscaler divides: load per pod against what one pod accepts.
    this.taskCapacity = new Gauge({ name: 'agent_task_capacity', help: 'Tasks one pod of this role accepts at once (maxInFlightTasks)', registers });
    // Read at scrape time, so it always agrees with what /readyz answers.
    const metrics = this;
    new Gauge({
      name: 'agent_ready',
      help: '1 when this pod answers /readyz with 200, 0 while it is draining, resolving peers or has every circuit open',
      registers,
      collect() {
        this.set(metrics.readyCheck() ? 1 : 0);
      },
    });
    this.tasksHeld = new Gauge({ name: 'agent_tasks_held', help: 'Tasks this pod has in flight: admitted from callers, plus for each HTTP job the tasks it keeps in flight at once (fan-out)', registers });
    this.toolCalls = new Counter({
      name: 'agent_tool_calls_total',
      help: 'MCP tool calls by server, tool and outcome (ok, tool_error, timeout, unavailable, bad_arguments, unknown_tool)',
      labelNames: ['server', 'tool', 'outcome'],
      registers,
    });
    this.toolLatency = new Histogram({
      name: 'agent_tool_call_duration_seconds',
      help: 'MCP tool call latency',
      labelNames: ['server', 'tool'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    // admission queues: stage "callees" (target: the eligible callee roles, comma-joined) or "model" (target: the model)
    this.queueLength = new Gauge({ name: 'agent_admission_queue_length', help: 'Tasks waiting for capacity now, by stage and target', labelNames: ['stage', 'target'], registers });
    this.queueWait = new Histogram({
      name: 'agent_admission_queue_wait_seconds',
      help: 'Time a task waited for capacity before it got a slot (0 when it did not wait), by stage and target',
      labelNames: ['stage', 'target'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    // gen_ai.client.token.usage and gen_ai.client.operation.duration, one observation per upstream attempt, with the buckets the conventions advise
    this.genAiTokenUsage = new Histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens per upstream chat call (gen_ai.client.token.usage), by token type (input, output)',
      labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'gen_ai_token_type'],
      buckets: TOKEN_USAGE_BUCKETS,
      registers,
    });
    this.genAiOperationDuration = new Histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'Duration of each upstream chat call (gen_ai.client.operation.duration); error_type set on failures',
      labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'error_type'],
      buckets: OPERATION_DURATION_BUCKETS,
      registers,
    });
    this.queueExits = new Counter({ name: 'agent_admission_queue_exits_total', help: 'Tasks that left or were refused without a slot: shed, deadline, cancelled, drained, full', labelNames: ['stage', 'target', 'reason'], registers });
    this.tenantSpendUsd = new Counter({ name: 'agent_tenant_spend_usd_total', help: 'Settled upstream spend in USD by tenant (the API key\'s tenant; empty when the API runs open)', labelNames: ['tenant'], registers });
    const budgetHelp = 'budget: tenant_daily (label tenant) or cluster_hourly, as this pod last saw it (the shared ledger with a job store, else this pod\'s)';
    this.budgetLimitUsd = new Gauge({ name: 'agent_budget_limit_usd', help: `Limit of the current window in USD; ${budgetHelp}`, labelNames: ['budget', 'tenant'], registers });
    this.budgetSpentUsd = new Gauge({ name: 'agent_budget_spent_usd', help: `Settled spend of the current window in USD; ${budgetHelp}`, labelNames: ['budget', 'tenant'], registers });
    this.budgetRemainingUsd = new Gauge({ name: 'agent_budget_remaining_usd', help: `Limit minus settled and held spend in USD; ${budgetHelp}`, labelNames: ['budget', 'tenant'], registers });
    this.budgetRefusals = new Counter({ name: 'agent_budget_refusals_total', help: 'Upstream attempts not made, and jobs answered 429, because a budget had no room (job, tenant_daily, cluster_hourly)', labelNames: ['budget'], registers });
    this.budgetConflicts = new Counter({ name: 'agent_budget_cas_conflicts_total', help: 'Compare-and-set conflicts on the shared budget ledger, each retried', registers });
    this.authFailures = new Counter({ name: 'agent_api_auth_failures_total', help: 'HTTP API requests refused 401 (missing, malformed or unknown key)', labelNames: ['reason'], registers });
  }

  budgetRefused(kind: BudgetKind): void {
    this.budgetRefusals.inc({ budget: kind });
  }

  tenantSpend(tenant: string, usd: number): void {
    this.tenantSpendUsd.inc({ tenant }, usd);
  }

  budgetState(kind: BudgetKind, tenant: string, limitUsd: number, spentUsd: number, heldUsd: number): void {
    const labels = { budget: kind, tenant };
    this.budgetLimitUsd.set(labels, limitUsd);
    this.budgetSpentUsd.set(labels, spentUsd);
    this.budgetRemainingUsd.set(labels, Math.max(0, limitUsd - spentUsd - heldUsd));
  }

  /** The counters of one admission queue (cached: called per task). */
  admissionQueue(stage: 'callees' | 'model', target: string): QueueObserver {
    const id = `${stage}|${target}`;
    let o = this.queueObservers.get(id);
    if (!o) {
      const length = this.queueLength.labels(stage, target);
      // bound once: every task passes here, most with a wait of 0
      const wait = histogramSeries(this.queueWait, { stage, target });
      length.set(0);
      o = {
        length: (n: number) => length.set(n),
        left: (waitedMs: number, reason?: ExitReason) => {
          if (reason) this.queueExits.inc({ stage, target, reason });
          else wait.observe(waitedMs / 1000);
        },
      };
      this.queueObservers.set(id, o);
    }
    return o;
  }

  setBreakerState(model: string, state: keyof typeof BREAKER_VALUE): void {
    this.breakerState.set({ model }, BREAKER_VALUE[state]);
    this.breakerTransitions.inc({ model, state });
  }

  /** What agent_ready reports: the same predicate as /readyz. */
  reportReadiness(check: () => boolean): void {
    this.readyCheck = check;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
