import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ChatMessage, SpendScope, Task, TaskResult } from '../types';

export const PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'agent.proto');

/** Wire shapes (keepCase: the proto's snake_case names). */
export interface WireMessage {
  role: string;
  content: string;
  name?: string;
  tool_call_id?: string;
  tool_calls?: Array<{ id: string; name: string; arguments: string }>;
}
export interface WireTask {
  id: string;
  messages: WireMessage[];
  model?: string;
  max_tokens?: number;
  role?: string;
  /** Per-task deadline and job when a call carries tasks of several jobs (0 / empty: the request's). */
  deadline_unix_ms?: number;
  job_id?: string;
  /** Session only: the caller's number for the task, echoed in its result. */
  seq?: number;
  /** proto3 optional: absent (not 0) when the task sets none. */
  temperature?: number;
  response_schema?: { name: string; schema_json: string } | null;
  /** W3C trace context of the caller's span for this trip ('' / absent: not traced). */
  traceparent?: string;
  tracestate?: string;
  spend?: WireSpend | null;
}
export interface WireSpend {
  job_id: string;
  job_budget_usd?: number | null;
  tenant?: string;
  tenant_daily_budget_usd?: number | null;
}
export interface WireResult {
  id: string;
  ok: boolean;
  model?: string;
  content?: string;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number; cached_prompt_tokens?: number } | null;
  cost_usd?: number;
  attempts?: number;
  latency_ms?: number;
  agent_id?: string;
  error?: { code: string; message: string } | null;
  /** Session only: the seq of the task this answers. */
  seq?: number;
  tool_calls?: Array<{ name: string; ok: boolean; latency_ms: number }>;
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
  /** jobs the caller cancelled: abort this stream's tasks of them (agent.proto) */
  cancel_job_ids?: string[];
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

/** A client of one pod: plain text, or (mTLS) the given credentials and extra channel options. */
export function newClient(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): AgentServiceClient {
  const { Client } = agentService();
  return new Client(address, credentials, { ...CHANNEL_OPTIONS, ...options }) as unknown as AgentServiceClient;
}

function toWireMessage(m: ChatMessage): WireMessage {
  const w: WireMessage = { role: m.role, content: m.content, name: m.name ?? '' };
  if (m.tool_call_id) w.tool_call_id = m.tool_call_id;
  if (m.tool_calls) w.tool_calls = m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
  return w;
}

function fromWireMessage(m: WireMessage): ChatMessage {
  return {
    role: m.role as ChatMessage['role'],
    content: m.content,
    ...(m.name ? { name: m.name } : {}),
    ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.tool_calls && m.tool_calls.length > 0 ? { tool_calls: m.tool_calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) } : {}),
  };
}

export function toWireTask(t: Task): WireTask {
  const w: WireTask = { id: t.id, messages: t.messages.map(toWireMessage), model: t.model ?? '', max_tokens: t.maxTokens ?? 0, role: t.role ?? '' };
  if (t.temperature !== undefined) w.temperature = t.temperature;
  if (t.responseSchema) w.response_schema = { name: t.responseSchema.name, schema_json: JSON.stringify(t.responseSchema.schema) };
  if (t.spend) {
    const s: WireSpend = { job_id: t.spend.jobId, tenant: t.spend.tenant ?? '' };
    if (t.spend.jobBudgetUsd !== undefined) s.job_budget_usd = t.spend.jobBudgetUsd;
    if (t.spend.tenantDailyBudgetUsd !== undefined) s.tenant_daily_budget_usd = t.spend.tenantDailyBudgetUsd;
    w.spend = s;
  }
  return w;
}

/** Throws when a response schema's JSON does not parse: the caller answers INVALID_ARGUMENT / bad_request. */
export function fromWireTask(w: WireTask): Task {
  return {
    id: w.id,
    messages: (w.messages ?? []).map(fromWireMessage),
    ...(w.model ? { model: w.model } : {}),
    ...(w.max_tokens ? { maxTokens: w.max_tokens } : {}),
    ...(w.role ? { role: w.role } : {}),
    ...(w.temperature !== undefined && w.temperature !== null ? { temperature: w.temperature } : {}),
    ...(w.response_schema && w.response_schema.name ? { responseSchema: { name: w.response_schema.name, schema: parseSchema(w.response_schema) } } : {}),
    ...(w.spend ? { spend: parseSpend(w.spend) } : {}),
  };
}

/** Budget ids become ledger keys: a caller cannot reach another budget's key through them. */
const BUDGET_ID = /^[A-Za-z0-9_-]{1,128}$/;

function parseSpend(s: WireSpend): SpendScope {
  if (!BUDGET_ID.test(s.job_id ?? '')) throw new Error('spend.job_id must be 1-128 letters, digits, - or _');
  if (s.tenant && !BUDGET_ID.test(s.tenant)) throw new Error('spend.tenant must be 1-128 letters, digits, - or _');
  const usd = (v: number | null | undefined, field: string) => {
    if (v === undefined || v === null) return undefined;
    if (!Number.isFinite(v) || v <= 0) throw new Error(`spend.${field} must be a number of USD greater than 0`);
    return v;
  };
  const job = usd(s.job_budget_usd, 'job_budget_usd');
  const daily = usd(s.tenant_daily_budget_usd, 'tenant_daily_budget_usd');
  return { jobId: s.job_id, ...(job !== undefined ? { jobBudgetUsd: job } : {}), ...(s.tenant ? { tenant: s.tenant } : {}), ...(daily !== undefined ? { tenantDailyBudgetUsd: daily } : {}) };
}

function parseSchema(s: { name: string; schema_json: string }): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(s.schema_json);
  } catch (e) {
    throw new Error(`response_schema '${s.name}': schema_json is not JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`response_schema '${s.name}': schema_json must be a JSON object`);
  return parsed as Record<string, unknown>;
}

export function toWireResult(r: TaskResult): WireResult {
  return {
    id: r.id,
    ok: r.ok,
    model: r.model ?? '',
    content: r.content ?? '',
    usage: r.usage ? { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.totalTokens, cached_prompt_tokens: r.usage.cachedPromptTokens ?? 0 } : null,
    cost_usd: r.costUsd,
    attempts: r.attempts,
    latency_ms: Math.round(r.latencyMs),
    agent_id: r.agentId ?? '',
    error: r.error ? { code: r.error.code, message: r.error.message } : null,
    tool_calls: (r.toolCalls ?? []).map((c) => ({ name: c.name, ok: c.ok, latency_ms: Math.round(c.latencyMs) })),
  };
}

export function fromWireResult(w: WireResult): TaskResult {
  return {
    id: w.id,
    ok: w.ok,
    ...(w.model ? { model: w.model } : {}),
    ...(w.ok ? { content: w.content ?? '' } : {}),
    ...(w.usage
      ? { usage: { promptTokens: w.usage.prompt_tokens, completionTokens: w.usage.completion_tokens, totalTokens: w.usage.total_tokens, ...(w.usage.cached_prompt_tokens ? { cachedPromptTokens: w.usage.cached_prompt_tokens } : {}) } }
      : {}),
    costUsd: w.cost_usd ?? 0,
    attempts: w.attempts ?? 0,
    latencyMs: w.latency_ms ?? 0,
    ...(w.agent_id ? { agentId: w.agent_id } : {}),
    ...(w.error && w.error.code ? { error: { code: w.error.code as NonNullable<TaskResult['error']>['code'], message: w.error.message } } : {}),
    ...(w.tool_calls && w.tool_calls.length > 0 ? { toolCalls: w.tool_calls.map((c) => ({ name: c.name, ok: c.ok, latencyMs: c.latency_ms })) } : {}),
  };
}
