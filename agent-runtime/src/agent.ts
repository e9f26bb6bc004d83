import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { AgentConfig, RuntimeEnv } from './config';
import { Dispatcher } from './coordination/dispatcher';
import { PeerPool } from './coordination/peers';
import { runBounded } from './coordination/run-bounded';
import { agentService, ExecuteRequest, ExecuteResponse, fromWireTask, SERVER_OPTIONS, toWireResult, WireResult } from './grpc/service';
import { parseJob, RequestError, resultJson } from './http/jobs';
import { InferenceExecutor } from './inference/executor';
import { createLogger, Logger } from './logger';
import { RuntimeMetrics } from './metrics';
import { Task, TaskResult } from './types';
import { UpstreamClient } from './upstream/client';

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
  const callsUpstream = config.kind === 'worker' || config.kind === 'peer';
  const client = callsUpstream ? new UpstreamClient({ baseUrl: env.upstreamBaseUrl!, apiKey: env.upstreamApiKey! }) : undefined;
  const executor = client ? new InferenceExecutor({ config, client, metrics, logger, agentId: env.agentId }) : undefined;
  const pool = config.peers.length > 0 ? new PeerPool(config.peers, env.peerEndpoints, logger) : undefined;
  const dispatcher = pool ? new Dispatcher({ pool, fanOut: config.fanOut.concurrency, metrics, logger, agentId: env.agentId }) : undefined;
  await pool?.start();

  let draining = false;
  let activeTasks = 0;
  const inFlight = new Set<Promise<unknown>>();
  // Aborted when the grace period ends: whatever is still running is handed back.
  const handBack = new AbortController();
  setMaxListeners(0, handBack.signal); // one listener per task in flight
  const health = new HealthImplementation({ '': 'SERVING', 'agents.v1.AgentService': 'SERVING' });

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };

  /** Runs a job's tasks the way this role does. `hop` 0 = from a client. */
  const run = (jobId: string, tasks: Task[], deadlineAt: number, hop: number, onResult?: (r: TaskResult) => void): Promise<TaskResult[]> => {
    const local = executor && (config.kind === 'worker' || hop > 0 || !dispatcher);
    if (local) return runBounded(tasks, config.concurrency.maxInFlightTasks, (t) => executor.execute(t, deadlineAt, handBack.signal), onResult);
    if (!dispatcher) {
      const results = tasks.map((t) => ({ id: t.id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, agentId: env.agentId, error: { code: 'unavailable' as const, message: `role '${config.role}' has no callees and calls no model` } }));
      results.forEach((r) => onResult?.(r));
      return Promise.resolve(results);
    }
    return dispatcher.runJob(jobId, tasks, deadlineAt, hop, handBack.signal, onResult);
  };

  const overloaded = (t: Task): TaskResult => ({
    id: t.id,
    ok: false,
    costUsd: 0,
    attempts: 0,
    latencyMs: 0,
    agentId: env.agentId,
    error: { code: 'overloaded', message: `agent ${env.agentId} is at its limit of ${config.concurrency.maxInFlightTasks} tasks` },
  });

  // ---- gRPC ----
  const grpcServer = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': config.limits.maxRequestBytes });
  /**
   * What both RPCs do first: refuse while draining, fix each task's deadline
   * (its own or the request's, never past the call's), and admit what fits
   * (the rest is handed back as `overloaded` for another pod). Accepted tasks
   * come grouped by job and deadline, the unit `run` works in.
   */
  const admit = (call: grpc.ServerUnaryCall<ExecuteRequest, unknown> | grpc.ServerWritableStream<ExecuteRequest, unknown>) => {
    if (draining) return { error: { code: grpc.status.UNAVAILABLE, details: `agent ${env.agentId} is draining` } };
    const req = call.request;
    const callDeadline = call.getDeadline();
    const ceiling = callDeadline instanceof Date ? callDeadline.getTime() : Infinity;
    const wire = req.tasks ?? [];
    const room = Math.max(0, config.concurrency.maxInFlightTasks - activeTasks);
    const groups = new Map<string, { jobId: string; deadlineAt: number; tasks: Task[] }>();
    const rejected: TaskResult[] = [];
    for (const [i, w] of wire.entries()) {
      const deadlineAt = Math.min(w.deadline_unix_ms || req.deadline_unix_ms || Infinity, ceiling);
      if (!Number.isFinite(deadlineAt)) return { error: { code: grpc.status.INVALID_ARGUMENT, details: `task ${w.id}: deadline_unix_ms is required` } };
      const task = fromWireTask(w);
      if (i >= room) {
        rejected.push(overloaded(task));
        continue;
      }
      const jobId = w.job_id || req.job_id;
      const key = `${jobId}|${deadlineAt}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { jobId, deadlineAt, tasks: [] }));
      g.tasks.push(task);
    }
    const accepted = Math.min(room, wire.length);
    activeTasks += accepted;
    return { groups: [...groups.values()], rejected, accepted, hop: req.hop };
  };

  grpcServer.addService(agentService().service, {
    Execute: (call: grpc.ServerUnaryCall<ExecuteRequest, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => {
      const a = admit(call);
      if ('error' in a) return void cb(a.error!);
      void track(
        Promise.all(a.groups.map((g) => run(g.jobId, g.tasks, g.deadlineAt, a.hop)))
          .then((done) => cb(null, { results: [...done.flat(), ...a.rejected].map(toWireResult) }))
          .catch((e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }))
          .finally(() => {
            activeTasks -= a.accepted;
          }),
      );
    },
    ExecuteStream: (call: grpc.ServerWritableStream<ExecuteRequest, WireResult>) => {
      const a = admit(call);
      // grpc-js turns an 'error' event on a server stream into the call's status
      if ('error' in a) return void call.emit('error', a.error);
      const send = (r: TaskResult) => {
        if (!call.cancelled && !call.destroyed) call.write(toWireResult(r));
      };
      a.rejected.forEach(send);
      void track(
        Promise.all(a.groups.map((g) => run(g.jobId, g.tasks, g.deadlineAt, a.hop, send)))
          .then(() => call.end())
          .catch((e: Error) => call.emit('error', { code: grpc.status.INTERNAL, details: e.message }))
          .finally(() => {
            activeTasks -= a.accepted;
          }),
      );
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

  const httpServer = http.createServer((req, res) => {
    const t0 = process.hrtime.bigint();
    const send = (status: number, body: unknown, route: string, contentType = 'application/json') => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
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
      void track(
        run(jobId, job.tasks, job.deadlineAt, 0).then(
          (results) => {
            const ok = results.filter((r) => r.ok).length;
            const total = results.reduce((s, r) => s + r.costUsd, 0);
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
        handBack.abort();
        await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      clearTimeout(timer);
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
      logger.info('stopped');
    })());

  return { httpPort, grpcPort, metrics, shutdown };
}
