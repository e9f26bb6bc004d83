import { AgentConfig, RuntimeEnv } from '../config';
import { Dispatcher } from '../coordination/dispatcher';
import { PeerPool } from '../coordination/peers';
import { runBounded } from '../coordination/run-bounded';
import { InferenceExecutor } from '../inference/executor';
import { Logger } from '../logger';
import type { AgentTracer } from '../telemetry';
import { RuntimeMetrics } from '../metrics';
import { Task, TaskResult } from '../types';
import { refusal, TaskAdmission } from './admission';
import { Lifecycle } from './lifecycle';

/**
 * Runs a job's tasks the way this role does. `hop` 0 = from a client.
 * `onResult` is called as each task finishes; `signal` ends the job early
 * (client gone, cancelled, handed back).
 */
export type RunTasks = (jobId: string, tasks: Task[], deadlineAt: number, hop: number, onResult?: (r: TaskResult, index: number) => void, signal?: AbortSignal) => Promise<TaskResult[]>;

/** What the front doors (HTTP API, gRPC service) share: one per agent process. */
export interface AgentCore {
  readonly config: AgentConfig;
  readonly env: RuntimeEnv;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;
  /** roles that call models */
  readonly executor?: InferenceExecutor;
  /** roles that call peers */
  readonly dispatcher?: Dispatcher;
  readonly pool?: PeerPool;
  readonly lifecycle: Lifecycle;
  readonly admission: TaskAdmission;
  readonly run: RunTasks;
  /** Spans of this process (the job's at the entry, each hop's at a callee); absent: tracing is off. */
  readonly tracer?: AgentTracer;
  /** `/readyz`: false while draining, before the peers resolve, or with every model circuit open. */
  ready(): { ok: boolean; why?: string };
}

/**
 * The routing rule of `run`: a worker, or any task that came from another
 * agent, runs on this pod's executor; a client's job at a role with callees
 * goes to the dispatcher; a role with neither answers `unavailable`.
 */
export function makeRun(parts: Pick<AgentCore, 'config' | 'env' | 'executor' | 'dispatcher' | 'lifecycle'>): RunTasks {
  const { config, env, executor, dispatcher, lifecycle } = parts;
  return (jobId, tasks, deadlineAt, hop, onResult, signal = lifecycle.handBack.signal) => {
    const local = executor && (config.kind === 'worker' || hop > 0 || !dispatcher);
    if (local) return runBounded(tasks, config.concurrency.maxInFlightTasks, (t) => executor.execute(t, deadlineAt, signal), onResult);
    if (!dispatcher) {
      const results = tasks.map((t) => refusal(env.agentId, t, 'unavailable', `role '${config.role}' has no callees and calls no model`));
      results.forEach((r, i) => onResult?.(r, i));
      return Promise.resolve(results);
    }
    return dispatcher.runJob(jobId, tasks, deadlineAt, hop, signal, onResult);
  };
}
