import { BudgetReport, Spent, utcDay, utcHour } from '../budget/budgets';
import type { JobView } from '../jobs/job-service';
import type { AgentCore } from '../server/core';
import type { SpendScope } from '../types';
import type { Tenant } from './auth';
import { RequestError } from './jobs';

/** A 429: a budget the job would be charged against has nothing left. */
export class BudgetRefusal extends RequestError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, message);
  }
}

/**
 * Refuses a new job whose tenant's daily budget or the cluster's hourly one
 * is spent (BudgetRefusal: a 429 naming it, Retry-After until it renews).
 */
export async function refuseSpentBudgets(core: AgentCore, tenant: Tenant | undefined): Promise<void> {
  let spent;
  try {
    spent = await core.budgets.exhausted(tenant);
  } catch (e) {
    throw new RequestError(503, `the budget ledger cannot be reached: ${(e as Error).message}`);
  }
  if (!spent) return;
  core.metrics.budgetRefused(spent.kind);
  const now = Date.now();
  const end = spent.kind === 'tenant_daily' ? Date.parse(`${utcDay(now)}T00:00:00Z`) + 86_400_000 : Date.parse(`${utcHour(now)}:00:00Z`) + 3_600_000;
  throw new BudgetRefusal(`${spent.label} is spent; it renews at ${new Date(end).toISOString()}`, Math.max(1, Math.ceil((end - now) / 1000)));
}

/** Whose money a job spends: undefined when it has no budget and no tenant (only the cluster's budget applies). */
export function spendScope(jobId: string, budgetUsd: number | undefined, tenant: Tenant | undefined): SpendScope | undefined {
  if (budgetUsd === undefined && tenant === undefined) return undefined;
  return {
    jobId,
    ...(budgetUsd !== undefined ? { jobBudgetUsd: budgetUsd } : {}),
    ...(tenant ? { tenant: tenant.tenant } : {}),
    ...(tenant?.dailyBudgetUsd !== undefined ? { tenantDailyBudgetUsd: tenant.dailyBudgetUsd } : {}),
  };
}

/** Spend against each budget of a job, from its view (its results' settled costs) and the ledger; undefined when none applies. */
export async function budgetsOf(core: AgentCore, view: Pick<JobView, 'job_id' | 'budget_usd' | 'total_cost_usd'>, tenant: Tenant | undefined): Promise<BudgetReport[] | undefined> {
  const spent: Spent = [{ costUsd: view.total_cost_usd }];
  const report = await core.budgets.report(spendScope(view.job_id, view.budget_usd, tenant), spent).catch(() => []);
  return report.length > 0 ? report : undefined;
}
