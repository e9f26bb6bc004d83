import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ChatMessage, Task, TaskResult } from '../types';

export const PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'agent.proto');

/** Wire shapes (keepCase: the proto's snake_case names). */
export interface WireTask {
  id: string;
  messages: Array<{ role: string; content: string; name?: string }>;
  model?: string;
  max_tokens?: number;
  role?: string;
  /** Per-task deadline and job when a call carries tasks of several jobs (0 / empty: the request's). */
  deadline_unix_ms?: number;
  job_id?: string;
  /** Session only: the caller's number for the task, echoed in its result. */
  seq?: number;
}
export interface WireResult {
  id: string;
  ok: boolean;
  model?: string;
  content?: string;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  cost_usd?: number;
  attempts?: number;
  latency_ms?: number;
  agent_id?: string;
  error?: { code: string; message: string } | null;
  /** Session only: the seq of the task this answers. */
  seq?: number;
}
export interface ExecuteRequest {
  job_id: string;
  tasks: WireTask[];
  deadline_unix_ms: number;
  hop: number;
}
export interface ExecuteResponse {
  results: WireResult[];
}
/** What a caller writes on a Session: tasks, each with its own deadline, job and seq. */
export interface TaskBatch {
  tasks: WireTask[];
  hop: number;
}
/** What a callee writes back on a Session: the results that finished together. */
export interface ResultBatch {
  results: WireResult[];
}

export type AgentServiceClient = grpc.Client & {
  Execute(req: ExecuteRequest, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: ExecuteResponse) => void): grpc.ClientUnaryCall;
  Session(metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientDuplexStream<TaskBatch, ResultBatch>;
};

let cached: { service: grpc.ServiceDefinition; Client: grpc.ServiceClientConstructor } | undefined;
/** The AgentService definition, loaded once from proto/agent.proto. */
export function agentService() {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: false });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { agents: { v1: { AgentService: grpc.ServiceClientConstructor } } };
    const Client = pkg.agents.v1.AgentService;
    cached = { service: Client.service, Client };
  }
  return cached;
}

// Keepalive makes a silent partition visible within ~3 s: a ping that is not
// answered closes the transport, failing its calls with UNAVAILABLE so the
// dispatcher can hand the tasks to another agent before the job's deadline.
// Channelz (gRPC's introspection service) is never served here, and its
// per-call bookkeeping showed up in profiles of the coordination path.
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_channelz': 0,
  'grpc.keepalive_time_ms': 2000,
  'grpc.keepalive_timeout_ms': 1000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};
export const SERVER_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_channelz': 0,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 1000,
  'grpc.keepalive_time_ms': 10000,
  'grpc.keepalive_timeout_ms': 5000,
};

export function newClient(address: string): AgentServiceClient {
  const { Client } = agentService();
  return new Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as AgentServiceClient;
}

export function toWireTask(t: Task): WireTask {
  return { id: t.id, messages: t.messages.map((m) => ({ role: m.role, content: m.content, name: m.name ?? '' })), model: t.model ?? '', max_tokens: t.maxTokens ?? 0, role: t.role ?? '' };
}

export function fromWireTask(w: WireTask): Task {
  return {
    id: w.id,
    messages: (w.messages ?? []).map((m) => ({ role: m.role as ChatMessage['role'], content: m.content, ...(m.name ? { name: m.name } : {}) })),
    ...(w.model ? { model: w.model } : {}),
    ...(w.max_tokens ? { maxTokens: w.max_tokens } : {}),
    ...(w.role ? { role: w.role } : {}),
  };
}

export function toWireResult(r: TaskResult): WireResult {
  return {
    id: r.id,
    ok: r.ok,
    model: r.model ?? '',
    content: r.content ?? '',
    usage: r.usage ? { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.totalTokens } : null,
    cost_usd: r.costUsd,
    attempts: r.attempts,
    latency_ms: Math.round(r.latencyMs),
    agent_id: r.agentId ?? '',
    error: r.error ? { code: r.error.code, message: r.error.message } : null,
  };
}

export function fromWireResult(w: WireResult): TaskResult {
  return {
    id: w.id,
    ok: w.ok,
    ...(w.model ? { model: w.model } : {}),
    ...(w.ok ? { content: w.content ?? '' } : {}),
    ...(w.usage ? { usage: { promptTokens: w.usage.prompt_tokens, completionTokens: w.usage.completion_tokens, totalTokens: w.usage.total_tokens } } : {}),
    costUsd: w.cost_usd ?? 0,
    attempts: w.attempts ?? 0,
    latencyMs: w.latency_ms ?? 0,
    ...(w.agent_id ? { agentId: w.agent_id } : {}),
    ...(w.error && w.error.code ? { error: { code: w.error.code as NonNullable<TaskResult['error']>['code'], message: w.error.message } } : {}),
  };
}
