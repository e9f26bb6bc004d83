import { createHash } from 'node:crypto';
import stableStringify from 'safe-stable-stringify';
import { ParsedJob, RequestError, resultJson, stepJson } from '../http/jobs';
import { TaskResult } from '../types';
import { StepResult } from '../workflow/engine';
import { JobStatus, JobView } from './job-service';

// What both job stores keep about a job, and how they turn it into the API's
// JSON. Results are kept in the runtime's own (camelCase) shape, so a
// resumed workflow gets its finished steps back as the engine made them, and
// rendered to the API's snake_case view only when read.

/** A task's or a step's final result, as the runner recorded it. */
export type StoredResult = TaskResult | StepResult;

/** How long an `Idempotency-Key` holds (issue 11: 24 hours). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** The job itself: what was submitted, by whom, and where it is. */
export interface JobRecord {
  readonly job_id: string;
  readonly kind: 'tasks' | 'steps';
  /** the POST body as received; the runner parses it again (deadline from created_at) */
  readonly body: string;
  /** task or step ids in the order given: result i belongs to ids[i] */
  readonly ids: readonly string[];
  readonly tenant?: string;
  /** the body's `budget_usd` (issue 12), shown in the view */
  readonly budget_usd?: number;
  /** the submitter's W3C trace context, for the job's span */
  readonly trace?: { readonly traceparent?: string; readonly tracestate?: string };
  readonly created_at: string;
  status: JobStatus;
  updated_at: string;
  /** set by DELETE; a runner that picks the job up later finishes it as cancelled */
  cancel_requested?: boolean;
  /** JetStream store, once the job ended: its results in order, so a read is one get (left out when large) */
  results?: StoredResult[];
}

/** Task or step ids of a parsed job, in the order given. */
export function idsOf(job: ParsedJob): string[] {
  return job.kind === 'tasks' ? job.tasks.map((t) => t.id) : job.workflow.steps.map((s) => s.id);
}

/** One result as `GET /v1/jobs/<id>` shows it (and an SSE `result` event carries it). */
export function renderResult(kind: JobRecord['kind'], r: StoredResult): unknown {
  return kind === 'tasks' ? resultJson(r as TaskResult) : stepJson(r as StepResult);
}

/** The GET view: results so far in the order the job gave them. */
export function viewOf(rec: JobRecord, results: ReadonlyMap<number, StoredResult>, durable: boolean): JobView {
  const done = [...results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  const ok = done.filter((r) => r.ok).length;
  const rendered = done.map((r) => renderResult(rec.kind, r));
  return {
    job_id: rec.job_id,
    status: rec.status,
    durable,
    created_at: rec.created_at,
    updated_at: rec.updated_at,
    ...(rec.kind === 'tasks' ? { results: rendered } : { steps: rendered }),
    success_rate: done.length ? ok / done.length : 0,
    total_cost_usd: done.reduce((s, r) => s + r.costUsd, 0),
    ...(rec.budget_usd !== undefined ? { budget_usd: rec.budget_usd } : {}),
  };
}

/** The status a job ends with once every task or step has its result. */
export function finalStatus(results: Iterable<StoredResult>): JobStatus {
  for (const r of results) if (!r.ok) return 'failed';
  return 'succeeded';
}

/** The result a task or step that never finished gets when its job is cancelled. */
export function cancelledResult(kind: JobRecord['kind'], id: string): StoredResult {
  const error = { code: 'cancelled' as const, message: 'job cancelled by its client' };
  return kind === 'tasks' ? { id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, error } : { id, ok: false, rounds: 0, costUsd: 0, attempts: 0, latencyMs: 0, error };
}

/** What an idempotency key remembers: the job and the body it was made with. */
export interface IdempotencyEntry {
  readonly job_id: string;
  readonly body_sha256: string;
  readonly at: number;
}

export function bodyHash(raw: string): string {
  return createHash('sha256').update(raw).digest('hex');
}

/**
 * What "the same body" means for an Idempotency-Key: the same JSON value,
 * whatever its whitespace or key order (keys sorted by safe-stable-stringify);
 * a body that is not JSON is compared as its bytes.
 */
export function jobBodyHash(raw: string): string {
  let canonical: string | undefined;
  try {
    canonical = stableStringify(JSON.parse(raw));
  } catch {
    canonical = undefined;
  }
  return bodyHash(canonical ?? raw);
}

/**
 * The job an idempotency key already names, when it is still valid for
 * this body; a 422 naming the key when it was used with another body.
 */
export function reuseOf(key: string, entry: IdempotencyEntry | undefined, hash: string, now: number): string | undefined {
  if (!entry || now - entry.at >= IDEMPOTENCY_TTL_MS) return undefined;
  if (entry.body_sha256 !== hash) {
    throw new RequestError(422, `Idempotency-Key '${key}' was already used with a different body (job ${entry.job_id}); send the same body to get that job, or use a new key`);
  }
  return entry.job_id;
}
