import { RequestError } from '../../src/http/jobs';
import { isFinal, JobCaller, JobEvent, JobService, JobStatus, JobView, SubmitOptions, SubmitOutcome } from '../../src/jobs/job-service';

interface ScriptedJob {
  id: string;
  tenant?: string;
  kind: 'tasks' | 'steps';
  ids: string[];
  status: JobStatus;
  results: Array<Record<string, unknown>>;
  events: JobEvent[];
  listeners: Set<() => void>;
  created: string;
  updated: string;
}

/**
 * A JobService whose tasks finish when the test says so (`finish`), or at
 * once with `autoFinish`: it keeps the job model's rules (tenant scoping,
 * idempotency keys, events replayed then live, cancel ends unfinished tasks
 * `cancelled`) so the A2A layer can be tested step by step, without timing.
 */
export class ScriptedJobs implements JobService {
  readonly durable = false;
  readonly submitted: Array<{ body: unknown; opts: SubmitOptions }> = [];
  private readonly jobs = new Map<string, ScriptedJob>();
  private readonly keys = new Map<string, { body: string; jobId: string }>();
  private seq = 0;

  constructor(private readonly opts: { autoFinish?: boolean } = {}) {}

  async submit(rawBody: string, opts: SubmitOptions): Promise<SubmitOutcome> {
    const scoped = opts.idempotencyKey ? `${opts.tenant ?? ''}|${opts.idempotencyKey}` : undefined;
    const earlier = scoped ? this.keys.get(scoped) : undefined;
    if (earlier) {
      if (earlier.body !== rawBody) throw new RequestError(422, `Idempotency-Key '${opts.idempotencyKey}' was used with another body`);
      return { jobId: earlier.jobId, created: false, durable: false };
    }
    const body = JSON.parse(rawBody) as { tasks?: Array<{ id?: string; prompt?: string }>; steps?: Array<{ id: string }> };
    if (!body.tasks && !body.steps) throw new RequestError(400, "body: give 'tasks' or 'steps'");
    if (body.tasks?.some((t) => t.prompt === 'reject me')) throw new RequestError(400, 'tasks.0.prompt: rejected by the test');
    this.submitted.push({ body, opts });
    const now = new Date().toISOString();
    const job: ScriptedJob = {
      id: `job-${++this.seq}`,
      tenant: opts.tenant,
      kind: body.steps ? 'steps' : 'tasks',
      ids: body.steps ? body.steps.map((s) => s.id) : body.tasks!.map((t, i) => t.id ?? `t${i}`),
      status: 'queued',
      results: [],
      events: [],
      listeners: new Set(),
      created: now,
      updated: now,
    };
    this.jobs.set(job.id, job);
    if (scoped) this.keys.set(scoped, { body: rawBody, jobId: job.id });
    if (this.opts.autoFinish) for (const id of job.ids) this.finish(job.id, id, `echo:${id}`);
    return { jobId: job.id, created: true, durable: false };
  }

  /** Ends one task of a job with `content` (or as failed when `content` is undefined). */
  finish(jobId: string, taskId: string, content: string | undefined): void {
    const job = this.jobs.get(jobId)!;
    job.status = 'running';
    this.record(job, {
      id: taskId,
      ok: content !== undefined,
      content: content ?? null,
      cost_usd: 0.001,
      error: content === undefined ? { code: 'upstream_error', message: 'the test failed it' } : null,
    });
    if (job.results.length === job.ids.length) this.end(job, job.results.every((r) => r.ok) ? 'succeeded' : 'failed');
  }

  async get(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    const job = this.jobs.get(jobId);
    return job && job.tenant === caller.tenant ? this.view(job) : undefined;
  }

  async wait(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<JobView | undefined> {
    const job = this.jobs.get(jobId);
    if (!job || job.tenant !== caller.tenant) return undefined;
    while (!isFinal(job.status)) {
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        job.listeners.add(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    return this.view(job);
  }

  async cancel(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    const job = this.jobs.get(jobId);
    if (!job || job.tenant !== caller.tenant) return undefined;
    if (isFinal(job.status)) return this.view(job);
    for (const id of job.ids.filter((i) => !job.results.some((r) => r.id === i))) {
      this.record(job, { id, ok: false, content: null, cost_usd: 0, error: { code: 'cancelled', message: 'the job was cancelled' } });
    }
    this.end(job, 'cancelled');
    return this.view(job);
  }

  async events(jobId: string, caller: JobCaller, afterEventId: string | undefined, signal: AbortSignal): Promise<AsyncIterable<JobEvent> | undefined> {
    const job = this.jobs.get(jobId);
    if (!job || job.tenant !== caller.tenant) return undefined;
    let next = afterEventId === undefined ? 0 : job.events.findIndex((e) => e.id === afterEventId) + 1;
    return {
      [Symbol.asyncIterator]: async function* () {
        for (;;) {
          while (next < job.events.length) {
            const e = job.events[next++];
            yield e;
            if (e.event === 'done') return;
          }
          if (signal.aborted) return;
          await new Promise<void>((resolve) => {
            job.listeners.add(resolve);
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
      },
    };
  }

  async close(): Promise<void> {}

  private record(job: ScriptedJob, result: Record<string, unknown>) {
    job.results.push(result);
    job.updated = new Date().toISOString();
    job.events.push({ id: String(job.events.length + 1), event: 'result', data: result });
    this.wake(job);
  }

  private end(job: ScriptedJob, status: JobStatus) {
    job.status = status;
    job.events.push({ id: String(job.events.length + 1), event: 'done', data: this.view(job) });
    this.wake(job);
  }

  private wake(job: ScriptedJob) {
    const waiting = [...job.listeners];
    job.listeners.clear();
    for (const w of waiting) w();
  }

  private view(job: ScriptedJob): JobView {
    const ok = job.results.filter((r) => r.ok).length;
    return {
      job_id: job.id,
      status: job.status,
      durable: false,
      created_at: job.created,
      updated_at: job.updated,
      [job.kind === 'steps' ? 'steps' : 'results']: [...job.results],
      success_rate: job.results.length ? ok / job.results.length : 0,
      total_cost_usd: job.results.reduce((s, r) => s + (r.cost_usd as number), 0),
    };
  }
}
