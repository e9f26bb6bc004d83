import * as grpc from '@grpc/grpc-js';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { fromWireResult, toWireTask, WireResult, WireTask } from '../grpc/service';
import type { AgentTracer, TraceCarrier } from '../telemetry';
import { Task, TaskResult } from '../types';
import { AdmissionExit } from './admission';
import { CalleeQueue } from './callee-queue';
import { Endpoint, PeerPool } from './peers';
import { runBounded } from './run-bounded';
import { PeerSession, taskBytes, taskBytesBound, traceLength } from './session';

export interface DispatcherOptions {
  readonly pool: PeerPool;
  readonly fanOut: number;
  readonly metrics: RuntimeMetrics;
  readonly logger: Logger;
  readonly agentId: string;
  /** This agent's own role: a task naming it is for any callee. */
  readonly role?: string;
  /** Time kept back at each hop for the answer's way home. @default 50 */
  readonly returnMarginMs?: number;
  /**
   * The largest message a callee accepts (the cluster's limits.maxRequestBytes,
   * the same for every role): a task larger than this is refused here as
   * bad_request, and batches are cut below it. @default 4 MiB
   */
  readonly maxMessageBytes?: number;
  /** Spans for every trip of a task to a callee (`invoke_agent {role}`); absent: tracing is off. */
  readonly tracer?: AgentTracer;
}

/** Results a callee hands back so another agent can take the task. */
const HANDED_BACK = new Set(['cancelled', 'overloaded', 'unavailable']);

/**
 * Failures of the upstream that another pod may not see: its circuits, its
 * connections and its retry budget are its own. Each other pod gets one
 * chance at such a task; when every pod has failed it, the last failure is
 * the task's result (no endless loop against an upstream that is down).
 */
const UPSTREAM_TRANSIENT = new Set(['upstream_error', 'timeout', 'rate_limited', 'circuit_open']);

/**
 * Sends tasks to callee pods, at most `fanOut` per job at once, and gets
 * exactly one result per task back: a failed call or a handed-back task goes
 * to another pod until the deadline, and each task is answered once.
 */
export class Dispatcher {
  private readonly margin: number;
  private readonly maxMessageBytes: number;
  /** This agent's Session with each callee pod, by address. */
  private readonly sessions = new Map<string, PeerSession>();
  /** Where tasks wait, in arrival order, when every eligible pod is full. */
  readonly queue: CalleeQueue;
  /** The eligible callee roles and their queue key, by (target role, model): the peers' roles and models are fixed by the config. */
  private readonly routes = new Map<string, { readonly eligible: ReadonlySet<string>; readonly key: string }>();

  constructor(private readonly opts: DispatcherOptions) {
    this.margin = opts.returnMarginMs ?? 50;
    this.maxMessageBytes = opts.maxMessageBytes ?? 4 * 1024 * 1024;
    this.queue = new CalleeQueue(opts.pool, this.margin, (key) => opts.metrics.admissionQueue('callees', key));
  }

  /** Dispatches a job's tasks, `fanOut` at once; `onResult` sees each result as it is final. */
  runJob(jobId: string, tasks: readonly Task[], deadlineAt: number, hop: number, signal?: AbortSignal, onResult?: (r: TaskResult, index: number) => void): Promise<TaskResult[]> {
    return runBounded(tasks, this.opts.fanOut, (t) => this.dispatch(jobId, t, deadlineAt, hop, signal), onResult);
  }

  async dispatch(jobId: string, task: Task, deadlineAt: number, hop: number, signal?: AbortSignal): Promise<TaskResult> {
    const started = Date.now();
    const { pool, metrics } = this.opts;
    const tried = new Set<string>();
    // pods that answered with a transient upstream failure, and the last such answer
    const failedUpstream = new Set<string>();
    let lastUpstreamFailure: TaskResult | undefined;
    let attempts = 0;
    let upstreamAttempts = 0;
    let last = 'no callee could be reached';
    const fail = (code: NonNullable<TaskResult['error']>['code'], message: string): TaskResult => ({
      id: task.id,
      ok: false,
      costUsd: 0,
      attempts,
      latencyMs: Date.now() - started,
      agentId: this.opts.agentId,
      error: { code, message },
    });

    const routeKey = `${task.role ?? ''}\u0000${task.model ?? ''}`;
    let route = this.routes.get(routeKey);
    if (!route) {
      // A task names a role: it goes to the callees that are that role or have
      // it below them (peers[].roles), and each hop does the same on the way down.
      // A supervisor given a task for itself passes it to any of its callees.
      let target = task.role;
      let via = target ? pool.rolesReaching(target) : undefined;
      if (via && via.length === 0 && target === this.opts.role) target = via = undefined;
      if (via && via.length === 0) {
        return fail('bad_request', `role '${target}' is not a callee of this agent nor below one (reachable: ${pool.reachableRoles().join(', ') || 'none'})`);
      }
      const accepting = pool.rolesAccepting(task.model);
      const roles = new Set(via ? accepting.filter((r) => via.includes(r)) : accepting);
      if (roles.size === 0) {
        return fail('bad_request', `no callee accepts model '${task.model}'${target ? ` on the way to role '${target}'` : ''}; callees and their models are listed in this agent's config (peers[].models)`);
      }
      this.routes.set(routeKey, (route = { eligible: roles, key: [...roles].sort().join(',') }));
    }
    const { eligible, key } = route;
    // what every trip of this task sends (a trip adds its trace context): built once
    const wireTask: WireTask = toWireTask(task);
    wireTask.deadline_unix_ms = deadlineAt - this.margin;
    wireTask.job_id = jobId;
    let bytes = taskBytesBound(wireTask);
    if (bytes > this.maxMessageBytes - 1024 && (bytes = taskBytes(wireTask)) > this.maxMessageBytes - 1024) {
      return fail('bad_request', `task is about ${bytes} bytes, more than a callee accepts (${this.maxMessageBytes} bytes, limits.maxRequestBytes); split its messages or raise maxRequestBytes`);
    }
    // back after a pod refused it: it keeps its turn at the head of the queue
    let front = false;
    for (;;) {
      const left = deadlineAt - Date.now();
      if (signal?.aborted) return fail('cancelled', `handed back: ${abortReason(signal)} (${last})`);
      if (left <= this.margin) return fail('deadline_exceeded', `deadline passed before a callee answered (last: ${last})`);
      if (lastUpstreamFailure && pool.allIn(eligible, failedUpstream)) {
        // every pod has had its chance against the upstream: report its failure
        return { ...lastUpstreamFailure, attempts: upstreamAttempts, latencyMs: Date.now() - started };
      }
      // every pod was tried this round: they all count again (the ones that refused are held a moment)
      if (tried.size > 0 && pool.allIn(eligible, failedUpstream.size === 0 ? tried : new Set([...tried, ...failedUpstream]))) tried.clear();
      let ep: Endpoint;
      try {
        ep = await this.queue.acquire({
          key,
          eligible,
          exclude: failedUpstream.size === 0 ? tried : new Set([...tried, ...failedUpstream]),
          // while it waits, the pods it tried count again (they were held after refusing)
          waitExclude: failedUpstream,
          deadlineAt,
          signal,
          front,
        });
      } catch (e) {
        if (!(e instanceof AdmissionExit)) throw e;
        if (e.reason === 'shed') return { ...fail('overloaded', `shed: ${e.message}; retry in about ${e.retryAfterMs} ms`), retryAfterMs: e.retryAfterMs };
        if (e.reason === 'deadline') return fail('deadline_exceeded', `${e.message} (last: ${last})`);
        return fail('cancelled', `handed back: ${e.message}`);
      }
      attempts += 1;
      let wire: WireResult | undefined;
      const sent = Date.now();
      const tracer = this.opts.tracer;
      const span = tracer?.startInvoke(task.trace, ep.role, ep.address, task.id, jobId);
      try {
        wire = await this.call(ep, wireTask, hop + 1, bytes, span && tracer!.carrierOf(span), signal);
        if (span) tracer!.endTask(span, !wire ? 'no_answer' : wire.ok ? undefined : wire.error?.code || 'internal', wire?.error?.message);
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (span) tracer!.endTask(span, grpc.status[err.code] ?? 'error', err.details ?? err.message);
        last = `${ep.role} ${ep.address}: ${grpc.status[err.code] ?? 'error'} ${err.details ?? err.message}`;
        metrics.dispatches.inc({ peer: ep.role, outcome: grpc.status[err.code] ?? 'error' });
        if (err.code === grpc.status.DEADLINE_EXCEEDED) {
          this.queue.release(ep, key);
          continue; // the loop reports deadline_exceeded
        }
        if (err.code === grpc.status.PERMISSION_DENIED) {
          // mTLS: the callee's role does not admit this one (a config that disagrees with the
          // topology); its other pods would answer the same, so trying them only adds load
          this.queue.release(ep, key);
          return fail('unavailable', `refused by the callee: ${last}`);
        }
        pool.markUnhealthy(ep.address);
        // held before its slot is given back, so no waiter is sent straight to it
        this.queue.hold(ep);
        this.queue.release(ep, key);
        tried.add(ep.address);
        front = true;
        metrics.redispatches.inc({ reason: grpc.status[err.code] ?? 'error' });
        this.opts.logger.debug({ task: task.id, peer: ep.address, code: err.code }, 'dispatch failed; re-dispatching');
        continue;
      }
      if (!wire) {
        this.queue.hold(ep);
        this.queue.release(ep, key);
        last = `${ep.address} answered without this task`;
        tried.add(ep.address);
        front = true;
        continue;
      }
      const r = fromWireResult(wire);
      if (signal?.aborted && !r.ok && r.error?.code === 'cancelled') {
        // the job was cancelled while the task was out and the callee aborted it: its answer, with what it spent
        this.queue.release(ep, key);
        metrics.dispatches.inc({ peer: ep.role, outcome: 'cancelled' });
        return { ...r, attempts: upstreamAttempts + r.attempts, latencyMs: Date.now() - started };
      }
      if (!r.ok && r.error && HANDED_BACK.has(r.error.code)) {
        // it is full (or going): no new task to it until it answers one of ours or a moment passes;
        // held before its slot is given back, so no waiter is sent straight to it
        this.queue.hold(ep);
        this.queue.release(ep, key);
        last = `${ep.address} handed it back: ${r.error.message}`;
        tried.add(ep.address);
        if (r.error.code === 'unavailable') pool.markUnhealthy(ep.address); // draining: send it nothing new for a while
        front = true;
        metrics.dispatches.inc({ peer: ep.role, outcome: r.error.code });
        metrics.redispatches.inc({ reason: r.error.code });
        continue;
      }
      // answered: the trip's time feeds the set's service-time estimate
      this.queue.release(ep, key, Date.now() - sent);
      upstreamAttempts += r.attempts;
      if (!r.ok && r.error && UPSTREAM_TRANSIENT.has(r.error.code)) {
        last = `${ep.address}: ${r.error.code}: ${r.error.message}`;
        failedUpstream.add(ep.address);
        lastUpstreamFailure = r;
        front = true;
        metrics.dispatches.inc({ peer: ep.role, outcome: r.error.code });
        metrics.redispatches.inc({ reason: r.error.code });
        continue;
      }
      metrics.dispatches.inc({ peer: ep.role, outcome: 'ok' });
      return { ...r, attempts: upstreamAttempts };
    }
  }

  /** Waiting tasks leave the queue at once (handed back as cancelled); the agent is draining. */
  drain(): void {
    this.queue.drain(`agent ${this.opts.agentId} is draining`);
  }

  /**
   * One task's trip to one pod, on this agent's Session with it (opened on
   * first use, reopened after it breaks). Tasks sent to the same pod together
   * (a fan-out starts `fanOut` of them at once; results freeing slots arrive
   * together) go in one batch (when it is written: grpc/flush.ts). Resolves with the
   * task's result, or undefined when the pod ended the session without it;
   * rejects when the session failed or the pod did not answer in time. When
   * `signal` (the job's) aborts while the task is out, the pod is told to
   * abort it, and answers it `cancelled`.
   */
  private call(ep: Endpoint, task: WireTask, hop: number, bytes: number, trace?: TraceCarrier, signal?: AbortSignal): Promise<WireResult | undefined> {
    let s = this.sessions.get(ep.address);
    if (!s || s.closed) {
      s = new PeerSession(ep.client, ep.address, this.maxMessageBytes - 1024, (closed) => {
        if (this.sessions.get(ep.address) === closed) this.sessions.delete(ep.address);
      });
      this.sessions.set(ep.address, s);
    }
    // the pod answers by the deadline (task.deadline_unix_ms); waiting on may take only the margin of the way home
    const waitUntil = Number(task.deadline_unix_ms) + this.margin / 2;
    if (!trace) return s.send(task, hop, waitUntil, bytes, signal);
    return s.send({ ...task, ...trace }, hop, waitUntil, bytes + traceLength(trace), signal);
  }

  /** Ends every session (the agent is stopping); tasks still waiting resolve undefined. */
  close(): void {
    for (const s of this.sessions.values()) s.end();
    this.sessions.clear();
  }
}

function abortReason(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'cancelled';
}
