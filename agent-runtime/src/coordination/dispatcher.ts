import * as grpc from '@grpc/grpc-js';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { fromWireResult, toWireTask, ExecuteResponse } from '../grpc/service';
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
export class Dispatcher {
  private readonly margin: number;

  constructor(private readonly opts: DispatcherOptions) {
    this.margin = opts.returnMarginMs ?? 50;
  }

  runJob(jobId: string, tasks: readonly Task[], deadlineAt: number, hop: number, signal?: AbortSignal): Promise<TaskResult[]> {
    return runBounded(tasks, this.opts.fanOut, (t) => this.dispatch(jobId, t, deadlineAt, hop, signal));
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
      const ep = pool.pick(eligible, new Set([...tried, ...failedUpstream]));
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
      let res: ExecuteResponse;
      try {
        res = await this.call(ep, jobId, task, deadlineAt - this.margin, hop + 1, signal);
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
      const wire = res.results.find((r) => r.id === task.id);
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

  private call(ep: Endpoint, jobId: string, task: Task, deadlineAt: number, hop: number, signal?: AbortSignal): Promise<ExecuteResponse> {
    return new Promise((resolve, reject) => {
      const call = ep.client.Execute(
        { job_id: jobId, tasks: [toWireTask(task)], deadline_unix_ms: deadlineAt, hop },
        new grpc.Metadata(),
        { deadline: new Date(deadlineAt + this.margin / 2) },
        (err, res) => (err ? reject(err) : resolve(res ?? { results: [] })),
      );
      // On shutdown the task is not cancelled at the callee: it keeps running
      // there and its result still comes back within our grace period.
      void call;
      void signal;
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(1, ms)));
}
