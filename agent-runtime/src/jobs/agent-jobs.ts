import { spendScope } from '../http/job-budget';
import { chainWindowFor, parseJob } from '../http/jobs';
import { AgentCore, RunTasks } from '../server/core';
import { TaskResult } from '../types';
import { JetStreamJobService } from './jetstream-store';
import { ExecuteJob, MemoryJobService, ParseJob } from './memory-store';
import { StoredResult } from './records';
import { runJob } from './runner';
import { JobStore } from './store';

/**
 * How this agent runs a stored job: with its own routing (`core.run`), its
 * fan-out width counted toward the load gauge while it runs, tracked by the
 * drain, and ended early by the job's cancel or the hand-back at the end of
 * the grace period. `durable`: a handed-back job's unfinished tasks record
 * nothing, so the replica that takes the job over runs them.
 */
export function jobExecutor(core: AgentCore, durable: boolean): ExecuteJob {
  const { config, env, lifecycle, admission, metrics, tracer } = core;
  const width = core.dispatcher ? config.fanOut.concurrency : config.concurrency.maxInFlightTasks;
  const windowFor = chainWindowFor(config);
  return (jobId, job, run) => {
    const release = admission.holdJob(Math.min(job.kind === 'steps' ? job.workflow.steps.length : job.tasks.length, width));
    // the in-memory store's controller is the job's (its hand-back ends the job like a cancel); a durable
    // store's stays its own, so a hand-back (the job's controller) can be told apart from a cancel (the store's)
    const adopt = durable ? undefined : run.controller;
    const { controller, done } = lifecycle.jobController(adopt);
    const onCancel = () => controller.abort(run.signal.reason);
    if (!adopt) {
      if (run.signal.aborted) onCancel();
      else run.signal.addEventListener('abort', onCancel, { once: true });
    }
    let failed = 0;
    let shed = 0;
    const seen: StoredResult[] = [];
    // the job's span (tracing on), on the replica that runs it, continuing the submitter's trace
    const count = job.kind === 'steps' ? job.workflow.steps.length : job.tasks.length;
    const span = tracer?.startJob(jobId, job.kind, count, run.traceHeaders);
    // whose money the job spends (issue 12): on every task, so the worker reserves against its budgets
    const scope = spendScope(jobId, job.budgetUsd, run.tenant !== undefined ? core.auth.tenant(run.tenant) ?? { tenant: run.tenant } : undefined);
    const routed: RunTasks = scope ? (id, tasks, ...rest) => core.run(id, tasks.map((t) => ({ ...t, spend: scope })), ...rest) : core.run;
    const work = runJob(jobId, job, { run: routed, concurrency: config.fanOut.concurrency, windowFor, agentId: env.agentId, ...(span ? { trace: tracer!.contextOf(span) } : {}) }, {
      finished: run.finished,
      signal: controller.signal,
      onResult: (i, r) => {
        if (durable && lifecycle.handBack.signal.aborted && !run.signal.aborted) return;
        seen.push(r);
        if (!r.ok) failed += 1;
        if (r.error?.code === 'overloaded' && (r as TaskResult).retryAfterMs !== undefined) shed += 1;
        run.onResult(i, r);
      },
    });
    return lifecycle.track(work).then(
      async () => {
        if (span) tracer!.endJob(span, seen);
        // per-pod budgets: this entry's view of the tenant's and the cluster's spend includes what other pods spent
        await core.budgets.recordRemote(scope, seen, env.agentId).catch(() => undefined);
      },
      (e: Error) => {
        if (span) tracer!.endJob(span, e);
        throw e;
      },
    ).finally(() => {
      release();
      done();
      if (!adopt) run.signal.removeEventListener('abort', onCancel);
      metrics.jobs.inc({ outcome: seen.length > 0 && shed === seen.length ? 'shed' : failed === 0 ? 'ok' : 'partial' });
    });
  };
}

/** The job store this agent's config asks for: in memory without `jobStore`. */
export async function openJobStore(core: AgentCore): Promise<JobStore> {
  const parse: ParseJob = (raw, now) => parseJob(raw, core.config, now);
  if (core.config.jobStore) {
    // only the entry's replicas pull jobs: another role would run them with its own routing and models
    return JetStreamJobService.connect({ config: core.config.jobStore, parse, execute: jobExecutor(core, true), logger: core.logger, agentId: core.env.agentId, ...(core.config.entry ? {} : { lanes: 0 }) });
  }
  return new MemoryJobService({ parse, execute: jobExecutor(core, false) });
}
