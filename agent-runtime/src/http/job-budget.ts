import { BudgetReport, Spent, utcDay, utcHour } from '../budget/budgets';
import type { AgentCore } from '../server/core';
import type { SpendScope, Task } from '../types';
import type { Tenant } from './auth';
import { RequestError } from './jobs';

/** A job's budgets at the entry: what its tasks carry, and the report its answer gets. */
export interface JobSpend {
  /** undefined: no job budget and no tenant (the tasks carry nothing; only the cluster's budget applies) */
  readonly scope?: SpendScope;
  /** The task with the job's spend scope on it. */
  stamp(task: Task): Task;
  /**
   * Once the job is done: records what other pods spent (per-pod mode) and
   * returns spend against each budget, or undefined when none applies.
   */
  finish(results: Spent): Promise<BudgetReport[] | undefined>;
}

/**
 * Admits a job against its tenant's daily and the cluster's hourly budget:
 * one that is already all spent refuses the job with a 429 naming it (and a
 * Retry-After until the window ends). Otherwise returns the job's spend.
 */
export async function admitJobSpend(core: AgentCore, jobId: string, tenant: Tenant | undefined, budgetUsd: number | undefined): Promise<JobSpend> {
  const { budgets, env, metrics } = core;
  let spent;
  try {
    spent = await budgets.exhausted(tenant);
  } catch (e) {
    throw new RequestError(503, `the budget ledger cannot be reached: ${(e as Error).message}`);
  }
  if (spent) {
    metrics.budgetRefused(spent.kind);
    const now = Date.now();
    const end = spent.kind === 'tenant_daily' ? Date.parse(`${utcDay(now)}T00:00:00Z`) + 86_400_000 : Date.parse(`${utcHour(now)}:00:00Z`) + 3_600_000;
    const seconds = Math.max(1, Math.ceil((end - now) / 1000));
    throw new BudgetRefusal(`${spent.label} is spent; it renews at ${new Date(end).toISOString()}`, seconds);
  }
  const scope: SpendScope | undefined =
    budgetUsd !== undefined || tenant !== undefined
      ? {
          jobId,
          ...(budgetUsd !== undefined ? { jobBudgetUsd: budgetUsd } : {}),
          ...(tenant ? { tenant: tenant.tenant } : {}),
          ...(tenant?.dailyBudgetUsd !== undefined ? { tenantDailyBudgetUsd: tenant.dailyBudgetUsd } : {}),
        }
      : undefined;
  return {
    scope,
    stamp: (task) => (scope ? { ...task, spend: scope } : task),
    finish: async (results) => {
      await budgets.recordRemote(scope, results, env.agentId).catch((e: Error) => core.logger.warn({ jobId, err: e.message }, 'could not record remote spend'));
      const report = await budgets.report(scope, results);
      return report.length > 0 ? report : undefined;
    },
  };
}

/** A 429: a budget the job would be charged against has nothing left. */
export class BudgetRefusal extends RequestError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, message);
  }
}
