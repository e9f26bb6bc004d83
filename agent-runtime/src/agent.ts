import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { AgentConfig, callsUpstream, RuntimeEnv } from './config';
import { Dispatcher } from './coordination/dispatcher';
import { PeerPool } from './coordination/peers';
import { runBounded } from './coordination/run-bounded';
import { agentService, ExecuteRequest, ExecuteResponse, fromWireTask, ResultBatch, SERVER_OPTIONS, TaskBatch, toWireResult, WireResult, WireTask } from './grpc/service';
import { chainWindowFor, parseJob, RequestError, resultJson, workflowJson } from './http/jobs';
import { InferenceExecutor } from './inference/executor';
import { createLogger, Logger } from './logger';
import { RuntimeMetrics } from './metrics';
import type { McpToolbox } from './tools/mcp-toolbox';
import { Task, TaskResult } from './types';
import { UpstreamClient } from './upstream/client';
import { runWorkflow } from './workflow/engine';

export interface AgentHandle {
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly metrics: RuntimeMetrics;
  /** Stop taking work, finish or hand back in-flight work, close everything. */
  shutdown(): Promise<void>;
}

export interface StartAgentOptions {
  readonly logger?: Logger;
}

/**
 * Boots one agent: the upstream executor (roles that call models), the
 * dispatcher (roles that call peers), gRPC AgentService + grpc.health.v1,
 * and the HTTP API.
 */
export async function startAgent(config: AgentConfig, env: RuntimeEnv, opts: StartAgentOptions = {}): Promise<AgentHandle> {
  const logger = opts.logger ?? createLogger({ level: env.logLevel, agentId: env.agentId, role: env.role });
  const metrics = new RuntimeMetrics({ role: config.role });
  const client = callsUpstream(config.kind) ? new UpstreamClient({ baseUrl: env.upstreamBaseUrl!, apiKey: env.upstreamApiKey! }) : undefined;
  // MCP servers are connected in the background: one that is down never stops the pod from booting or serving.
  // The MCP SDK is loaded only by roles that list tool servers (it adds about a second to boot).
  const toolbox = client && config.tools ? new (loadToolbox())({ tools: config.tools, logger, metrics }) : undefined;
  toolbox?.warm();
  const executor = client ? new InferenceExecutor({ config, client, metrics, logger, agentId: env.agentId, tools: toolbox }) : undefined;
  const pool = config.peers.length > 0 ? new PeerPool(config.peers, env.peerEndpoints, logger) : undefined;
  const dispatcher = pool ? new Dispatcher({ pool, fanOut: config.fanOut.concurrency, metrics, logger, agentId: env.agentId, role: config.role, maxMessageBytes: config.limits.maxRequestBytes }) : undefined;
  await pool?.start();

  let draining = false;
  let activeTasks = 0;
  // Tasks the HTTP jobs on this pod keep in flight at once: a job's tasks go
  // out fanOut at a time (dispatcher) or maxInFlightTasks at a time (local),
  // so a 10,000-task job does not read as 10,000 tasks of load.
  let jobTasks = 0;
  const jobWidth = dispatcher ? config.fanOut.concurrency : config.concurrency.maxInFlightTasks;
  metrics.taskCapacity.set(config.concurrency.maxInFlightTasks);
  const observeLoad = () => metrics.tasksHeld.set(activeTasks + jobTasks);
  const inFlight = new Set<Promise<unknown>>();
  // Aborted when the grace period ends: whatever is still running is handed back.
  const handBack = new AbortController();
  setMaxListeners(0, handBack.signal); // one listener per task in flight
  /** Each HTTP job's controller while it runs: handed back with the rest when the grace period ends. */
  const jobs = new Set<AbortController>();
  handBack.signal.addEventListener('abort', () => {
    for (const j of jobs) j.abort(handBack.signal.reason);
  });
  const health = new HealthImplementation({ '': 'SERVING', 'agents.v1.AgentService': 'SERVING' });

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };

  /** Runs a job's tasks the way this role does. `hop` 0 = from a client. */
  const run = (jobId: string, tasks: Task[], deadlineAt: number, hop: number, onResult?: (r: TaskResult, index: number) => void, signal: AbortSignal = handBack.signal): Promise<TaskResult[]> => {
    const local = executor && (config.kind === 'worker' || hop > 0 || !dispatcher);
    if (local) return runBounded(tasks, config.concurrency.maxInFlightTasks, (t) => executor.execute(t, deadlineAt, signal), onResult);
    if (!dispatcher) {
      const results = tasks.map((t) => ({ id: t.id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, agentId: env.agentId, error: { code: 'unavailable' as const, message: `role '${config.role}' has no callees and calls no model` } }));
      results.forEach((r, i) => onResult?.(r, i));
      return Promise.resolve(results);
    }
    return dispatcher.runJob(jobId, tasks, deadlineAt, hop, signal, onResult);
  };

  const refusal = (t: Task, code: 'bad_request' | 'overloaded' | 'unavailable', message: string): TaskResult => ({
    id: t.id,
    ok: false,
    costUsd: 0,
    attempts: 0,
    latencyMs: 0,
    agentId: env.agentId,
    error: { code, message },
  });

  // ---- gRPC ----
  const grpcServer = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': config.limits.maxRequestBytes });
  /**
   * What both RPCs do with the tasks they receive: refuse while draining, fix
   * each task's deadline (its own, else `fallback.deadlineAt`, never past
   * `ceiling`), and admit what fits (the rest is handed back as `overloaded`
   * for another pod). Accepted tasks come grouped by job and deadline, the
   * unit `run` works in, each with its seq (Session) beside it.
   */
  const admit = (wire: readonly WireTask[], fallback: { jobId: string; deadlineAt: number }, ceiling: number) => {
    const room = draining ? 0 : Math.max(0, config.concurrency.maxInFlightTasks - activeTasks);
    const groups = new Map<string, { jobId: string; deadlineAt: number; tasks: Task[]; seqs: number[] }>();
    const refused: Array<{ result: TaskResult; seq: number }> = [];
    let accepted = 0;
    for (const w of wire) {
      let task: Task;
      let malformed: string | undefined;
      try {
        task = fromWireTask(w);
      } catch (e) {
        task = { id: w.id, messages: [] };
        malformed = (e as Error).message;
      }
      const seq = w.seq ?? 0;
      const deadlineAt = Math.min(w.deadline_unix_ms || fallback.deadlineAt, ceiling);
      if (malformed !== undefined) {
        refused.push({ result: refusal(task, 'bad_request', `task ${w.id}: ${malformed}`), seq });
      } else if (!Number.isFinite(deadlineAt)) {
        refused.push({ result: refusal(task, 'bad_request', `task ${w.id}: deadline_unix_ms is required`), seq });
      } else if (draining) {
        refused.push({ result: refusal(task, 'unavailable', `agent ${env.agentId} is draining`), seq });
      } else if (accepted >= room) {
        refused.push({ result: refusal(task, 'overloaded', `agent ${env.agentId} is at its limit of ${config.concurrency.maxInFlightTasks} tasks`), seq });
      } else {
        accepted += 1;
        const jobId = w.job_id || fallback.jobId;
        const key = `${jobId}|${deadlineAt}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { jobId, deadlineAt, tasks: [], seqs: [] }));
        g.tasks.push(task);
        g.seqs.push(seq);
      }
    }
    activeTasks += accepted;
    observeLoad();
    return { groups: [...groups.values()], refused, accepted };
  };

  /** How to end each live Session (flush its results, then close it), called once a drain has finished or handed back the work. */
  const sessions = new Map<grpc.ServerDuplexStream<TaskBatch, ResultBatch>, () => void>();

  grpcServer.addService(agentService().service, {
    Execute: (call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      if (draining) return void cb({ code: grpc.status.UNAVAILABLE, details: `agent ${env.agentId} is draining` });
      const req = call.request;
      const callDeadline = call.getDeadline();
      const a = admit(req.tasks ?? [], { jobId: req.job_id, deadlineAt: Number(req.deadline_unix_ms) || Infinity }, callDeadline instanceof Date ? callDeadline.getTime() : Infinity);
      const missing = a.refused.find((r) => r.result.error!.code === 'bad_request');
      if (missing) {
        activeTasks -= a.accepted;
        observeLoad();
        return void cb({ code: grpc.status.INVALID_ARGUMENT, details: missing.result.error!.message });
      }
      void track(
        Promise.all(a.groups.map((g) => run(g.jobId, g.tasks, g.deadlineAt, req.hop)))
          .then((done) => cb(null, { results: [...done.flat(), ...a.refused.map((r) => r.result)].map(toWireResult) }))
          .catch((e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }))
          .finally(() => {
            activeTasks -= a.accepted;
            observeLoad();
          }),
      );
    },
    Session: (call: grpc.ServerDuplexStream<TaskBatch, ResultBatch>) => {
      // Results that finish in the same turn go back in one message.
      let out: WireResult[] = [];
      const flush = () => {
        const batch = out;
        out = [];
        if (batch.length > 0 && !call.cancelled && !call.destroyed && call.writable) call.write({ results: batch });
      };
      const send = (r: TaskResult, seq: number) => {
        if (out.length === 0) setImmediate(flush);
        out.push({ ...toWireResult(r), seq });
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
      call.on('data', (batch: TaskBatch) => {
        const a = admit(batch.tasks ?? [], { jobId: '', deadlineAt: Infinity }, Infinity);
        for (const r of a.refused) send(r.result, r.seq);
        if (a.accepted === 0) return;
        running += a.accepted;
        // each task's slot frees as its result goes back, not when the whole batch is done:
        // the caller counts per task and sends the next one at once (admission)
        let released = 0;
        const answer = (r: TaskResult, seq: number) => {
          activeTasks -= 1;
          released += 1;
          observeLoad();
          send(r, seq);
        };
        void track(
          Promise.all(a.groups.map((g) => run(g.jobId, g.tasks, g.deadlineAt, batch.hop, (r, i) => answer(r, g.seqs[i]))))
            .catch((e: Error) => logger.error({ err: e.message }, 'session batch failed unexpectedly'))
            .finally(() => {
              activeTasks -= a.accepted - released;
              observeLoad();
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
      });
      call.on('error', () => sessions.delete(call));
    },
  });
  health.addToServer(grpcServer);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`0.0.0.0:${env.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  // ---- HTTP ----
  const ready = (): { ok: boolean; why?: string } => {
    if (draining) return { ok: false, why: 'draining' };
    if (pool && !pool.ready) return { ok: false, why: 'peers not resolved yet' };
    if (executor && executor.allCircuitsOpen()) return { ok: false, why: 'every model circuit is open' };
    return { ok: true };
  };
  metrics.reportReadiness(() => ready().ok);

  const httpServer = http.createServer((req, res) => {
    const t0 = process.hrtime.bigint();
    const send = (status: number, body: unknown, route: string, contentType = 'application/json', headers: Record<string, string> = {}) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
      metrics.httpRequests.observe({ route, status: String(status) }, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && url === '/healthz') return send(200, { status: 'ok', agent: env.agentId }, 'healthz');
    if (req.method === 'GET' && url === '/readyz') {
      const r = ready();
      return send(r.ok ? 200 : 503, r.ok ? { status: 'ready' } : { status: 'not ready', reason: r.why, circuits: executor?.circuitStates() }, 'readyz');
    }
    if (req.method === 'GET' && url === '/metrics') {
      void metrics.text().then((t) => send(200, t, 'metrics', metrics.contentType));
      return;
    }
    if (url !== '/v1/jobs') return send(404, { error: { message: `no route ${req.method} ${url}; try POST /v1/jobs` } }, 'other');
    if (req.method !== 'POST') return send(405, { error: { message: 'use POST /v1/jobs' } }, 'jobs');
    if (draining) return send(503, { error: { message: `agent ${env.agentId} is draining; retry on another pod` } }, 'jobs');

    const limit = config.limits.maxRequestBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      send(413, { error: { message: `body of ${declared} bytes exceeds the limit of ${limit} bytes` } }, 'jobs');
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        tooBig = true;
        chunks.length = 0;
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return send(413, { error: { message: `body exceeds the limit of ${limit} bytes` } }, 'jobs');
      let job;
      try {
        job = parseJob(Buffer.concat(chunks).toString('utf8'), config);
      } catch (e) {
        const status = e instanceof RequestError ? e.status : 400;
        metrics.jobs.inc({ outcome: 'rejected' });
        return send(status, { error: { message: (e as Error).message } }, 'jobs');
      }
      const jobId = randomUUID();
      const started = Date.now();
      // the job's signal: aborted when the client goes away before its answer (its waiting tasks
      // leave their queues) or when the grace period ends (one controller per job, aborted by
      // handBack through `jobs`: cheaper than AbortSignal.any, which showed in profiles)
      const job$ = new AbortController();
      setMaxListeners(0, job$.signal); // one listener per task waiting for capacity
      jobs.add(job$);
      res.once('close', () => {
        jobs.delete(job$);
        if (!res.writableFinished) job$.abort(new Error('the client closed the connection'));
      });
      // tasks this job holds in this pod (its fan-out width) count toward the load gauge until it ends
      const width = Math.min(job.kind === 'steps' ? job.workflow.steps.length : job.tasks.length, jobWidth);
      jobTasks += width;
      observeLoad();
      const release = () => {
        jobTasks -= width;
        observeLoad();
      };
      if (job.kind === 'steps') {
        // a workflow: each step is a one-task run, routed like any task
        const deadlineAt = job.deadlineAt;
        const steps = runWorkflow(job.workflow, {
          run: (t) => run(jobId, [t], deadlineAt, 0, undefined, job$.signal).then((r) => r[0]),
          concurrency: config.fanOut.concurrency,
          windowFor: chainWindowFor(config),
          agentId: env.agentId,
        });
        void track(
          steps.finally(release).then(
            (results) => {
              metrics.jobs.inc({ outcome: results.every((r) => r.ok) ? 'ok' : 'partial' });
              send(200, workflowJson(jobId, results, Date.now() - started), 'jobs');
            },
            (e: Error) => {
              logger.error({ err: e.message, jobId }, 'workflow failed unexpectedly');
              send(500, { error: { message: `internal error: ${e.message}` } }, 'jobs');
            },
          ),
        );
        return;
      }
      void track(
        run(jobId, job.tasks, job.deadlineAt, 0, undefined, job$.signal).finally(release).then(
          (results) => {
            const ok = results.filter((r) => r.ok).length;
            const total = results.reduce((s, r) => s + r.costUsd, 0);
            const shed = overloadAnswer(results);
            if (shed?.status === 503) {
              metrics.jobs.inc({ outcome: 'shed' });
              return send(503, { error: { code: 'overloaded', message: shed.message } }, 'jobs', undefined, shed.headers);
            }
            metrics.jobs.inc({ outcome: ok === results.length ? 'ok' : 'partial' });
            send(
              200,
              {
                job_id: jobId,
                results: results.map(resultJson),
                success_rate: results.length ? ok / results.length : 0,
                total_cost_usd: total,
                latency_ms: Date.now() - started,
              },
              'jobs',
              undefined,
              shed?.headers,
            );
          },
          (e: Error) => {
            logger.error({ err: e.message, jobId }, 'job failed unexpectedly');
            send(500, { error: { message: `internal error: ${e.message}` } }, 'jobs');
          },
        ),
      );
    });
    req.on('error', () => undefined);
    return undefined;
  });
  httpServer.keepAliveTimeout = 65_000;
  const httpPort = await new Promise<number>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(env.httpPort, '0.0.0.0', () => resolve((httpServer.address() as AddressInfo).port));
  });
  logger.info({ httpPort, grpcPort, kind: config.kind, peers: config.peers.map((p) => p.role) }, 'agent serving');

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      draining = true;
      // tasks waiting for capacity are handed back now, not at the end of the grace period
      dispatcher?.drain();
      executor?.drain();
      health.setStatus('', 'NOT_SERVING');
      health.setStatus('agents.v1.AgentService', 'NOT_SERVING');
      logger.info({ inFlight: inFlight.size, graceMs: config.drain.gracePeriodMs }, 'draining');
      const settled = Promise.allSettled([...inFlight]);
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), config.drain.gracePeriodMs);
      });
      if ((await Promise.race([settled.then(() => 'done' as const), graceOver])) === 'timeout') {
        logger.warn({ inFlight: inFlight.size }, 'grace period over: handing back unfinished tasks');
        handBack.abort(new Error('agent shutting down'));
        await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      clearTimeout(timer);
      // every session's work is done or handed back: tell the callers it is over
      for (const end of [...sessions.values()]) end();
      dispatcher?.close();
      await new Promise<void>((r) => {
        httpServer.close(() => r());
        httpServer.closeAllConnections();
      });
      await new Promise<void>((r) => {
        const force = setTimeout(() => {
          grpcServer.forceShutdown();
          r();
        }, 1000);
        grpcServer.tryShutdown(() => {
          clearTimeout(force);
          r();
        });
      });
      pool?.close();
      await client?.close();
      await toolbox?.close();
      logger.info('stopped');
    })());

  return { httpPort, grpcPort, metrics, shutdown };
}

function loadToolbox(): typeof McpToolbox {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./tools/mcp-toolbox') as typeof import('./tools/mcp-toolbox')).McpToolbox;
}

/**
 * Shedding on the HTTP API (README, "Overload"): when every task of a job
 * was shed by admission before it started (`overloaded` with a retry hint),
 * the job is answered 503 with Retry-After; when only some were, the 200
 * carries Retry-After too. Seconds, rounded up, at least 1.
 */
function overloadAnswer(results: readonly TaskResult[]): { status: 200 | 503; message: string; headers: Record<string, string> } | undefined {
  const shed = results.filter((r) => r.error?.code === 'overloaded' && r.retryAfterMs !== undefined);
  if (shed.length === 0) return undefined;
  const seconds = Math.max(1, Math.ceil(Math.max(...shed.map((r) => r.retryAfterMs!)) / 1000));
  const headers = { 'retry-after': String(seconds) };
  if (shed.length < results.length) return { status: 200, message: '', headers };
  return { status: 503, message: `overloaded: none of the job's ${results.length} task(s) could start and finish before its deadline (${shed[0].error!.message}); retry after ${seconds} s`, headers };
}
