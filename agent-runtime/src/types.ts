// Shared internal types of the runtime. The HTTP API speaks snake_case
// (`max_tokens`, `cost_usd`); everything inside speaks these camelCase types
// and the HTTP layer maps between the two.

import type { TraceContext } from './telemetry/tracer';

/** A function call the model asked for (OpenAI `tool_calls[]`). */
export interface ToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

/**
 * One chat message, OpenAI-compatible. The tool fields keep OpenAI's
 * snake_case names so a message goes to the upstream as it is.
 */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  /** Empty for an assistant turn that only asks for tools. */
  readonly content: string;
  readonly name?: string;
  /** Assistant turns: the tools the model asked to run. */
  readonly tool_calls?: readonly ToolCall[];
  /** Tool turns: the id of the call this message answers. */
  readonly tool_call_id?: string;
}

/** One unit of work: a single upstream chat completion. */
export interface Task {
  /** Unique within its job; assigned by the entry agent when the client gives none. */
  readonly id: string;
  readonly messages: readonly ChatMessage[];
  /** Model id from the catalog; the role's default model when absent. */
  readonly model?: string;
  readonly maxTokens?: number;
  /** Optional target role (e.g. `validation`); the entry routes by model when absent. */
  readonly role?: string;
  /** Sampling temperature; the role's `behavior.temperature` when absent. */
  readonly temperature?: number;
  /**
   * Structured answer for this task (overrides the role's
   * `behavior.responseSchema`): sent as response_format json_schema, and an
   * answer that does not parse and validate ends the task `bad_response`.
   */
  readonly responseSchema?: { readonly name: string; readonly schema: Readonly<Record<string, unknown>> };
  /**
   * The span this task's work belongs under (the job's at the entry, the
   * received hop's at a callee); absent when tracing is off. Never on the
   * wire as such: a hop sends its own span's `traceparent`.
   */
  readonly trace?: TraceContext;
}

/** One MCP tool call the model asked for while a task ran. */
export interface ToolCallRecord {
  /** Offered name, `<server>__<tool>`. */
  readonly name: string;
  readonly ok: boolean;
  readonly latencyMs: number;
}

export interface Usage {
  readonly promptTokens: number;
  /** Of promptTokens, those the upstream reports as cached (usage.prompt_tokens_details.cached_tokens). */
  readonly cachedPromptTokens?: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
}

export type TaskErrorCode =
  | 'bad_request' // the upstream or we rejected the task itself: never retried
  | 'auth' // 401/403 from the upstream
  | 'rate_limited' // 429 and retries spent
  | 'upstream_error' // 5xx and retries spent
  | 'timeout' // one upstream attempt timed out and retries spent
  | 'deadline_exceeded' // the job's deadline passed
  | 'circuit_open' // every model in the fallback chain has an open circuit
  | 'context_overflow' // system prompt + newest turn do not fit the window
  | 'unavailable' // no peer could take the task
  | 'overloaded' // shed because the pod is at capacity or out of memory budget
  | 'cancelled' // handed back on shutdown and nobody could take it
  | 'bad_response' // the answer is not what the task's response schema asks for
  | 'tool_rounds_exceeded' // the model kept asking for tools past tools.maxRounds
  | 'dependency_failed' // workflow: a step this one depends on failed, so it was not run
  | 'validation_failed' // workflow: the validated step never passed within max_rounds
  | 'internal';

export interface TaskError {
  readonly code: TaskErrorCode;
  readonly message: string;
}

/** Exactly one of these exists per task of a job, success or failure. */
export interface TaskResult {
  readonly id: string;
  readonly ok: boolean;
  /** The model that produced the answer (after fallbacks). */
  readonly model?: string;
  readonly content?: string;
  readonly usage?: Usage;
  readonly costUsd: number;
  /** Upstream attempts made for this task, across retries and fallbacks. */
  readonly attempts: number;
  readonly latencyMs: number;
  /** AGENT_ID of the pod that made the upstream call. */
  readonly agentId?: string;
  /** MCP tool calls made while answering, in order (absent: none). */
  readonly toolCalls?: readonly ToolCallRecord[];
  readonly error?: TaskError;
  /** `overloaded` by admission (shed before it started): about when capacity frees, ms. Not on the wire. */
  readonly retryAfterMs?: number;
}

/**
 * Anything that turns a task into exactly one result before `deadlineAt`
 * (epoch milliseconds): the local inference executor in workers, the
 * dispatcher in coordinators and supervisors.
 */
export interface TaskExecutor {
  execute(task: Task, deadlineAt: number, signal?: AbortSignal): Promise<TaskResult>;
}
