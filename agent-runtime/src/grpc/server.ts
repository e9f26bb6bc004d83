import { setMaxListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { AdmittedGroup } from '../server/admission';
import { AgentCore } from '../server/core';
import type { AgentTracer, TraceCarrier } from '../telemetry';
import { Task, TaskResult } from '../types';
import { FlushScheduler } from './flush';
import { AgentTls } from './mtls';
import { agentService, ExecuteRequest, ExecuteResponse, ResultBatch, SERVER_OPTIONS, TaskBatch, toWireResult, WireResult } from './service';

export interface AgentGrpcServer {
  readonly server: grpc.Server;
  /** Binds `0.0.0.0:port` (0: any free port) and resolves with the port. */
  bind(port: number): Promise<number>;
  /** Reports NOT_SERVING on grpc.health.v1 (the drain has begun). */
  notServing(): void;
  /** Ends each live Session (flush its results, then close it): once the drain has finished or handed back the work. */
  endSessions(): void;
  /** Closes the server, forcing it after a second. */
  close(): Promise<void>;
}

/**
 * The callee side of agent-to-agent calls: AgentService (unary Execute and
 * the Session stream, see proto/agent.proto) and grpc.health.v1; over mTLS
 * when `tls` is given (config `tls`).
 */
export function createGrpcServer(core: AgentCore, tls?: AgentTls): AgentGrpcServer {
  const { config, env, logger, admission, lifecycle, run, tracer } = core;
  // with mTLS, every AgentService call passes the per-edge rule first (grpc/mtls.ts)
  const server = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': config.limits.maxRequestBytes, interceptors: tls ? [tls.authorize] : [] });
  const health = new HealthImplementation({ '': 'SERVING', 'agents.v1.AgentService': 'SERVING' });
  const sessions = new Map<grpc.ServerDuplexStream<TaskBatch, ResultBatch>, () => void>();

  server.addService(agentService().service, {
    Execute: (call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      if (lifecycle.draining) return void cb({ code: grpc.status.UNAVAILABLE, details: `agent ${env.agentId} is draining` });
      const req = call.request;
      const callDeadline = call.getDeadline();
      const a = admission.admit(req.tasks ?? [], { jobId: req.job_id, deadlineAt: Number(req.deadline_unix_ms) || Infinity }, callDeadline instanceof Date ? callDeadline.getTime() : Infinity, lifecycle.draining);
      const missing = a.refused.find((r) => r.result.error!.code === 'bad_request');
      if (missing) {
        admission.release(a.accepted);
        return void cb({ code: grpc.status.INVALID_ARGUMENT, details: missing.result.error!.message });
      }
      // a task without its own trace context is in the call's (metadata `traceparent`), when the caller sent one
      const callTrace = tracer ? metadataTrace(call.metadata) : undefined;
      // the caller cancelling the call aborts its tasks, upstream calls included
      const work = cancellable(lifecycle.handBack.signal);
      call.on('cancelled', () => work.controller.abort(new Error('the caller cancelled the call')));
      void lifecycle.track(
        Promise.all(a.groups.map((g) => run(g.jobId, tracer ? traced(tracer, g, callTrace) : g.tasks, g.deadlineAt, req.hop, undefined, work.controller.signal)))
          .then((done) => cb(null, { results: [...done.flat(), ...a.refused.map((r) => r.result)].map(toWireResult) }))
          .catch((e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }))
          .finally(() => {
            work.dispose();
            admission.release(a.accepted);
          }),
      );
    },
    Session: (call: grpc.ServerDuplexStream<TaskBatch, ResultBatch>) => {
      // Results that finish together go back in one message (when: grpc/flush.ts).
      let out: WireResult[] = [];
      const flush = () => {
        const batch = out;
        out = [];
        if (batch.length > 0 && !call.cancelled && !call.destroyed && call.writable) call.write({ results: batch });
      };
      const flusher = new FlushScheduler(flush);
      // tasks of this stream admitted and not answered yet: while there are, an answer waits for the
      // turn's end, when others finishing in the same turn go back with it
      let unanswered = 0;
      const send = (r: TaskResult, seq: number) => {
        out.push({ ...toWireResult(r), seq });
        flusher.request(unanswered > 0);
      };
      let running = 0;
      let callerDone = false;
      const end = () => {
        flush();
        sessions.delete(call);
        if (!call.cancelled && call.writable) call.end();
      };
      sessions.set(call, end);
      const maybeEnd = () => {
        if (callerDone && running === 0) end();
      };
      // the work of this stream by job, so the caller can cancel a job's tasks (TaskBatch.cancel_job_ids):
      // one controller per job while any of its tasks runs here (a fan-out sends a job's tasks one or a few
      // per batch, and a controller linked to the hand-back per batch showed in profiles); a cancelled job's
      // controller stays aborted, and a later batch of that job gets a fresh one, as each batch did before
      const byJob = new Map<string, JobWork>();
      call.on('data', (batch: TaskBatch) => {
        for (const id of batch.cancel_job_ids ?? []) byJob.get(id)?.controller.abort(new Error(`the caller cancelled job ${id}`));
        const a = admission.admit(batch.tasks ?? [], { jobId: '', deadlineAt: Infinity }, Infinity, lifecycle.draining);
        for (const r of a.refused) send(r.result, r.seq);
        if (a.accepted === 0) return;
        running += a.accepted;
        unanswered += a.accepted;
        // each task's slot frees as its result goes back, not when the whole batch is done:
        // the caller counts per task and sends the next one at once (admission)
        let released = 0;
        const answer = (r: TaskResult, seq: number) => {
          admission.release(1);
          released += 1;
          unanswered -= 1;
          send(r, seq);
        };
        const runGroup = (g: AdmittedGroup) => {
          let work = byJob.get(g.jobId);
          if (!work || work.controller.signal.aborted) byJob.set(g.jobId, (work = { ...cancellable(lifecycle.handBack.signal), groups: 0 }));
          const mine = work;
          mine.groups += 1;
          return run(g.jobId, tracer ? traced(tracer, g) : g.tasks, g.deadlineAt, batch.hop, (r, i) => answer(r, g.seqs[i]), mine.controller.signal).finally(() => {
            mine.groups -= 1;
            if (mine.groups > 0) return;
            mine.dispose();
            if (byJob.get(g.jobId) === mine) byJob.delete(g.jobId);
          });
        };
        void lifecycle.track(
          Promise.all(a.groups.map(runGroup))
            .catch((e: Error) => logger.error({ err: e.message }, 'session batch failed unexpectedly'))
            .finally(() => {
              admission.release(a.accepted - released);
              unanswered -= a.accepted - released;
              running -= a.accepted;
              maybeEnd();
            }),
        );
      });
      // The caller half-closed (it has nothing more to send) or went away.
      call.on('end', () => {
        callerDone = true;
        maybeEnd();
      });
      call.on('cancelled', () => {
        callerDone = true;
        sessions.delete(call);
        // the caller is gone: nobody will read these answers, so their upstream calls stop
        for (const work of byJob.values()) work.controller.abort(new Error('the caller went away'));
      });
      call.on('error', () => sessions.delete(call));
    },
  });
  health.addToServer(server);

  return {
    server,
    bind: (port) => new Promise<number>((resolve, reject) => server.bindAsync(`0.0.0.0:${port}`, tls?.serverCredentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)))),
    notServing: () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus('agents.v1.AgentService', 'NOT_SERVING');
    },
    endSessions: () => {
      for (const end of [...sessions.values()]) end();
    },
    close: () =>
      new Promise<void>((r) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          r();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          r();
        });
      }),
  };
}

/**
 * With tracing on: each admitted task carries the context of the caller's
 * span for it (its `traceparent`, else `fallback`, the call's), so the work
 * it causes here is traced under that span.
 */
function traced(tracer: AgentTracer, g: AdmittedGroup, fallback?: TraceCarrier): Task[] {
  return g.tasks.map((t, i) => {
    const w = g.wire[i];
    const carrier = w.traceparent ? { traceparent: w.traceparent, tracestate: w.tracestate } : fallback;
    return carrier ? { ...t, trace: tracer.extract(carrier) } : t;
  });
}

/** The W3C trace context in a call's metadata (Execute), if any. */
function metadataTrace(md: grpc.Metadata): TraceCarrier | undefined {
  const traceparent = md.get('traceparent')[0];
  if (typeof traceparent !== 'string' || traceparent === '') return undefined;
  const tracestate = md.get('tracestate')[0];
  return { traceparent, ...(typeof tracestate === 'string' && tracestate !== '' ? { tracestate } : {}) };
}

/** One job's work on one Session stream: its controller and how many of its groups still run. */
interface JobWork {
  readonly controller: AbortController;
  readonly dispose: () => void;
  groups: number;
}

/**
 * A controller for work a caller may cancel, also aborted when the agent
 * hands its work back (`handBack`); `dispose` when the work is done.
 */
function cancellable(handBack: AbortSignal): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one listener per task it covers
  const onHandBack = () => controller.abort(handBack.reason);
  if (handBack.aborted) onHandBack();
  else handBack.addEventListener('abort', onHandBack, { once: true });
  return { controller, dispose: () => handBack.removeEventListener('abort', onHandBack) };
}
