import type { a2aRoutes } from './a2a/routes';
import { openBudgets } from './budget/open';
import { AgentConfig, callsUpstream, RuntimeEnv } from './config';
import { Dispatcher } from './coordination/dispatcher';
import { PeerPool } from './coordination/peers';
import { AgentTls } from './grpc/mtls';
import { createGrpcServer } from './grpc/server';
import { authenticatorFor, callerOf } from './http/auth';
import { jobRoutes } from './http/job-routes';
import { createHttpServer } from './http/server';
import { InferenceExecutor } from './inference/executor';
import { openJobStore } from './jobs/agent-jobs';
import { createLogger, Logger } from './logger';
import { RuntimeMetrics } from './metrics';
import { TaskAdmission } from './server/admission';
import { AgentCore, makeRun } from './server/core';
import { Lifecycle } from './server/lifecycle';
import { startTracing } from './telemetry';
import type { McpToolbox } from './tools/mcp-toolbox';
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
 * Boots one agent and wires its parts (each in its own file):
 * - the work: the upstream executor (roles that call models,
 *   inference/executor.ts) and the dispatcher (roles that call peers,
 *   coordination/dispatcher.ts), behind one `run` (server/core.ts);
 * - admission of tasks from callers and the load gauge (server/admission.ts);
 * - the gRPC service, AgentService + grpc.health.v1 (grpc/server.ts);
 * - the HTTP API: health, metrics and, on every role, the job API
 *   (http/server.ts, http/job-routes.ts) over the job store (jobs/: in
 *   memory, or NATS JetStream with `jobStore`), and on the entry A2A over
 *   the same jobs (a2a/routes.ts);
 * - the lifecycle: in-flight work and the drain (server/lifecycle.ts).
 */
export async function startAgent(config: AgentConfig, env: RuntimeEnv, opts: StartAgentOptions = {}): Promise<AgentHandle> {
  const logger = opts.logger ?? createLogger({ level: env.logLevel, agentId: env.agentId, role: env.role });
  const metrics = new RuntimeMetrics({ role: config.role });
  const auth = authenticatorFor(config.auth, env.configFile);
  const budgets = await openBudgets(config, metrics);
  // OpenTelemetry from the OTEL_* environment: undefined (and the SDK never loaded) without an OTLP endpoint
  const tracer = startTracing({ role: config.role, cluster: config.cluster, agentId: env.agentId, upstreamBaseUrl: callsUpstream(config.kind) ? env.upstreamBaseUrl : undefined });
  const client = callsUpstream(config.kind) ? new UpstreamClient({ baseUrl: env.upstreamBaseUrl!, apiKey: env.upstreamApiKey! }) : undefined;
  // MCP servers are connected in the background: one that is down never stops the pod from booting or serving.
  // The MCP SDK is loaded only by roles that list tool servers (it adds about a second to boot).
  const toolbox = client && config.tools ? new (loadToolbox())({ tools: config.tools, logger, metrics }) : undefined;
  toolbox?.warm();
  const executor = client ? new InferenceExecutor({ config, client, metrics, logger, agentId: env.agentId, tools: toolbox, tracer, budgets }) : undefined;
  // mTLS (config `tls`): the files are checked before anything serves; peers are dialled with this role's certificate
  const tls = config.tls ? await AgentTls.load(config, { metrics, logger }) : undefined;
  const pool = config.peers.length > 0 ? new PeerPool(config.peers, env.peerEndpoints, logger, undefined, tls?.dial) : undefined;
  const dispatcher = pool ? new Dispatcher({ pool, fanOut: config.fanOut.concurrency, metrics, logger, agentId: env.agentId, role: config.role, maxMessageBytes: config.limits.maxRequestBytes, tracer }) : undefined;
  await pool?.start();

  const lifecycle = new Lifecycle(config.drain.gracePeriodMs, logger);
  const core: AgentCore = {
    config,
    env,
    logger,
    metrics,
    executor,
    dispatcher,
    pool,
    lifecycle,
    admission: new TaskAdmission(config.concurrency.maxInFlightTasks, metrics, env.agentId),
    run: makeRun({ config, env, executor, dispatcher, lifecycle }),
    auth,
    budgets,
    tracer,
    ready: () => {
      if (lifecycle.draining) return { ok: false, why: 'draining' };
      if (pool && !pool.ready) return { ok: false, why: 'peers not resolved yet' };
      if (executor && executor.allCircuitsOpen()) return { ok: false, why: 'every model circuit is open' };
      return { ok: true };
    },
  };
  metrics.reportReadiness(() => core.ready().ok);
  const jobs = await openJobStore(core);

  const grpcServer = createGrpcServer(core, tls);
  const grpcPort = await grpcServer.bind(env.grpcPort);
  // the entry also speaks A2A, its tasks being the same jobs; both see the tenant of the request's API key
  const httpServer = createHttpServer(core, [
    ...jobRoutes(core, jobs, { callerOf: (c) => (c.tenant ? { tenant: c.tenant.tenant } : {}) }),
    ...(config.entry ? loadA2aRoutes()(core, jobs, callerOf) : []),
  ]);
  const httpPort = await httpServer.listen(env.httpPort);
  logger.info({ httpPort, grpcPort, kind: config.kind, peers: config.peers.map((p) => p.role), mtls: tls !== undefined }, 'agent serving');

  const shutdown = () =>
    lifecycle.shutdown({
      stopTaking: () => {
        // tasks waiting for capacity are handed back now, not at the end of the grace period
        dispatcher?.drain();
        executor?.drain();
        grpcServer.notServing();
        jobs.stopTaking?.();
      },
      close: async () => {
        // every session's work is done or handed back: tell the callers it is over
        grpcServer.endSessions();
        dispatcher?.close();
        await httpServer.close();
        await jobs.close();
        await grpcServer.close();
        pool?.close();
        tls?.close();
        await client?.close();
        await toolbox?.close();
        await budgets.close();
        // the spans of the last jobs go out before the process exits
        await tracer?.shutdown();
      },
    });

  return { httpPort, grpcPort, metrics, shutdown };
}

/**
 * The A2A SDK is loaded by the entry only, and only when it boots: it pulls
 * in jose, whose ES modules jest's loader on Node 20 cannot require, so a
 * test that imports this package's index must not load it.
 */
function loadA2aRoutes(): typeof a2aRoutes {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./a2a/routes') as typeof import('./a2a/routes')).a2aRoutes;
}

function loadToolbox(): typeof McpToolbox {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./tools/mcp-toolbox') as typeof import('./tools/mcp-toolbox')).McpToolbox;
}
