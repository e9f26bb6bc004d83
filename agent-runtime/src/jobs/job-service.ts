/**
 * The job model every front door shares (the HTTP job API, A2A): a job is
 * submitted once, runs on whichever replica takes it, and can be read,
 * watched and cancelled by id. Two implementations: in memory (no
 * `jobStore` in the config; `durable: false`) and NATS JetStream.
 *
 * The JSON shapes here are issue 11's contract (`GET /v1/jobs/<id>` and
 * the SSE events): keep the field names exactly.
 */

/** Where a job is in its life. */
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** A status after which nothing changes any more. */
export function isFinal(status: JobStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** What `GET /v1/jobs/<id>` answers (and the SSE `done` event carries). */
export interface JobView {
  readonly job_id: string;
  readonly status: JobStatus;
  readonly durable: boolean;
  readonly created_at: string;
  readonly updated_at: string;
  /** tasks jobs: the results so far, as `resultJson` renders them */
  readonly results?: readonly unknown[];
  /** steps jobs: the steps finished so far, as `stepJson` renders them */
  readonly steps?: readonly unknown[];
  readonly success_rate: number;
  readonly total_cost_usd: number;
  /** the job's `budget_usd`, when it gave one */
  readonly budget_usd?: number;
  /** spend against each budget that applies (job, tenant daily, cluster hourly); added by the HTTP API */
  readonly budgets?: readonly unknown[];
}

/** One Server-Sent Event of `GET /v1/jobs/<id>/events`. */
export interface JobEvent {
  /** the SSE `id:` line; `Last-Event-ID` resumes after it */
  readonly id: string;
  readonly event: 'result' | 'done';
  /** `result`: the result object as GET shows it; `done`: the JobView */
  readonly data: unknown;
}

/** Who submits or reads a job (issue 12: a tenant sees only its own jobs). */
export interface JobCaller {
  /** the tenant of the API key; undefined when the API runs open */
  readonly tenant?: string;
}

export interface SubmitOptions extends JobCaller {
  /** the `Idempotency-Key` header */
  readonly idempotencyKey?: string;
  /** the client's W3C trace context (`traceparent`, `tracestate`): the job's span continues it, wherever the job runs */
  readonly trace?: { readonly traceparent?: string; readonly tracestate?: string };
  /** the submitter waits for the job's end (a synchronous POST): a store may run it in this process */
  readonly waits?: boolean;
}

export interface SubmitOutcome {
  readonly jobId: string;
  /** false when an earlier submit with the same idempotency key and body made it */
  readonly created: boolean;
  readonly durable: boolean;
}

export interface JobService {
  /** true with a JetStream store */
  readonly durable: boolean;
  /**
   * Validates (a `RequestError` with a status for a bad body, a 422 for an
   * idempotency key reused with another body), stores and queues the job.
   */
  submit(rawBody: string, opts: SubmitOptions): Promise<SubmitOutcome>;
  /** undefined: unknown id, or another tenant's job */
  get(jobId: string, caller: JobCaller): Promise<JobView | undefined>;
  /** Resolves with the final view (waits for the job to end). */
  wait(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<JobView | undefined>;
  /** Stops dispatching, aborts in-flight calls; undefined: unknown id. */
  cancel(jobId: string, caller: JobCaller): Promise<JobView | undefined>;
  /**
   * The job's events after `afterEventId` (all of them without it), live
   * until `done`; undefined: unknown id.
   */
  events(jobId: string, caller: JobCaller, afterEventId: string | undefined, signal: AbortSignal): Promise<AsyncIterable<JobEvent> | undefined>;
  close(): Promise<void>;
}
