import * as grpc from '@grpc/grpc-js';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { fromWireResult, toWireTask, WireResult, WireTask } from '../grpc/service';
import { Task, TaskResult } from '../types';
import { Endpoint, PeerPool } from './peers';
import { runBounded } from './run-bounded';

export interface DispatcherOptions {
  readonly pool: PeerPool;
  readonly fanOut: number;
  readonly metrics: RuntimeMetrics;
  readonly logger: Logger;
  readonly agentId: string;
  /** Time kept back at each hop for the answer's way home. @default 50 */
  readonly returnMarginMs?: number;
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
interface PendingBatch {
  readonly ep: Endpoint;
  readonly hop: number;
  readonly tasks: WireTask[];
  readonly waiters: Map<string, { resolve(r: WireResult | undefined): void; reject(e: grpc.ServiceError): void }>;
  deadlineAt: number;
}

export class Dispatcher {
  private readonly margin: number;
  /** Tasks waiting for this turn's call, by pod and hop. */
  private readonly pending = new Map<string, PendingBatch>();

  constructor(private readonly opts: DispatcherOptions) {
    this.margin = opts.returnMarginMs ?? 50;
  }

  /** Dispatches a job's tasks, `fanOut` at once; `onResult` sees each result as it is final. */
  runJob(jobId: string, tasks: readonly Task[], deadlineAt: number, hop: number, signal?: AbortSignal, onResult?: (r: TaskResult) => void): Promise<TaskResult[]> {
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

    if (task.role && !pool.roles().includes(task.role)) {
      return fail('bad_request', `role '${task.role}' is not a callee of this agent (callees: ${pool.roles().join(', ') || 'none'})`);
    }
    const accepting = pool.rolesAccepting(task.model);
    const eligible = new Set(task.role ? accepting.filter((r) => r === task.role) : accepting);
    if (eligible.size === 0) {
      return fail('bad_request', `no callee accepts model '${task.model}'${task.role ? ` on role '${task.role}'` : ''}; callees and their models are listed in this agent's config (peers[].models)`);
    }
    for (;;) {
      const left = deadlineAt - Date.now();
      if (signal?.aborted) return fail('cancelled', `handed back: agent shutting down (${last})`);
      if (left <= this.margin) return fail('deadline_exceeded', `deadline passed before a callee answered (last: ${last})`);
      const ep = pool.pick(eligible, failedUpstream.size === 0 ? tried : new Set([...tried, ...failedUpstream]));
      if (!ep) {
        if (lastUpstreamFailure && pool.allIn(eligible, failedUpstream)) {
          // every pod has had its chance against the upstream: report its failure
          return { ...lastUpstreamFailure, attempts: upstreamAttempts, latencyMs: Date.now() - started };
        }
        // Every pod was tried or is full: wait briefly, then try them all again.
        await sleep(Math.min(50, left - this.margin));
        if (tried.size > 0) tried.clear();
        continue;
      }
      ep.inFlight += 1;
      attempts += 1;
      let wire: WireResult | undefined;
      try {
        wire = await this.call(ep, jobId, task, deadlineAt - this.margin, hop + 1);
      } catch (e) {
        const err = e as grpc.ServiceError;
        last = `${ep.role} ${ep.address}: ${grpc.status[err.code] ?? 'error'} ${err.details ?? err.message}`;
        metrics.dispatches.inc({ peer: ep.role, outcome: grpc.status[err.code] ?? 'error' });
        if (err.code === grpc.status.RESOURCE_EXHAUSTED && /message larger/i.test(err.details ?? '')) {
          return fail('bad_request', `task is larger than the callee accepts: ${err.details}`);
        }
        if (err.code === grpc.status.DEADLINE_EXCEEDED) continue; // the loop reports deadline_exceeded
        pool.markUnhealthy(ep.address);
        tried.add(ep.address);
        metrics.redispatches.inc({ reason: grpc.status[err.code] ?? 'error' });
        this.opts.logger.debug({ task: task.id, peer: ep.address, code: err.code }, 'dispatch failed; re-dispatching');
        continue;
      } finally {
        ep.inFlight -= 1;
      }
      if (!wire) {
        last = `${ep.address} answered without this task`;
        tried.add(ep.address);
        continue;
      }
      const r = fromWireResult(wire);
      if (!r.ok && r.error && HANDED_BACK.has(r.error.code)) {
        last = `${ep.address} handed it back: ${r.error.message}`;
        tried.add(ep.address);
        metrics.dispatches.inc({ peer: ep.role, outcome: r.error.code });
        metrics.redispatches.inc({ reason: r.error.code });
        continue;
      }
      upstreamAttempts += r.attempts;
      if (!r.ok && r.error && UPSTREAM_TRANSIENT.has(r.error.code)) {
        last = `${ep.address}: ${r.error.code}: ${r.error.message}`;
        failedUpstream.add(ep.address);
        lastUpstreamFailure = r;
        metrics.dispatches.inc({ peer: ep.role, outcome: r.error.code });
        metrics.redispatches.inc({ reason: r.error.code });
        continue;
      }
      metrics.dispatches.inc({ peer: ep.role, outcome: 'ok' });
      return { ...r, attempts: upstreamAttempts };
    }
  }

  /**
   * One task's trip to one pod. Tasks sent to the same pod in the same turn
   * of the event loop (a fan-out starts `fanOut` of them at once; results
   * freeing slots arrive together) share one ExecuteStream call, each with
   * its own job and deadline; each task's result resolves its own promise as
   * it streams back. A failed call rejects every task still waiting on it,
   * and each is then re-dispatched on its own. Resolves undefined when the
   * call ended without this task's result.
   */
  private call(ep: Endpoint, jobId: string, task: Task, deadlineAt: number, hop: number): Promise<WireResult | undefined> {
    // Results name only the task id: a task whose id another job already has
    // in this turn's call to the pod goes into a call of its own.
    let key = `${ep.address}|${hop}`;
    let batch = this.pending.get(key);
    for (let n = 1; batch?.waiters.has(task.id); n++) {
      key = `${ep.address}|${hop}|${n}`;
      batch = this.pending.get(key);
    }
    if (!batch) {
      batch = { ep, hop, tasks: [], waiters: new Map(), deadlineAt: 0 };
      this.pending.set(key, batch);
      setImmediate(() => this.flush(key));
    }
    batch.tasks.push({ ...toWireTask(task), deadline_unix_ms: deadlineAt, job_id: jobId });
    batch.deadlineAt = Math.max(batch.deadlineAt, deadlineAt);
    const b = batch;
    return new Promise((resolve, reject) => b.waiters.set(task.id, { resolve, reject }));
  }

  private flush(key: string): void {
    const batch = this.pending.get(key)!;
    this.pending.delete(key);
    const { ep, waiters } = batch;
    const first = batch.tasks[0];
    const stream = ep.client.ExecuteStream(
      { job_id: first.job_id ?? '', tasks: batch.tasks, deadline_unix_ms: batch.deadlineAt, hop: batch.hop },
      new grpc.Metadata(),
      // the call may outlive its latest task's deadline only by the margin of the way home
      { deadline: new Date(batch.deadlineAt + this.margin / 2) },
    );
    stream.on('data', (r: WireResult) => {
      const w = waiters.get(r.id);
      if (!w) return; // not ours (a callee bug): ignored here, the task's own result still counts
      waiters.delete(r.id);
      w.resolve(r);
    });
    stream.on('error', (e: grpc.ServiceError) => {
      for (const w of waiters.values()) w.reject(e);
      waiters.clear();
    });
    stream.on('end', () => {
      for (const w of waiters.values()) w.resolve(undefined);
      waiters.clear();
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(1, ms)));
}
