// Loaded only when tracing is on (see ./index.ts): the OpenTelemetry SDK and
// the runtime's spans. No auto-instrumentation is registered; every span is
// made here, with its parent passed explicitly (a task carries its parent's
// context), so nothing depends on async context tracking.

import type { IncomingHttpHeaders } from 'node:http';
import { Attributes, Context, context, ContextManager, propagation, ROOT_CONTEXT, Span, SpanKind, SpanStatusCode, trace, Tracer } from '@opentelemetry/api';
import { NodeSDK, resources } from '@opentelemetry/sdk-node';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_NAMESPACE,
} from '@opentelemetry/semantic-conventions';
import type { TaskResult } from '../types';
import {
  GEN_AI_AGENT_ID,
  GEN_AI_AGENT_NAME,
  GEN_AI_OPERATION_NAME,
  GEN_AI_PROVIDER_NAME,
  GEN_AI_REQUEST_MAX_TOKENS,
  GEN_AI_REQUEST_MODEL,
  GEN_AI_REQUEST_TEMPERATURE,
  GEN_AI_RESPONSE_FINISH_REASONS,
  GEN_AI_RESPONSE_ID,
  GEN_AI_RESPONSE_MODEL,
  GEN_AI_USAGE_INPUT_TOKENS,
  GEN_AI_USAGE_OUTPUT_TOKENS,
  OPERATION_CHAT,
  OPERATION_INVOKE_AGENT,
  PROVIDER_OPENAI,
} from './semconv';

/** A span's place in a trace, carried by a task from the span that sent it to the spans it causes. */
export type TraceContext = Context;

/** W3C trace context as text: the `traceparent` (and `tracestate`) of an HTTP header or a wire task. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** Who this process is, for the resource every span carries. */
export interface TracerIdentity {
  /** service.name (OTEL_SERVICE_NAME overrides it). */
  readonly role: string;
  /** service.namespace. */
  readonly cluster: string;
  /** service.instance.id: the pod name. */
  readonly agentId: string;
  /** The upstream's base URL: server.address and server.port of `chat` spans. */
  readonly upstreamBaseUrl?: string;
}

// Attributes the conventions have no name for, under our own prefix.
export const ATTR_JOB_ID = 'agents.job.id';
export const ATTR_JOB_KIND = 'agents.job.kind';
export const ATTR_JOB_TASKS = 'agents.job.tasks';
export const ATTR_JOB_FAILED_TASKS = 'agents.job.failed_tasks';
export const ATTR_TASK_ID = 'agents.task.id';
export const ATTR_FALLBACK_FROM = 'agents.fallback.from';
export const ATTR_FALLBACK_TO = 'agents.fallback.to';

/** What a `chat` attempt ended with. */
export type ChatOutcome =
  | { readonly ok: true; readonly model: string; readonly id?: string; readonly finishReason?: string; readonly inputTokens: number; readonly outputTokens: number }
  | { readonly ok: false; readonly errorType: string; readonly message: string };

/**
 * A context manager that tracks nothing. Every span here gets its parent
 * passed explicitly, so no active context is needed, while the SDK's default
 * (AsyncLocalStorage) would start tracking every async step of the process
 * the first time anything runs inside `context.with` (the batch span
 * processor does, for each export). The API exports no no-op manager, hence
 * these few lines.
 */
class ExplicitContextManager implements ContextManager {
  active(): Context {
    return ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(_context: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return fn.call(thisArg, ...args);
  }
  bind<T>(_context: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

// One SDK per process, shared by every agent started in it (tests start several in one process).
let shared: { sdk: NodeSDK; users: number } | undefined;

/**
 * The runtime's spans: `job` at the entry, `invoke_agent {role}` (CLIENT) at
 * the caller of every hop, and `chat {model}` for every upstream attempt
 * (retries are spans of their own; a fallback is an event on the next
 * model's first attempt).
 */
export class AgentTracer {
  /** Starts the SDK from the OTEL_* environment (exporter, protocol, endpoint, sampler, batching). */
  static start(identity: TracerIdentity): AgentTracer {
    if (!shared) {
      const sdk = new NodeSDK({
        resource: resources.defaultResource().merge(
          resources.resourceFromAttributes({
            [ATTR_SERVICE_NAME]: identity.role,
            [ATTR_SERVICE_NAMESPACE]: identity.cluster,
            [ATTR_SERVICE_INSTANCE_ID]: identity.agentId,
          }),
        ),
        instrumentations: [],
        contextManager: new ExplicitContextManager(),
        // metrics stay with prom-client on /metrics, logs with pino on stdout
        metricReaders: [],
        logRecordProcessors: [],
      });
      sdk.start();
      shared = { sdk, users: 0 };
    }
    shared.users += 1;
    return new AgentTracer(trace.getTracer('agent-runtime'), identity);
  }

  private readonly upstream: Attributes;
  private closed = false;

  private constructor(
    private readonly tracer: Tracer,
    private readonly identity: TracerIdentity,
  ) {
    this.upstream = {};
    if (identity.upstreamBaseUrl) {
      const u = new URL(identity.upstreamBaseUrl);
      this.upstream = { [ATTR_SERVER_ADDRESS]: u.hostname, [ATTR_SERVER_PORT]: Number(u.port) || (u.protocol === 'https:' ? 443 : 80) };
    }
  }

  /** The context whose children `span` parents. */
  contextOf(span: Span): TraceContext {
    return trace.setSpan(ROOT_CONTEXT, span);
  }

  /** `span`'s W3C trace context as text, for a wire task or an HTTP request. */
  carrierOf(span: Span): TraceCarrier {
    const all: Record<string, string> = {};
    propagation.inject(this.contextOf(span), all);
    const out: TraceCarrier = {};
    if (all.traceparent) out.traceparent = all.traceparent;
    if (all.tracestate) out.tracestate = all.tracestate;
    return out;
  }

  /**
   * The job's span at the entry: a child of the client's trace when its
   * request carries a `traceparent` header, else the root of a new trace.
   */
  startJob(jobId: string, kind: 'tasks' | 'steps', tasks: number, headers?: IncomingHttpHeaders): Span {
    const parent = headers?.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: headers.traceparent, tracestate: headers.tracestate }) : ROOT_CONTEXT;
    return this.tracer.startSpan(
      'job',
      {
        kind: SpanKind.SERVER,
        attributes: { [ATTR_JOB_ID]: jobId, [ATTR_JOB_KIND]: kind, [ATTR_JOB_TASKS]: tasks, [GEN_AI_AGENT_NAME]: this.identity.role, [GEN_AI_AGENT_ID]: this.identity.agentId },
      },
      parent,
    );
  }

  /** Ends a job's span: failed tasks counted, error.type when none succeeded. */
  endJob(span: Span, results: readonly Pick<TaskResult, 'ok' | 'error'>[] | Error): void {
    if (results instanceof Error) {
      span.setAttribute(ATTR_ERROR_TYPE, 'internal');
      span.setStatus({ code: SpanStatusCode.ERROR, message: results.message });
    } else {
      const failed = results.filter((r) => !r.ok);
      span.setAttribute(ATTR_JOB_FAILED_TASKS, failed.length);
      if (failed.length > 0 && failed.length === results.length) {
        span.setAttribute(ATTR_ERROR_TYPE, failed[0].error?.code ?? 'internal');
        span.setStatus({ code: SpanStatusCode.ERROR, message: failed[0].error?.message });
      }
    }
    span.end();
  }

  /**
   * The context a callee's work on a received task belongs under: the
   * caller's `invoke_agent` span, from the task's `traceparent`. A hop is
   * one CLIENT span at the caller (the conventions' `invoke_agent` of a
   * remote agent); the callee's own spans are its children.
   */
  extract(carrier: TraceCarrier): TraceContext {
    return propagation.extract(ROOT_CONTEXT, carrier);
  }

  /**
   * The caller's span for one trip of a task to a callee pod:
   * `invoke_agent {callee role}`, CLIENT. A task handed back and sent again
   * makes one span per trip.
   */
  startInvoke(parent: TraceContext | undefined, calleeRole: string, address: string, taskId: string, jobId: string): Span {
    const attributes: Attributes = { [GEN_AI_OPERATION_NAME]: OPERATION_INVOKE_AGENT, [GEN_AI_AGENT_NAME]: calleeRole };
    const colon = address.lastIndexOf(':');
    if (colon > 0) {
      attributes[ATTR_SERVER_ADDRESS] = address.slice(0, colon);
      attributes[ATTR_SERVER_PORT] = Number(address.slice(colon + 1));
    } else {
      attributes[ATTR_SERVER_ADDRESS] = address;
    }
    attributes[ATTR_TASK_ID] = taskId;
    attributes[ATTR_JOB_ID] = jobId;
    return this.tracer.startSpan(`${OPERATION_INVOKE_AGENT} ${calleeRole}`, { kind: SpanKind.CLIENT, attributes }, parent ?? ROOT_CONTEXT);
  }

  /** Ends an `invoke_agent` span; `errorType` is the task's error code or the call's failure. */
  endTask(span: Span, errorType?: string, message?: string): void {
    if (errorType !== undefined) {
      span.setAttribute(ATTR_ERROR_TYPE, errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    span.end();
  }

  /**
   * One upstream attempt: `chat {model}`, CLIENT; `resend` counts the
   * attempts before it on this model (a retry is its own span). The first
   * attempt on a fallback model carries a `fallback` event.
   */
  startChat(parent: TraceContext | undefined, model: string, resend: number, request: { maxTokens?: number; temperature?: number }, fallback?: { from: string; to: string; errorType: string }): Span {
    const attributes: Attributes = {
      [GEN_AI_OPERATION_NAME]: OPERATION_CHAT,
      [GEN_AI_PROVIDER_NAME]: PROVIDER_OPENAI,
      [GEN_AI_REQUEST_MODEL]: model,
    };
    for (const key in this.upstream) attributes[key] = this.upstream[key];
    if (request.maxTokens !== undefined) attributes[GEN_AI_REQUEST_MAX_TOKENS] = request.maxTokens;
    if (request.temperature !== undefined) attributes[GEN_AI_REQUEST_TEMPERATURE] = request.temperature;
    if (resend > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = resend;
    const span = this.tracer.startSpan(`${OPERATION_CHAT} ${model}`, { kind: SpanKind.CLIENT, attributes }, parent ?? ROOT_CONTEXT);
    if (fallback) span.addEvent('fallback', { [ATTR_FALLBACK_FROM]: fallback.from, [ATTR_FALLBACK_TO]: fallback.to, [ATTR_ERROR_TYPE]: fallback.errorType });
    return span;
  }

  endChat(span: Span, outcome: ChatOutcome): void {
    // a span the sampler dropped records nothing: skip building what it would discard
    if (!span.isRecording()) {
      span.end();
      return;
    }
    if (outcome.ok) {
      span.setAttribute(GEN_AI_RESPONSE_MODEL, outcome.model);
      span.setAttribute(GEN_AI_USAGE_INPUT_TOKENS, outcome.inputTokens);
      span.setAttribute(GEN_AI_USAGE_OUTPUT_TOKENS, outcome.outputTokens);
      if (outcome.id) span.setAttribute(GEN_AI_RESPONSE_ID, outcome.id);
      if (outcome.finishReason) span.setAttribute(GEN_AI_RESPONSE_FINISH_REASONS, [outcome.finishReason]);
    } else {
      span.setAttribute(ATTR_ERROR_TYPE, outcome.errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.message });
    }
    span.end();
  }

  /** Exports what is buffered; the last user of the process's SDK shuts it down. */
  async shutdown(): Promise<void> {
    if (this.closed || !shared) return;
    this.closed = true;
    shared.users -= 1;
    if (shared.users > 0) return;
    const { sdk } = shared;
    shared = undefined;
    await sdk.shutdown();
    // the API's globals are freed, so a later start in this process registers afresh
    trace.disable();
    propagation.disable();
    context.disable();
  }
}
