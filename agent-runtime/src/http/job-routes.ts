import { JobCaller } from '../jobs/job-service';
import { JobStore } from '../jobs/store';
import { AgentCore } from '../server/core';
import { TaskResult } from '../types';
import { StepResult } from '../workflow/engine';
import { budgetsOf, BudgetRefusal, refuseSpentBudgets } from './job-budget';
import { RequestError, workflowJson } from './jobs';
import { RequestContext, Route } from './server';

export interface JobRoutesOptions {
  /** Who is calling (issue 12 sets the tenant from the API key); the API runs open without it. */
  readonly callerOf?: (c: RequestContext) => JobCaller;
}

const JOB = /^\/v1\/jobs\/([^/]+)$/;
const EVENTS = /^\/v1\/jobs\/([^/]+)\/events$/;

/**
 * The entry's job API over a job store (README, "Durable jobs"):
 * - `POST /v1/jobs` runs a tasks or steps job (see http/jobs.ts for the
 *   body) and answers when it is done; with `Prefer: respond-async` it
 *   answers 202 at once with the job's `Location`. `Idempotency-Key` makes a
 *   retried submit return the same job.
 * - `GET /v1/jobs/<id>`, `GET /v1/jobs/<id>/events` (Server-Sent Events,
 *   resumable with `Last-Event-ID`), `DELETE /v1/jobs/<id>` (cancel).
 */
export function jobRoutes(core: AgentCore, store: JobStore, opts: JobRoutesOptions = {}): Route[] {
  const callerOf = opts.callerOf ?? (() => ({}));
  return [
    { method: 'POST', path: '/v1/jobs', name: 'jobs', handle: (c) => postJob(core, store, c, callerOf(c)) },
    { method: 'GET', path: JOB, name: 'job', handle: (c) => getJob(core, store, c, callerOf(c)) },
    { method: 'DELETE', path: JOB, name: 'job', handle: (c) => cancelJob(store, c, callerOf(c)) },
    { method: 'GET', path: EVENTS, name: 'job_events', handle: (c) => jobEvents(store, c, callerOf(c)) },
  ];
}

/** `Prefer: respond-async` (RFC 7240), alone or among other preferences. */
function prefersAsync(c: RequestContext): boolean {
  const prefer = c.req.headers.prefer;
  return typeof prefer === 'string' && prefer.split(',').some((p) => p.trim().split(/[;=\s]/)[0].toLowerCase() === 'respond-async');
}

function idempotencyKey(c: RequestContext): string | undefined {
  const key = c.req.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || key.length === 0 || key.length > 255) throw new RequestError(400, 'Idempotency-Key: give one key of 1 to 255 characters');
  return key;
}

const notFound = (id: string) => new RequestError(404, `no job '${id}'`);

async function submit(store: JobStore, raw: string, caller: JobCaller, key: string | undefined, core: AgentCore, c: RequestContext) {
  const { traceparent, tracestate } = c.req.headers;
  const trace = typeof traceparent === 'string' ? { traceparent, ...(typeof tracestate === 'string' ? { tracestate } : {}) } : undefined;
  try {
    return await store.submit(raw, { ...caller, ...(key !== undefined ? { idempotencyKey: key } : {}), ...(trace ? { trace } : {}), ...(prefersAsync(c) ? {} : { waits: true }) });
  } catch (e) {
    // a bad body (4xx) counts as rejected; a store that cannot be reached is the store's 503
    if (e instanceof RequestError && e.status < 500) core.metrics.jobs.inc({ outcome: 'rejected' });
    throw e;
  }
}

async function postJob(core: AgentCore, store: JobStore, c: RequestContext, caller: JobCaller): Promise<void> {
  const { env, lifecycle } = core;
  if (lifecycle.draining) {
    c.req.resume();
    return c.fail(503, `agent ${env.agentId} is draining; retry on another pod`);
  }
  const key = idempotencyKey(c);
  const raw = await c.body();
  const started = Date.now();
  try {
    await refuseSpentBudgets(core, c.tenant);
  } catch (e) {
    if (!(e instanceof BudgetRefusal)) throw e;
    core.metrics.jobs.inc({ outcome: 'rejected' });
    return c.fail(429, e.message, { 'retry-after': String(e.retryAfterSeconds) }, 'budget_exceeded');
  }
  const out = await submit(store, raw, caller, key, core, c);
  if (prefersAsync(c)) {
    const status = out.created ? 'queued' : ((await store.get(out.jobId, caller))?.status ?? 'queued');
    return c.send(202, { job_id: out.jobId, status, durable: out.durable }, { location: `/v1/jobs/${out.jobId}`, 'preference-applied': 'respond-async' });
  }
  // synchronous: the answer of old, from the stored job. A client that goes away before it cancels the job
  // (its waiting tasks leave their queues), which ends the wait below; the job was already there (an
  // idempotent retry): it runs on, and only this wait ends (an AbortController only for that rare case)
  let left = false;
  const gone = out.created ? undefined : new AbortController();
  c.res.once('close', () => {
    if (c.res.writableFinished) return;
    left = true;
    if (gone) gone.abort(new Error('the client closed the connection'));
    else void store.cancel(out.jobId, caller).catch(() => undefined);
  });
  const settled = await store.settle(out.jobId, caller, gone?.signal).catch((e: unknown) => {
    if (gone?.signal.aborted) return undefined;
    throw e;
  });
  if (!settled || left) return;
  const { view, results } = settled;
  const budgets = await budgetsOf(core, view, c.tenant);
  if (view.steps) {
    return c.send(200, { ...workflowJson(view.job_id, results as StepResult[], Date.now() - started), ...(budgets ? { budgets } : {}) });
  }
  const shed = overloadAnswer(results as TaskResult[]);
  if (shed?.status === 503) return c.fail(503, shed.message, shed.headers, 'overloaded');
  c.send(
    200,
    {
      job_id: view.job_id,
      results: view.results, // the results in the job's order, rendered by the store as GET shows them
      success_rate: view.success_rate,
      total_cost_usd: view.total_cost_usd,
      latency_ms: Date.now() - started,
      ...(budgets ? { budgets } : {}),
    },
    shed?.headers,
  );
}

async function getJob(core: AgentCore, store: JobStore, c: RequestContext, caller: JobCaller): Promise<void> {
  const view = await store.get(c.params[0], caller);
  if (!view) throw notFound(c.params[0]);
  const budgets = await budgetsOf(core, view, c.tenant);
  c.send(200, budgets ? { ...view, budgets } : view);
}

async function cancelJob(store: JobStore, c: RequestContext, caller: JobCaller): Promise<void> {
  const view = await store.cancel(c.params[0], caller);
  if (!view) throw notFound(c.params[0]);
  c.send(200, view);
}

/**
 * Server-Sent Events: `id:`, `event: result` (the result as GET shows it)
 * per finished task or step, then `event: done` with the job's view. A
 * comment line every 15 s keeps proxies from closing an idle stream.
 */
async function jobEvents(store: JobStore, c: RequestContext, caller: JobCaller): Promise<void> {
  const closed = new AbortController();
  c.res.once('close', () => closed.abort());
  const last = c.req.headers['last-event-id'];
  const events = await store.events(c.params[0], caller, typeof last === 'string' && last !== '' ? last : undefined, closed.signal);
  if (!events) throw notFound(c.params[0]);
  c.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  c.res.flushHeaders();
  const ping = setInterval(() => c.res.write(': keep-alive\n\n'), 15_000);
  try {
    for await (const e of events) {
      if (closed.signal.aborted) break;
      c.res.write(`id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
    }
  } finally {
    clearInterval(ping);
    c.res.end();
  }
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
