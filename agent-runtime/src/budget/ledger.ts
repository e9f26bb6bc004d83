/**
 * Budgets (README, "Cost and budgets"): every upstream attempt reserves its
 * worst-case cost against each budget that applies before it is made, and
 * settles with its real cost afterwards. A budget's spent plus reserved
 * amount never passes its limit, so neither does what is settled.
 *
 * Amounts are whole nano-USD (1e-9 USD): sums of integers are exact, so a
 * check made by one replica and a total added up by another agree to the
 * last unit (catalog prices are USD per million tokens, so one token costs
 * price × 1000 nano-USD).
 */

/** One budget an attempt is charged against. */
export interface BudgetLine {
  /** Ledger key, e.g. `budget.job.<id>`, `budget.tenant.<t>.<YYYY-MM-DD>`, `budget.cluster.<YYYY-MM-DDTHH>`. */
  readonly key: string;
  /** What kind of budget, for results and metrics. */
  readonly kind: BudgetKind;
  readonly limitNano: number;
  /** The tenant, for tenant budgets. */
  readonly tenant?: string;
  /** Names the budget in a refusal: "job budget_usd 0.05", "tenant 'team-a' daily budget 25 USD (2026-11-27 UTC)". */
  readonly label: string;
}

export type BudgetKind = 'job' | 'tenant_daily' | 'cluster_hourly';

/** What a ledger holds for one key. */
export interface BudgetState {
  readonly spentNano: number;
  readonly reservedNano: number;
  /** The worst case of the last attempt refused on this budget: while less than that is left, the budget counts as spent (429 at submit). */
  readonly refusedNano?: number;
}

export const EMPTY: BudgetState = { spentNano: 0, reservedNano: 0 };

/** Held amounts, to settle once the attempt is over. */
export interface Reservation {
  readonly lines: readonly BudgetLine[];
  readonly amountNano: number;
}

export type ReserveOutcome = { readonly ok: true; readonly reservation: Reservation } | { readonly ok: false; readonly line: BudgetLine; readonly state: BudgetState };

export interface BudgetLedger {
  /** 'shared': one ledger for every replica (JetStream KV); 'per-pod': this process only. */
  readonly scope: 'shared' | 'per-pod';
  /** Holds `amountNano` on every line, or on none when one of them has no room (that line is returned). */
  reserve(lines: readonly BudgetLine[], amountNano: number): Promise<ReserveOutcome>;
  /** Replaces the held amount with what the attempt really cost (0 when it failed before any usage). */
  settle(reservation: Reservation, actualNano: number): Promise<void>;
  /** Adds spend that no reservation held here (the entry records what remote pods spent, per-pod mode only). */
  record(lines: readonly BudgetLine[], amountNano: number): Promise<void>;
  /** The current state of a key. */
  read(key: string): Promise<BudgetState>;
  close(): Promise<void>;
}

export const NANO_PER_USD = 1e9;

/** USD → nano-USD, rounded up (limits are rounded down, see limitNano). */
export function nanoCeil(usd: number): number {
  return Math.ceil(usd * NANO_PER_USD - 1e-6);
}

/** A limit in nano-USD, rounded down so rounding never adds room. */
export function limitNano(usd: number): number {
  return Math.floor(usd * NANO_PER_USD + 1e-6);
}

export function usdOf(nano: number): number {
  return nano / NANO_PER_USD;
}

/**
 * Whether a budget counts as spent for new work: nothing left, or less left
 * than the last attempt it refused needed.
 */
export function isSpent(line: BudgetLine, s: BudgetState): boolean {
  const left = line.limitNano - s.spentNano - s.reservedNano;
  return left <= 0 || (s.refusedNano !== undefined && left < s.refusedNano);
}

/** Whether `amount` more fits the line's limit. */
export function fits(line: BudgetLine, state: BudgetState, amountNano: number): boolean {
  return state.spentNano + state.reservedNano + amountNano <= line.limitNano;
}

/** The refusal message of a task that did not fit: names the budget. */
export function refusalMessage(line: BudgetLine, state: BudgetState, amountNano: number): string {
  const left = Math.max(0, line.limitNano - state.spentNano - state.reservedNano);
  return `${line.label} would be exceeded: this attempt may cost up to ${fmt(amountNano)} USD, ${fmt(left)} USD of it is left (${fmt(state.spentNano)} USD spent, ${fmt(state.reservedNano)} USD held by calls in flight)`;
}

function fmt(nano: number): string {
  return String(Number(usdOf(nano).toFixed(6)));
}

/**
 * The ledger of one process (no job store): a map, checked and changed
 * synchronously, so concurrent attempts in this process cannot overdraw it.
 */
export class MemoryLedger implements BudgetLedger {
  readonly scope = 'per-pod' as const;
  private readonly states = new Map<string, BudgetState & { touched: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  reserve(lines: readonly BudgetLine[], amountNano: number): Promise<ReserveOutcome> {
    for (const line of lines) {
      const s = this.states.get(line.key) ?? EMPTY;
      if (!fits(line, s, amountNano)) {
        this.states.set(line.key, { ...s, refusedNano: amountNano, touched: this.now() });
        return Promise.resolve({ ok: false, line, state: { spentNano: s.spentNano, reservedNano: s.reservedNano } });
      }
    }
    for (const line of lines) this.change(line.key, 0, amountNano);
    return Promise.resolve({ ok: true, reservation: { lines, amountNano } });
  }

  settle(r: Reservation, actualNano: number): Promise<void> {
    for (const line of r.lines) this.change(line.key, actualNano, -r.amountNano);
    return Promise.resolve();
  }

  record(lines: readonly BudgetLine[], amountNano: number): Promise<void> {
    for (const line of lines) this.change(line.key, amountNano, 0);
    return Promise.resolve();
  }

  read(key: string): Promise<BudgetState> {
    const s = this.states.get(key);
    return Promise.resolve(s ? { spentNano: s.spentNano, reservedNano: s.reservedNano, ...(s.refusedNano !== undefined ? { refusedNano: s.refusedNano } : {}) } : EMPTY);
  }

  close(): Promise<void> {
    this.states.clear();
    return Promise.resolve();
  }

  private change(key: string, spent: number, reserved: number): void {
    const s = this.states.get(key) ?? { ...EMPTY, touched: 0 };
    this.states.set(key, { ...s, spentNano: s.spentNano + spent, reservedNano: s.reservedNano + reserved, touched: this.now() });
    if (this.states.size > 50_000) this.prune();
  }

  /** Drops keys nothing has touched for a day and nothing holds (finished jobs, past hours and days). */
  private prune(): void {
    const before = this.now() - 24 * 3600_000;
    for (const [k, s] of this.states) if (s.touched < before && s.reservedNano === 0) this.states.delete(k);
  }
}
