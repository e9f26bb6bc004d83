import type { ModelEntry } from '../config';
import type { SpendScope } from '../types';

/** What budgets read of a task's or step's result: its settled cost and the pod that ran it. */
export type Spent = ReadonlyArray<{ readonly agentId?: string; readonly costUsd: number }>;
import { BudgetKind, BudgetLedger, BudgetLine, isSpent, limitNano, nanoCeil, Reservation, refusalMessage, usdOf } from './ledger';

/** Where the budget metrics go (RuntimeMetrics implements it). */
export interface BudgetMetrics {
  budgetRefused(kind: BudgetKind): void;
  tenantSpend(tenant: string, usd: number): void;
  budgetState(kind: BudgetKind, tenant: string, limitUsd: number, spentUsd: number, heldUsd: number): void;
}

/** A refusal: the task ends `budget_exceeded` with this message. */
export class BudgetExceededError extends Error {
  constructor(
    readonly kind: BudgetKind,
    message: string,
  ) {
    super(message);
    this.name = 'BudgetExceededError';
  }
}

/** The ledger could not be reached: the attempt is not made (budgets fail closed). */
export class BudgetUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BudgetUnavailableError';
  }
}

/** One budget as results and `GET /v1/jobs/<id>` report it. */
export interface BudgetReport {
  readonly budget: BudgetKind;
  readonly tenant?: string;
  /** the UTC day (tenant) or hour (cluster) the budget is for */
  readonly window?: string;
  readonly limit_usd: number;
  readonly spent_usd: number;
  readonly remaining_usd: number;
  /** 'shared': every replica's spend (job store); 'per-pod': what this pod knows */
  readonly scope: 'shared' | 'per-pod';
}

/** `2026-11-27` */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** `2026-11-27T10` */
export function utcHour(at: number): string {
  return new Date(at).toISOString().slice(0, 13);
}

/** The worst case of one attempt: every prompt token at the input price, max_tokens completion tokens at the output price. */
export function worstCaseNano(entry: Pick<ModelEntry, 'inputUsdPerMTok' | 'outputUsdPerMTok'>, promptTokens: number, maxTokens: number): number {
  // per-million prices × tokens / 1e6 USD = × 1e3 nano-USD
  return Math.ceil((promptTokens * entry.inputUsdPerMTok + maxTokens * entry.outputUsdPerMTok) * 1000);
}

export interface BudgetsOptions {
  readonly ledger: BudgetLedger;
  /** config `budgets.clusterHourlyUsd` */
  readonly clusterHourlyUsd?: number;
  readonly metrics?: BudgetMetrics;
  readonly now?: () => number;
}

/**
 * The budgets of one process: which lines an attempt is charged against,
 * reservation and settlement through the ledger, reports and metrics.
 */
export class Budgets {
  private readonly now: () => number;

  constructor(private readonly opts: BudgetsOptions) {
    this.now = opts.now ?? Date.now;
  }

  get scope(): 'shared' | 'per-pod' {
    return this.opts.ledger.scope;
  }

  /** True when some budget may apply to a call (the cluster's, or the task's job or tenant). */
  applies(spend: SpendScope | undefined): boolean {
    return this.opts.clusterHourlyUsd !== undefined || spend?.jobBudgetUsd !== undefined || spend?.tenantDailyBudgetUsd !== undefined;
  }

  /** The budgets a call of `spend` is charged against now. */
  lines(spend: SpendScope | undefined, at = this.now()): BudgetLine[] {
    const out: BudgetLine[] = [];
    if (spend?.jobBudgetUsd !== undefined) {
      out.push({ key: `budget.job.${spend.jobId}`, kind: 'job', limitNano: limitNano(spend.jobBudgetUsd), label: `job budget_usd ${spend.jobBudgetUsd}` });
    }
    if (spend?.tenant !== undefined && spend.tenantDailyBudgetUsd !== undefined) out.push(this.tenantLine(spend.tenant, spend.tenantDailyBudgetUsd, at));
    const cluster = this.clusterLine(at);
    if (cluster) out.push(cluster);
    return out;
  }

  tenantLine(tenant: string, dailyUsd: number, at = this.now()): BudgetLine {
    const day = utcDay(at);
    return { key: `budget.tenant.${tenant}.${day}`, kind: 'tenant_daily', tenant, limitNano: limitNano(dailyUsd), label: `tenant '${tenant}' daily budget of ${dailyUsd} USD (${day} UTC)` };
  }

  clusterLine(at = this.now()): BudgetLine | undefined {
    const usd = this.opts.clusterHourlyUsd;
    if (usd === undefined) return undefined;
    const hour = utcHour(at);
    return { key: `budget.cluster.${hour}`, kind: 'cluster_hourly', limitNano: limitNano(usd), label: `cluster hourly budget of ${usd} USD (${hour}:00 UTC)` };
  }

  /**
   * Holds `worstNano` against every budget of `spend`; throws
   * BudgetExceededError naming the first that has no room (nothing held
   * then), or BudgetUnavailableError when the ledger cannot be reached.
   */
  async reserve(spend: SpendScope | undefined, worstNano: number): Promise<Reservation> {
    const lines = this.lines(spend);
    let r;
    try {
      r = await this.opts.ledger.reserve(lines, worstNano);
    } catch (e) {
      throw new BudgetUnavailableError(`the budget ledger cannot be reached, so no upstream call is made: ${(e as Error).message}`);
    }
    if (!r.ok) {
      this.opts.metrics?.budgetRefused(r.line.kind);
      this.observe(r.line, r.state.spentNano, r.state.reservedNano);
      throw new BudgetExceededError(r.line.kind, refusalMessage(r.line, r.state, worstNano));
    }
    return r.reservation;
  }

  /** Replaces the held worst case with the call's real cost (0 when it failed without usage). */
  async settle(reservation: Reservation, actualUsd: number, spend: SpendScope | undefined): Promise<void> {
    const actual = Math.min(nanoCeil(actualUsd), Number.MAX_SAFE_INTEGER);
    await this.opts.ledger.settle(reservation, actual);
    if (spend?.tenant !== undefined && actualUsd > 0) this.opts.metrics?.tenantSpend(spend.tenant, actualUsd);
    for (const line of reservation.lines) {
      if (line.kind === 'job') continue; // one gauge per job would grow without end
      const s = await this.opts.ledger.read(line.key).catch(() => undefined);
      if (s) this.observe(line, s.spentNano, s.reservedNano);
    }
  }

  /**
   * Per-pod mode, at the entry: adds what other pods spent on the job's
   * tasks to this pod's tenant and cluster budgets, so the entry's view
   * (the 429 at submit, the report) includes them. Shared mode: nothing to
   * do, the workers settled into the shared ledger.
   */
  async recordRemote(spend: SpendScope | undefined, results: Spent, ownAgentId: string): Promise<void> {
    if (this.scope === 'shared') return;
    const remote = results.filter((r) => r.agentId !== ownAgentId).reduce((s, r) => s + r.costUsd, 0);
    if (remote <= 0) return;
    const lines = this.lines(spend).filter((l) => l.kind !== 'job');
    // (the tenant's spend metric was counted by the pods that made the calls)
    await this.opts.ledger.record(lines, nanoCeil(remote));
  }

  /**
   * The budget a new job of this tenant would be refused by (nothing left,
   * or less than the last attempt it refused needed), or undefined: the
   * entry answers 429 naming it.
   */
  async exhausted(tenant: { tenant: string; dailyBudgetUsd?: number } | undefined): Promise<BudgetLine | undefined> {
    const at = this.now();
    const lines = [tenant?.dailyBudgetUsd !== undefined ? this.tenantLine(tenant.tenant, tenant.dailyBudgetUsd, at) : undefined, this.clusterLine(at)];
    for (const line of lines) {
      if (!line) continue;
      const s = await this.opts.ledger.read(line.key);
      if (isSpent(line, s)) return line;
    }
    return undefined;
  }

  /** Spend against each budget of a job: the job's from its results, the tenant's and the cluster's from the ledger. */
  async report(spend: SpendScope | undefined, results: Spent): Promise<BudgetReport[]> {
    const out: BudgetReport[] = [];
    const at = this.now();
    if (spend?.jobBudgetUsd !== undefined) {
      const spent = results.reduce((s, r) => s + r.costUsd, 0);
      // every result carries its settled cost, wherever it ran: the total is exact in both modes (the scope says where it was enforced)
      out.push(row('job', spend.jobBudgetUsd, spent, this.scope));
    }
    for (const line of this.lines(spend, at).filter((l) => l.kind !== 'job')) {
      const s = await this.opts.ledger.read(line.key).catch(() => undefined);
      if (!s) continue;
      out.push({
        ...row(line.kind, usdOf(line.limitNano), usdOf(s.spentNano), this.scope),
        ...(line.tenant !== undefined ? { tenant: line.tenant } : {}),
        window: line.kind === 'tenant_daily' ? utcDay(at) : utcHour(at),
      });
    }
    return out;
  }

  close(): Promise<void> {
    return this.opts.ledger.close();
  }

  private observe(line: BudgetLine, spentNano: number, reservedNano: number): void {
    if (line.kind === 'job') return;
    this.opts.metrics?.budgetState(line.kind, line.tenant ?? '', usdOf(line.limitNano), usdOf(spentNano), usdOf(reservedNano));
  }
}

function row(budget: BudgetKind, limitUsd: number, spentUsd: number, scope: 'shared' | 'per-pod'): BudgetReport {
  const spent = round9(spentUsd);
  return { budget, limit_usd: limitUsd, spent_usd: spent, remaining_usd: round9(Math.max(0, limitUsd - spent)), scope };
}

function round9(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}
