import { ParsedJob } from '../http/jobs';
import type { RunTasks } from '../server/core';
import type { TraceContext } from '../telemetry';
import { runWorkflow, StepResult, WorkflowRunOptions } from '../workflow/engine';
import { StoredResult } from './records';

export interface JobRunnerOptions {
  /** the agent's own routing of a client's tasks (server/core.ts `run`: local executor or dispatcher) */
  readonly run: RunTasks;
  /** steps running at once at most (the entry's fan-out) */
  readonly concurrency: number;
  readonly windowFor?: WorkflowRunOptions['windowFor'];
  readonly agentId?: string;
  /** the job's span (tracing on): every task's work is traced under it */
  readonly trace?: TraceContext;
}

export interface JobRun {
  /** results already recorded, by index (a resumed job): not run again */
  readonly finished: ReadonlyMap<number, StoredResult>;
  /** the job's cancel, or the agent handing its work back */
  readonly signal: AbortSignal;
  /**
   * The controller behind `signal`, when the store lets the agent abort it
   * too (the in-memory store: a hand-back there is an end like a cancel).
   * The agent then uses it for the job instead of linking a controller of
   * its own to `signal`: one AbortController per job fewer.
   */
  readonly controller?: AbortController;
  /** each task's or step's final result as it ends, with its index in the job */
  readonly onResult: (index: number, result: StoredResult) => void;
  /** the submitter's W3C trace context (`traceparent`, `tracestate`) */
  readonly traceHeaders?: { readonly traceparent?: string; readonly tracestate?: string };
  /** the submitter's tenant (its API key's), whose budgets the job spends */
  readonly tenant?: string;
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
    await opts.run(
      jobId,
      left.map((i) => (opts.trace ? { ...job.tasks[i], trace: opts.trace } : job.tasks[i])),
      job.deadlineAt,
      0,
      (r, k) => run.onResult(left[k], r),
      run.signal,
    );
    return;
  }
  const finished = new Map<string, StepResult>();
  for (const [i, r] of run.finished) finished.set(job.workflow.steps[i].id, r as StepResult);
  await runWorkflow(job.workflow, {
    run: (t) => opts.run(jobId, [opts.trace ? { ...t, trace: opts.trace } : t], job.deadlineAt, 0, undefined, run.signal).then((r) => r[0]),
    concurrency: opts.concurrency,
    windowFor: opts.windowFor,
    agentId: opts.agentId,
    onStep: (r, i) => run.onResult(i, r),
    finished,
  });
}
