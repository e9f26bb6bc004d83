import { fromWireTask, WireTask } from '../grpc/service';
import { RuntimeMetrics } from '../metrics';
import { Task, TaskResult } from '../types';

/** Tasks of one job with one deadline: the unit `AgentCore.run` works in, each with its Session seq beside it. */
export interface AdmittedGroup {
  readonly jobId: string;
  readonly deadlineAt: number;
  readonly tasks: Task[];
  readonly seqs: number[];
  /** each task as it came over the wire (its trace context) */
  readonly wire: WireTask[];
}

export interface Admission {
  readonly groups: AdmittedGroup[];
  /** tasks refused at the door, each with its result and seq */
  readonly refused: Array<{ result: TaskResult; seq: number }>;
  /** how many tasks were admitted (each holds a slot until `release`) */
  readonly accepted: number;
}

/** A task that ends before it starts: no attempt, no cost. */
export function refusal(agentId: string, t: Pick<Task, 'id'>, code: 'bad_request' | 'overloaded' | 'unavailable', message: string): TaskResult {
  return { id: t.id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, agentId, error: { code, message } };
}

/**
 * This pod's capacity as a callee: at most `maxInFlightTasks` tasks from
 * callers at once (more are answered `overloaded` so the caller
 * re-dispatches them elsewhere), and the load gauge the autoscaler reads
 * (tasks from callers plus the tasks the HTTP jobs on this pod hold).
 */
export class TaskAdmission {
  private active = 0;
  /**
   * Tasks the HTTP jobs on this pod keep in flight at once: a job's tasks go
   * out fanOut at a time (dispatcher) or maxInFlightTasks at a time (local),
   * so a 10,000-task job does not read as 10,000 tasks of load.
   */
  private jobTasks = 0;

  constructor(
    private readonly maxInFlightTasks: number,
    private readonly metrics: RuntimeMetrics,
    private readonly agentId: string,
  ) {
    metrics.taskCapacity.set(maxInFlightTasks);
  }

  private observe(): void {
    this.metrics.tasksHeld.set(this.active + this.jobTasks);
  }

  /**
   * What both RPCs do with the tasks they receive: refuse while draining,
   * fix each task's deadline (its own, else `fallback.deadlineAt`, never
   * past `ceiling`), and admit what fits (the rest is handed back as
   * `overloaded` for another pod). Accepted tasks come grouped by job and
   * deadline.
   */
  admit(wire: readonly WireTask[], fallback: { jobId: string; deadlineAt: number }, ceiling: number, draining: boolean): Admission {
    const room = draining ? 0 : Math.max(0, this.maxInFlightTasks - this.active);
    const groups = new Map<string, AdmittedGroup>();
    const refused: Array<{ result: TaskResult; seq: number }> = [];
    let accepted = 0;
    for (const w of wire) {
      let task: Task;
      let malformed: string | undefined;
      try {
        task = fromWireTask(w);
      } catch (e) {
        task = { id: w.id, messages: [] };
        malformed = (e as Error).message;
      }
      const seq = w.seq ?? 0;
      const deadlineAt = Math.min(w.deadline_unix_ms || fallback.deadlineAt, ceiling);
      if (malformed !== undefined) {
        refused.push({ result: refusal(this.agentId, task, 'bad_request', `task ${w.id}: ${malformed}`), seq });
      } else if (!Number.isFinite(deadlineAt)) {
        refused.push({ result: refusal(this.agentId, task, 'bad_request', `task ${w.id}: deadline_unix_ms is required`), seq });
      } else if (draining) {
        refused.push({ result: refusal(this.agentId, task, 'unavailable', `agent ${this.agentId} is draining`), seq });
      } else if (accepted >= room) {
        refused.push({ result: refusal(this.agentId, task, 'overloaded', `agent ${this.agentId} is at its limit of ${this.maxInFlightTasks} tasks`), seq });
      } else {
        accepted += 1;
        const jobId = w.job_id || fallback.jobId;
        const key = `${jobId}|${deadlineAt}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { jobId, deadlineAt, tasks: [], seqs: [], wire: [] }));
        g.tasks.push(task);
        g.seqs.push(seq);
        g.wire.push(w);
      }
    }
    this.active += accepted;
    this.observe();
    return { groups: [...groups.values()], refused, accepted };
  }

  /** Frees `n` slots taken by `admit`. */
  release(n: number): void {
    if (n === 0) return;
    this.active -= n;
    this.observe();
  }

  /** An HTTP job holds `width` tasks of load until the returned function is called. */
  holdJob(width: number): () => void {
    this.jobTasks += width;
    this.observe();
    return () => {
      this.jobTasks -= width;
      this.observe();
    };
  }
}
