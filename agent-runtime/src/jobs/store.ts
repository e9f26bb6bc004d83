import { JobCaller, JobService, JobView } from './job-service';
import { StoredResult } from './records';

/** A job that has ended: its view, and its results as the runtime keeps them. */
export interface SettledJob {
  readonly view: JobView;
  /** in the job's order; `retryAfterMs` of shed tasks is here (the API's JSON has no such field) */
  readonly results: readonly StoredResult[];
}

/**
 * What the HTTP API needs of a job store beyond the shared JobService: a
 * synchronous POST answers from the runtime's own results (503 with
 * Retry-After when every task was shed, as before jobs were stored).
 */
export interface JobStore extends JobService {
  settle(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<SettledJob | undefined>;
  /** The agent drains: take no new jobs (jobs running here go on until done or handed back). */
  stopTaking?(): void;
}
