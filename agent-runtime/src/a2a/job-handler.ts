import {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
  TaskState,
} from '@a2a-js/sdk';
import {
  ExtendedAgentCardNotConfiguredError,
  PushNotificationNotSupportedError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from '@a2a-js/sdk/errors';
import type { A2ARequestHandler, ServerCallContext } from '@a2a-js/sdk/server';
import { RequestError } from '../http/jobs';
import { isFinal, JobCaller, JobService, JobView } from '../jobs/job-service';
import { jobMetadata, jobTask, resultArtifact, statusMessage, taskState } from './tasks';

/** Keys in the SDK's per-call state bag: who calls (from the HTTP layer's auth) and the request's lifetime. */
export const CALLER_STATE = 'agents.cdk8s.io/caller';
export const SIGNAL_STATE = 'agents.cdk8s.io/signal';

function callerOf(ctx: ServerCallContext): JobCaller {
  // the tenant comes from the API key the HTTP layer checked, never from the
  // request's own `tenant` field, which any caller can set
  return (ctx.state.get(CALLER_STATE) as JobCaller | undefined) ?? {};
}

function signalOf(ctx: ServerCallContext): AbortSignal | undefined {
  return ctx.state.get(SIGNAL_STATE) as AbortSignal | undefined;
}

/**
 * The job body a message stands for: a data part with `steps` is a
 * workflow (the same object POST /v1/jobs takes); otherwise the text parts,
 * joined by newlines, are the prompt of a one-task job.
 */
export function jobBodyOf(message: Message | undefined): string {
  if (!message) throw new RequestMalformedError('message: required');
  if (message.taskId) {
    throw new UnsupportedOperationError(`message.taskId: task '${message.taskId}' takes no further messages (a task is one job); send a new message without taskId`);
  }
  const data = message.parts.flatMap((p) => (p.content?.$case === 'data' ? [p.content.value as unknown] : []));
  if (data.length > 0) {
    const workflow = data.find((d) => d !== null && typeof d === 'object' && 'steps' in d);
    if (!workflow) throw new RequestMalformedError("message.parts: a data part must carry 'steps' (a workflow, as POST /v1/jobs takes it)");
    if (data.length > 1) throw new RequestMalformedError('message.parts: give one data part (the workflow), not ' + data.length);
    return JSON.stringify(workflow);
  }
  const text = message.parts
    .flatMap((p) => (p.content?.$case === 'text' ? [p.content.value] : []))
    .join('\n');
  if (text.trim() === '') throw new RequestMalformedError("message.parts: give a text part (one task) or a data part with 'steps' (a workflow)");
  return JSON.stringify({ tasks: [{ prompt: text }] });
}

/**
 * The A2A request handler of the entry, reading and writing the same jobs
 * as `/v1/jobs`. The SDK's DefaultRequestHandler keeps tasks in its own
 * TaskStore and runs an executor on an in-process event bus; here a task is
 * a job that may run on another replica (JetStream store), so every method
 * goes to the JobService instead, and any replica can answer for any task.
 */
export class JobRequestHandler implements A2ARequestHandler {
  constructor(
    private readonly jobs: JobService,
    private readonly card: () => AgentCard,
  ) {}

  getAgentCard(): Promise<AgentCard> {
    return Promise.resolve(this.card());
  }

  getAuthenticatedExtendedAgentCard(_params: GetExtendedAgentCardRequest, _ctx: ServerCallContext): Promise<AgentCard> {
    return Promise.reject(new ExtendedAgentCardNotConfiguredError('this agent has no extended card: the public card is the whole of it'));
  }

  async sendMessage(params: SendMessageRequest, ctx: ServerCallContext): Promise<Message | Task> {
    const caller = callerOf(ctx);
    const jobId = await this.submit(params, caller);
    const view = params.configuration?.returnImmediately ? await this.jobs.get(jobId, caller) : await this.jobs.wait(jobId, caller, signalOf(ctx));
    if (!view) throw new TaskNotFoundError(`task ${jobId}: the job was submitted but can no longer be read`);
    return jobTask(view);
  }

  async *sendMessageStream(params: SendMessageRequest, ctx: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    const caller = callerOf(ctx);
    const jobId = await this.submit(params, caller);
    yield* this.follow(jobId, caller, signalOf(ctx));
  }

  async getTask(params: GetTaskRequest, ctx: ServerCallContext): Promise<Task> {
    return jobTask(await this.view(params.id, callerOf(ctx)));
  }

  async cancelTask(params: CancelTaskRequest, ctx: ServerCallContext): Promise<Task> {
    const caller = callerOf(ctx);
    const before = await this.view(params.id, caller);
    if (isFinal(before.status)) throw new TaskNotCancelableError(`task ${params.id} has already ${before.status === 'cancelled' ? 'been cancelled' : before.status}`);
    const after = await this.jobs.cancel(params.id, caller);
    if (!after) throw new TaskNotFoundError(`task ${params.id}: no such task`);
    return jobTask(after);
  }

  async *resubscribe(params: SubscribeToTaskRequest, ctx: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    const caller = callerOf(ctx);
    const view = await this.view(params.id, caller);
    if (isFinal(view.status)) throw new UnsupportedOperationError(`task ${params.id} has already ended (${view.status}); read it with GetTask`);
    yield* this.follow(params.id, caller, signalOf(ctx));
  }

  listTasks(_params: ListTasksRequest, _ctx: ServerCallContext): Promise<ListTasksResponse> {
    return Promise.reject(new UnsupportedOperationError('listing tasks is not offered; keep the ids SendMessage returns'));
  }

  createTaskPushNotificationConfig(_params: TaskPushNotificationConfig, _ctx: ServerCallContext): Promise<TaskPushNotificationConfig> {
    return Promise.reject(new PushNotificationNotSupportedError('push notifications are not offered; stream the task or poll GetTask'));
  }

  getTaskPushNotificationConfig(_params: GetTaskPushNotificationConfigRequest, _ctx: ServerCallContext): Promise<TaskPushNotificationConfig> {
    return Promise.reject(new PushNotificationNotSupportedError('push notifications are not offered'));
  }

  listTaskPushNotificationConfigs(_params: ListTaskPushNotificationConfigsRequest, _ctx: ServerCallContext): Promise<ListTaskPushNotificationConfigsResponse> {
    return Promise.reject(new PushNotificationNotSupportedError('push notifications are not offered'));
  }

  deleteTaskPushNotificationConfig(_params: DeleteTaskPushNotificationConfigRequest, _ctx: ServerCallContext): Promise<void> {
    return Promise.reject(new PushNotificationNotSupportedError('push notifications are not offered'));
  }

  private async submit(params: SendMessageRequest, caller: JobCaller): Promise<string> {
    const body = jobBodyOf(params.message);
    try {
      // a client's retry of the same message (same messageId, same content) finds the job it already made
      const key = params.message?.messageId ? `a2a:${params.message.messageId}` : undefined;
      const out = await this.jobs.submit(body, { ...caller, ...(key ? { idempotencyKey: key } : {}) });
      return out.jobId;
    } catch (e) {
      if (e instanceof RequestError && e.status < 500) throw new RequestMalformedError(e.message);
      throw e;
    }
  }

  private async view(taskId: string, caller: JobCaller): Promise<JobView> {
    if (!taskId || taskId.trim() === '') throw new RequestMalformedError('id: the task id is required');
    const view = await this.jobs.get(taskId, caller);
    if (!view) throw new TaskNotFoundError(`task ${taskId}: no such task`);
    return view;
  }

  /**
   * The task as it stands, then an artifact per result as it finishes, then
   * the final status. The job's events replay from the start: the first as
   * many results as the snapshot already held are skipped (events come in
   * the order results finish, the order the view collects them), so nothing
   * is lost or sent twice between the snapshot and the live events.
   */
  private async *follow(jobId: string, caller: JobCaller, outer: AbortSignal | undefined): AsyncGenerator<StreamResponse, void, undefined> {
    const stop = new AbortController();
    const onOuter = () => stop.abort(outer?.reason);
    outer?.addEventListener('abort', onOuter, { once: true });
    try {
      const view = await this.view(jobId, caller);
      const task = jobTask(view);
      yield { payload: { $case: 'task', value: task } };
      if (isFinal(view.status)) return;
      let skip = task.artifacts.length;
      let working = view.status === 'running';
      const events = await this.jobs.events(jobId, caller, undefined, stop.signal);
      if (!events) throw new TaskNotFoundError(`task ${jobId}: no such task`);
      for await (const e of events) {
        if (e.event === 'result') {
          if (skip > 0) {
            skip -= 1;
            continue;
          }
          if (!working) {
            working = true;
            yield { payload: { $case: 'statusUpdate', value: { taskId: jobId, contextId: jobId, status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined } } };
          }
          yield { payload: { $case: 'artifactUpdate', value: { taskId: jobId, contextId: jobId, artifact: resultArtifact(e.data), append: false, lastChunk: true, metadata: undefined } } };
        } else {
          const done = e.data as JobView;
          yield {
            payload: {
              $case: 'statusUpdate',
              value: { taskId: jobId, contextId: jobId, status: { state: taskState(done.status), message: statusMessage(done), timestamp: done.updated_at }, metadata: jobMetadata(done) },
            },
          };
          return;
        }
      }
    } finally {
      outer?.removeEventListener('abort', onOuter);
      stop.abort();
    }
  }
}
