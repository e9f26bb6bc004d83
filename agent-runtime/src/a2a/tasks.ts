import { Artifact, Message, Part, Role, Task, TaskState } from '@a2a-js/sdk';
import { JobStatus, JobView } from '../jobs/job-service';

/** A job's status as an A2A task state. */
export function taskState(status: JobStatus): TaskState {
  switch (status) {
    case 'queued':
      return TaskState.TASK_STATE_SUBMITTED;
    case 'running':
      return TaskState.TASK_STATE_WORKING;
    case 'succeeded':
      return TaskState.TASK_STATE_COMPLETED;
    case 'failed':
      return TaskState.TASK_STATE_FAILED;
    case 'cancelled':
      return TaskState.TASK_STATE_CANCELED;
  }
}

export function textPart(text: string): Part {
  return { content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' };
}

export function dataPart(data: unknown): Part {
  return { content: { $case: 'data', value: data }, metadata: undefined, filename: '', mediaType: 'application/json' };
}

interface ResultLike {
  id: string;
  ok?: boolean;
  content?: string | null;
  error?: { message?: string } | null;
}

/**
 * One finished task or step as an artifact: its id, its answer as a text
 * part (when it has one) and the whole result object, as `GET /v1/jobs/<id>`
 * shows it, as a data part.
 */
export function resultArtifact(result: unknown): Artifact {
  const r = result as ResultLike;
  return {
    artifactId: r.id,
    name: r.id,
    description: r.ok === false ? `failed: ${r.error?.message ?? 'unknown error'}` : '',
    parts: [...(typeof r.content === 'string' ? [textPart(r.content)] : []), dataPart(result)],
    metadata: undefined,
    extensions: [],
  };
}

/** The results (tasks job) or steps (steps job) a view holds so far. */
export function viewResults(view: JobView): readonly unknown[] {
  return view.results ?? view.steps ?? [];
}

/**
 * A job as an A2A task. The task id is the job id and, since a job is a
 * conversation of its own, so is the context id.
 */
export function jobTask(view: JobView): Task {
  return {
    id: view.job_id,
    contextId: view.job_id,
    status: { state: taskState(view.status), message: statusMessage(view), timestamp: view.updated_at },
    artifacts: viewResults(view).map(resultArtifact),
    history: [],
    metadata: jobMetadata(view),
  };
}

/** The job's summary fields, as the task's (and final status update's) metadata. */
export function jobMetadata(view: JobView): Record<string, unknown> {
  return { durable: view.durable, created_at: view.created_at, success_rate: view.success_rate, total_cost_usd: view.total_cost_usd };
}

/** A final job says how it went, in words, on its status. */
export function statusMessage(view: JobView): Message | undefined {
  if (view.status !== 'succeeded' && view.status !== 'failed' && view.status !== 'cancelled') return undefined;
  const results = viewResults(view) as ResultLike[];
  const ok = results.filter((r) => r.ok).length;
  const text = `job ${view.status}: ${ok} of ${results.length} ${view.steps ? 'steps' : 'tasks'} succeeded, cost ${view.total_cost_usd.toFixed(6)} USD`;
  return {
    messageId: `${view.job_id}-status`,
    contextId: view.job_id,
    taskId: view.job_id,
    role: Role.ROLE_AGENT,
    parts: [textPart(text)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}
