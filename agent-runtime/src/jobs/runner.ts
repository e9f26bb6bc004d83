import { ParsedJob } from '../http/jobs';
import { Task, TaskResult } from '../types';
import { runWorkflow, StepResult, WorkflowRunOptions } from '../workflow/engine';
import { StoredResult } from './records';

/** How this entry runs a batch of tasks (the agent's own routing: local executor or dispatcher). */
export type RunTasks = (jobId: string, tasks: Task[], deadlineAt: number, signal: AbortSignal, onResult: (r: TaskResult, index: number) => void) => Promise<TaskResult[]>;

export interface JobRunnerOptions {
  readonly runTasks: RunTasks;
  /** steps running at once at most (the entry's fan-out) */
  readonly concurrency: number;
  readonly windowFor?: WorkflowRunOptions['windowFor'];
  readonly agentId?: string;
}

export interface JobRun {
  /** results already recorded, by index (a resumed job): not run again */
  readonly finished: ReadonlyMap<number, StoredResult>;
  /** the job's cancel, or the agent handing its work back */
  readonly signal: AbortSignal;
  /** each task's or step's final result as it ends, with its index in the job */
  readonly onResult: (index: number, result: StoredResult) => void;
}

/**
 * Runs what is left of a job: the tasks or steps without a result yet, the
 * same way a synchronous POST /v1/jobs runs them, reporting each final
 * result as it ends. Resolves when every one has a result.
 */
export async function runJob(jobId: string, job: ParsedJob, opts: JobRunnerOptions, run: JobRun): Promise<void> {
  if (job.kind === 'tasks') {
    const left: number[] = [];
    job.tasks.forEach((_, i) => {
      if (!run.finished.has(i)) left.push(i);
    });
    if (left.length === 0) return;
    await opts.runTasks(
      jobId,
      left.map((i) => job.tasks[i]),
      job.deadlineAt,
      run.signal,
      (r, k) => run.onResult(left[k], r),
    );
    return;
  }
  const finished = new Map<string, StepResult>();
  for (const [i, r] of run.finished) finished.set(job.workflow.steps[i].id, r as StepResult);
  await runWorkflow(job.workflow, {
    run: (t) => opts.runTasks(jobId, [t], job.deadlineAt, run.signal, () => undefined).then((r) => r[0]),
    concurrency: opts.concurrency,
    windowFor: opts.windowFor,
    agentId: opts.agentId,
    onStep: (r, i) => run.onResult(i, r),
    finished,
  });
}
