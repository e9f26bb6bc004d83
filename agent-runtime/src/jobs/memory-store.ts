import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { ParsedJob } from '../http/jobs';
import { isFinal, JobCaller, JobEvent, JobView, SubmitOptions, SubmitOutcome } from './job-service';
import { cancelledResult, finalStatus, IDEMPOTENCY_TTL_MS, IdempotencyEntry, idsOf, JobRecord, jobBodyHash, renderResult, reuseOf, StoredResult, viewOf } from './records';
import { JobRun } from './runner';
import { JobStore, SettledJob } from './store';

/** Parses a POST /v1/jobs body (RequestError on a bad one); `now` fixes its deadline. */
export type ParseJob = (raw: string, now: number) => ParsedJob;
/** Runs a job's remaining tasks or steps (runner.ts `runJob`, bound to the agent). */
export type ExecuteJob = (jobId: string, job: ParsedJob, run: JobRun) => Promise<void>;

export interface MemoryJobServiceOptions {
  readonly parse: ParseJob;
  readonly execute: ExecuteJob;
  /** finished jobs kept for GET at most (oldest dropped first) */
  readonly maxFinishedJobs?: number;
  readonly now?: () => number;
}

interface Entry {
  readonly rec: JobRecord;
  readonly results: Map<number, StoredResult>;
  /**
   * Task or step indexes in the order their results were recorded: the
   * event log, rendered only when someone reads it (a synchronous job that
   * nobody watches renders its results once, for its answer).
   */
  readonly order: number[];
  readonly controller: AbortController;
  /** ms of the submit and of the last change: `rec.created_at` and `rec.updated_at` are rendered from them when the job is read */
  readonly createdAt: number;
  updatedAt: number;
  /** woken on every new event */
  readonly listeners: Set<() => void>;
  /** the scoped idempotency key that names this job */
  readonly key?: string;
  finishedAt?: number;
}

/**
 * Jobs in this process's memory (no `jobStore` in the config): they live as
 * long as the pod, run here, and the API says `"durable": false`.
 */
export class MemoryJobService implements JobStore {
  readonly durable = false;
  private readonly jobs = new Map<string, Entry>();
  private readonly keys = new Map<string, IdempotencyEntry>();
  /** ids of finished jobs, oldest first */
  private readonly finishedOrder: string[] = [];
  private readonly now: () => number;
  private readonly maxFinished: number;

  constructor(private readonly opts: MemoryJobServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.maxFinished = opts.maxFinishedJobs ?? 10_000;
  }

  async submit(rawBody: string, opts: SubmitOptions): Promise<SubmitOutcome> {
    const now = this.now();
    // the body is hashed only for an idempotency key (parse, sort and sha256 cost CPU on every submit otherwise)
    const hash = opts.idempotencyKey !== undefined ? jobBodyHash(rawBody) : '';
    const scoped = opts.idempotencyKey !== undefined ? `${opts.tenant ?? ''}\u0000${opts.idempotencyKey}` : undefined;
    if (scoped !== undefined) {
      const same = reuseOf(opts.idempotencyKey!, this.keys.get(scoped), hash, now);
      if (same !== undefined && this.jobs.has(same)) return { jobId: same, created: false, durable: false };
    }
    const job = this.opts.parse(rawBody, now);
    // created_at and updated_at are rendered when the job is read (view): a job nobody reads formats no dates
    const rec: JobRecord = { job_id: randomUUID(), kind: job.kind, body: rawBody, ids: idsOf(job), ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}), ...(opts.trace ? { trace: opts.trace } : {}), ...(job.budgetUsd !== undefined ? { budget_usd: job.budgetUsd } : {}), created_at: '', updated_at: '', status: 'queued' };
    const controller = new AbortController();
    setMaxListeners(0, controller.signal); // one listener per task of the job waiting for capacity
    const entry: Entry = { rec, results: new Map(), order: [], controller, createdAt: now, updatedAt: now, listeners: new Set(), ...(scoped !== undefined ? { key: scoped } : {}) };
    this.jobs.set(rec.job_id, entry);
    if (scoped !== undefined) this.keys.set(scoped, { job_id: rec.job_id, body_sha256: hash, at: now });
    this.sweep(now);
    // started on the next turn, so the caller has its id before the first result
    setImmediate(() => this.start(entry, job));
    return { jobId: rec.job_id, created: true, durable: false };
  }

  async get(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    const e = this.entry(jobId, caller);
    return e && this.view(e);
  }

  async wait(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<JobView | undefined> {
    return (await this.settle(jobId, caller, signal))?.view;
  }

  async settle(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<SettledJob | undefined> {
    const e = this.entry(jobId, caller);
    if (!e) return undefined;
    while (!isFinal(e.rec.status)) await this.next(e, signal);
    return { view: this.view(e), results: [...e.results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r) };
  }

  async cancel(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    const e = this.entry(jobId, caller);
    if (!e) return undefined;
    if (!isFinal(e.rec.status)) {
      e.rec.cancel_requested = true;
      // every task without a result ends cancelled now; whatever the aborted calls answer later is dropped
      e.rec.ids.forEach((id, i) => this.record(e, i, cancelledResult(e.rec.kind, id)));
      this.finish(e, 'cancelled');
      e.controller.abort(new Error('job cancelled by its client'));
    }
    return this.view(e);
  }

  async events(jobId: string, caller: JobCaller, afterEventId: string | undefined, signal: AbortSignal): Promise<AsyncIterable<JobEvent> | undefined> {
    const e = this.entry(jobId, caller);
    if (!e) return undefined;
    // event ids are 1, 2, 3, ... in the order the results finished, then `done` (id n + 1) once the job
    // is final; an id we never gave restarts from the first
    const after = Number(afterEventId);
    let next = Number.isInteger(after) && after > 0 ? Math.min(after, this.eventCount(e)) : 0;
    const self = this;
    return (async function* () {
      for (;;) {
        while (next < e.order.length) {
          const i = e.order[next++];
          yield { id: String(next), event: 'result', data: renderResult(e.rec.kind, e.results.get(i)!) } as JobEvent;
        }
        if (isFinal(e.rec.status)) {
          if (next === e.order.length) yield { id: String(next + 1), event: 'done', data: self.view(e) } as JobEvent;
          return;
        }
        if (signal.aborted) return;
        await self.next(e, signal).catch(() => undefined);
      }
    })();
  }

  async close(): Promise<void> {
    for (const e of this.jobs.values()) if (!isFinal(e.rec.status)) e.controller.abort(new Error('agent shutting down'));
  }

  private start(entry: Entry, job: ParsedJob): void {
    if (isFinal(entry.rec.status)) return;
    entry.rec.status = 'running';
    entry.updatedAt = this.now();
    this.opts
      .execute(entry.rec.job_id, job, {
        finished: entry.results,
        signal: entry.controller.signal,
        controller: entry.controller,
        onResult: (i, r) => this.record(entry, i, r),
        ...(entry.rec.trace ? { traceHeaders: entry.rec.trace } : {}),
        ...(entry.rec.tenant !== undefined ? { tenant: entry.rec.tenant } : {}),
      })
      .then(
        () => this.finish(entry, entry.results.size === entry.rec.ids.length ? finalStatus(entry.results.values()) : 'failed'),
        () => this.finish(entry, 'failed'),
      );
  }

  /** Create-only: the first result of a task stands; none after the job ended. */
  private record(e: Entry, index: number, r: StoredResult): void {
    if (isFinal(e.rec.status) || e.results.has(index)) return;
    e.results.set(index, r);
    e.order.push(index);
    this.changed(e);
  }

  private finish(e: Entry, status: JobRecord['status']): void {
    if (isFinal(e.rec.status)) return;
    e.rec.status = status;
    e.finishedAt = this.now();
    this.finishedOrder.push(e.rec.job_id);
    this.changed(e);
  }

  /** A result or the job's end: the job's time of change, and whoever waits for its next event wakes. */
  private changed(e: Entry): void {
    e.updatedAt = this.now();
    if (e.listeners.size > 0) for (const wake of [...e.listeners]) wake();
  }

  /** Results so far, then `done` once the job is final. */
  private eventCount(e: Entry): number {
    return e.order.length + (isFinal(e.rec.status) ? 1 : 0);
  }

  /** Resolves at the job's next event (rejects when `signal` aborts first). */
  private next(e: Entry, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const wake = () => {
        e.listeners.delete(wake);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        e.listeners.delete(wake);
        reject(signal!.reason);
      };
      e.listeners.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
      return undefined;
    });
  }

  private entry(jobId: string, caller: JobCaller): Entry | undefined {
    const e = this.jobs.get(jobId);
    return e && e.rec.tenant === caller.tenant ? e : undefined;
  }

  private view(e: Entry): JobView {
    if (e.rec.created_at === '') (e.rec as { created_at: string }).created_at = new Date(e.createdAt).toISOString();
    e.rec.updated_at = new Date(e.updatedAt).toISOString();
    return viewOf(e.rec, e.results, false);
  }

  /** Drops finished jobs past the idempotency window, and the oldest beyond maxFinishedJobs, with their keys. */
  private sweep(now: number): void {
    while (this.finishedOrder.length > 0) {
      const e = this.jobs.get(this.finishedOrder[0])!;
      if (this.finishedOrder.length <= this.maxFinished && now - e.finishedAt! < IDEMPOTENCY_TTL_MS) break;
      this.finishedOrder.shift();
      this.jobs.delete(e.rec.job_id);
      if (e.key !== undefined && this.keys.get(e.key)?.job_id === e.rec.job_id) this.keys.delete(e.key);
    }
  }
}
