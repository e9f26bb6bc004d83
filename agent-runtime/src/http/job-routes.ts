import { randomUUID } from 'node:crypto';
import { AgentCore } from '../server/core';
import { TaskResult } from '../types';
import { runWorkflow } from '../workflow/engine';
import { chainWindowFor, parseJob, RequestError, resultJson, workflowJson } from './jobs';
import { RequestContext, Route } from './server';

/**
 * The entry's job API: `POST /v1/jobs` runs a tasks or steps job and
 * answers when it is done (see http/jobs.ts for the body).
 */
export function jobRoutes(core: AgentCore): Route[] {
  return [{ method: 'POST', path: '/v1/jobs', name: 'jobs', handle: (c) => postJob(core, c) }];
}

async function postJob(core: AgentCore, c: RequestContext): Promise<void> {
  const { config, env, logger, metrics, lifecycle, admission, run, tracer } = core;
  if (lifecycle.draining) {
    c.req.resume();
    return c.fail(503, `agent ${env.agentId} is draining; retry on another pod`);
  }
  const raw = await c.body();
  let job;
  try {
    job = parseJob(raw, config);
  } catch (e) {
    metrics.jobs.inc({ outcome: 'rejected' });
    throw e instanceof RequestError ? e : new RequestError(400, (e as Error).message);
  }
  const jobId = randomUUID();
  const started = Date.now();
  // the job's signal: aborted when the client goes away before its answer (its waiting tasks
  // leave their queues) or when the grace period ends
  const { controller: job$, done } = lifecycle.jobController();
  c.res.once('close', () => {
    done();
    if (!c.res.writableFinished) job$.abort(new Error('the client closed the connection'));
  });
  // tasks this job holds in this pod (its fan-out width) count toward the load gauge until it ends
  const jobWidth = core.dispatcher ? config.fanOut.concurrency : config.concurrency.maxInFlightTasks;
  const release = admission.holdJob(Math.min(job.kind === 'steps' ? job.workflow.steps.length : job.tasks.length, jobWidth));
  // the job's span (tracing on): every task's work is traced under it, and it ends with the answer
  const span = tracer?.startJob(jobId, job.kind, job.kind === 'steps' ? job.workflow.steps.length : job.tasks.length, c.req.headers);
  const trace = span && tracer!.contextOf(span);
  const end = (outcome: readonly TaskResult[] | Error) => {
    if (span) tracer!.endJob(span, outcome);
  };
  if (job.kind === 'steps') {
    // a workflow: each step is a one-task run, routed like any task
    const deadlineAt = job.deadlineAt;
    const results = await lifecycle
      .track(
        runWorkflow(job.workflow, {
          run: (t) => run(jobId, [trace ? { ...t, trace } : t], deadlineAt, 0, undefined, job$.signal).then((r) => r[0]),
          concurrency: config.fanOut.concurrency,
          windowFor: chainWindowFor(config),
          agentId: env.agentId,
        }),
      )
      .finally(release)
      .catch((e: Error) => {
        end(e);
        logger.error({ err: e.message, jobId }, 'workflow failed unexpectedly');
        throw e;
      });
    end(results);
    metrics.jobs.inc({ outcome: results.every((r) => r.ok) ? 'ok' : 'partial' });
    return c.send(200, workflowJson(jobId, results, Date.now() - started));
  }
  const results = await lifecycle
    .track(run(jobId, trace ? job.tasks.map((t) => ({ ...t, trace })) : job.tasks, job.deadlineAt, 0, undefined, job$.signal))
    .finally(release)
    .catch((e: Error) => {
      end(e);
      logger.error({ err: e.message, jobId }, 'job failed unexpectedly');
      throw e;
    });
  end(results);
  const ok = results.filter((r) => r.ok).length;
  const total = results.reduce((s, r) => s + r.costUsd, 0);
  const shed = overloadAnswer(results);
  if (shed?.status === 503) {
    metrics.jobs.inc({ outcome: 'shed' });
    return c.fail(503, shed.message, shed.headers, 'overloaded');
  }
  metrics.jobs.inc({ outcome: ok === results.length ? 'ok' : 'partial' });
  c.send(
    200,
    {
      job_id: jobId,
      results: results.map(resultJson),
      success_rate: results.length ? ok / results.length : 0,
      total_cost_usd: total,
      latency_ms: Date.now() - started,
    },
    shed?.headers,
  );
}

/**
 * Shedding on the HTTP API (README, "Overload"): when every task of a job
 * was shed by admission before it started (`overloaded` with a retry hint),
 * the job is answered 503 with Retry-After; when only some were, the 200
 * carries Retry-After too. Seconds, rounded up, at least 1.
 */
export function overloadAnswer(results: readonly TaskResult[]): { status: 200 | 503; message: string; headers: Record<string, string> } | undefined {
  const shed = results.filter((r) => r.error?.code === 'overloaded' && r.retryAfterMs !== undefined);
  if (shed.length === 0) return undefined;
  const seconds = Math.max(1, Math.ceil(Math.max(...shed.map((r) => r.retryAfterMs!)) / 1000));
  const headers = { 'retry-after': String(seconds) };
  if (shed.length < results.length) return { status: 200, message: '', headers };
  return { status: 503, message: `overloaded: none of the job's ${results.length} task(s) could start and finish before its deadline (${shed[0].error!.message}); retry after ${seconds} s`, headers };
}
