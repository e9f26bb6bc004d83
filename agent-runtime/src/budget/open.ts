import type { AgentConfig } from '../config';
import { ConfigError } from '../config';
import { Budgets, BudgetMetrics } from './budgets';
import { KvLedger } from './kv-ledger';
import { MemoryLedger } from './ledger';

/**
 * The budgets of one agent process: shared through the job store's KV bucket
 * when the config has a `jobStore`, else this pod's own ledger.
 */
export async function openBudgets(config: AgentConfig, metrics?: BudgetMetrics & { budgetConflicts?: { inc(): void } }): Promise<Budgets> {
  const clusterHourlyUsd = config.budgets?.clusterHourlyUsd;
  if (!config.jobStore) return new Budgets({ ledger: new MemoryLedger(), clusterHourlyUsd, metrics });
  let ledger: KvLedger;
  try {
    ledger = await KvLedger.open(config.jobStore, { onConflict: () => metrics?.budgetConflicts?.inc() });
  } catch (e) {
    throw new ConfigError('jobStore.url', `cannot open the budget ledger (KV bucket '${config.jobStore.bucket}') at ${config.jobStore.url}: ${(e as Error).message}`);
  }
  return new Budgets({ ledger, clusterHourlyUsd, metrics });
}

/** What `/readyz` says about where budgets are kept. */
export function budgetsDetail(budgets: Budgets, config: AgentConfig): { scope: 'shared' | 'per-pod'; detail: string } {
  if (budgets.scope === 'shared') {
    return { scope: 'shared', detail: `every replica reserves against the same budgets in the job store's KV bucket '${config.jobStore?.bucket}'` };
  }
  return { scope: 'per-pod', detail: 'no job store: each pod enforces every budget on its own spend, so N pods that call the upstream may together spend up to N times a budget' };
}
