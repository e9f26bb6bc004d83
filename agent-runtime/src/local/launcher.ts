import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { peerHost } from '../config';
import { ApiKeys } from '../http/auth';
import { localTls, LocalTlsFiles } from './tls';
import { NatsServer, NatsServerNotFoundError, startNatsServer } from './nats';
import { freePort } from './ports';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string; optional?: boolean } };
}
interface Manifest {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
  spec?: {
    template?: {
      spec?: {
        containers?: Array<{ env?: EnvVar[]; volumeMounts?: Array<{ name: string; mountPath: string }> }>;
        volumes?: Array<{ name: string; configMap?: { name: string }; projected?: { sources?: Array<{ configMap?: { name: string } }> } }>;
      };
    };
  };
}

/** One role of the topology as the manifests describe it. */
export interface LocalRole {
  readonly name: string;
  readonly namespace: string;
  readonly env: readonly EnvVar[];
  readonly configJson: string;
  /** Every file of the config volume (agent-config.json and, in a mesh, the shared peers.json), by name. */
  readonly configFiles: Readonly<Record<string, string>>;
  readonly entry: boolean;
}

export interface LocalAgent {
  readonly role: string;
  readonly replica: number;
  /** The pod name (`<role>-<replica>`); kept across restarts, as a StatefulSet-like identity. */
  readonly name: string;
  /** Kept across restarts: a restarted process binds the same ports. */
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** The current process (a new one after each restart). */
  readonly process: ChildProcess;
  /** The current process id. */
  readonly pid: number;
  /** Resolves with the current process's exit code (or signal name) when it ends. */
  readonly exited: Promise<number | string>;
  /** How many times local mode has started this agent again after it died. */
  readonly restarts: number;
}

export interface LocalClusterOptions {
  /** Path to a synthesized `<topology>.k8s.yaml`. */
  readonly manifests: string;
  /** Base URL of the OpenAI-compatible upstream (ends in /v1). */
  readonly upstreamUrl: string;
  /** Processes per role. @default 1 */
  readonly replicas?: number;
  /** Replicas of particular roles, overriding `replicas`. */
  readonly roleReplicas?: Readonly<Record<string, number>>;
  /** Value for every secretKeyRef to the upstream key. @default process.env.UPSTREAM_API_KEY */
  readonly apiKey?: string;
  /** Endpoints that callers of a role see instead of its processes (e.g. a fault proxy). */
  readonly peerEndpointOverrides?: Readonly<Record<string, readonly string[]>>;
  /**
   * Rewrites the address callers use for one process (e.g. to put a fault
   * proxy in the path). Called once per process with its real gRPC address.
   */
  readonly endpointFor?: (role: string, replica: number, address: string) => string | Promise<string>;
  /** Extra environment for the processes of a role (e.g. a smaller heap). */
  readonly roleEnv?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Extra environment for every process (e.g. LOG_LEVEL). */
  readonly env?: Readonly<Record<string, string>>;
  /** Where children's logs go. @default 'inherit' */
  readonly logs?: 'inherit' | 'ignore';
  /** Extra Node.js flags for every agent process (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
  readonly nodeArgs?: readonly string[];
  /**
   * How long to wait for every /readyz. Each agent loads its tokenizer tables
   * at boot (about 1 s alone); on a loaded 2-core machine a whole topology
   * has taken 25 s, so the default leaves room. @default 60000
   */
  readonly readyTimeoutMs?: number;
  /**
   * MCP server name → URL every role uses instead of its config's (e.g. the
   * in-cluster docs server → a local `agent-runtime mcp-docs`). @default none
   */
  readonly mcpUrls?: Readonly<Record<string, string>>;
  /**
   * keys.json for the entry's API (the format the Secret holds). Without it
   * the entry runs open, whatever its config's `auth` says. @default none
   */
  readonly apiKeysFile?: string;
  /**
   * mTLS between the agents: a throwaway CA and one certificate per role in
   * the temp dir, `tls` put into every config (local/tls.ts). False runs
   * gRPC in plain text (and drops a `tls` the manifests carry). @default true
   */
  readonly mtls?: boolean;
  /**
   * NATS for the roles whose config has a `jobStore`: their `jobStore.url`
   * becomes this (credentials dropped, stream replicas 1). Without it, and
   * when some config has a `jobStore`, a `nats-server` from PATH is started
   * in a temporary directory and stopped with the cluster. @default none
   */
  readonly natsUrl?: string;
  /**
   * `Always` starts an agent process that dies again (any exit, as the
   * kubelet does for a Deployment's pod), with the same pod name and ports,
   * after a backoff; `Never` leaves it dead. Processes that die before the
   * whole cluster is ready fail the boot either way. @default 'Always'
   */
  readonly restartPolicy?: 'Always' | 'Never';
  /** Called once per agent process start (boot and restarts) with the `agent <pod> pid <pid> http <port> grpc <port>` line. */
  readonly onAgentStart?: (line: string, agent: LocalAgent) => void;
}

export interface LocalCluster {
  readonly entryUrl: string;
  readonly agents: readonly LocalAgent[];
  readonly roles: readonly LocalRole[];
  /** The NATS URL the job-store configs point at, when any config has a `jobStore`. */
  readonly natsUrl?: string;
  /** The nats-server local mode started (not set with `natsUrl` or without a job store). */
  readonly nats?: NatsServer;
  agent(role: string, replica?: number): LocalAgent;
  /** Sends `signal` to one agent process (with restartPolicy Always, it comes back). */
  kill(role: string, replica?: number, signal?: NodeJS.Signals): void;
  /** The certificate, key and CA files local mode made for a role (undefined with mTLS off). */
  tlsFiles(role: string): LocalTlsFiles | undefined;
  /** Resolves once the agent's current process answers /readyz with 200 (e.g. after a restart). */
  ready(role: string, replica?: number, timeoutMs?: number): Promise<LocalAgent>;
  stop(): Promise<void>;
}

/** The line local mode prints per agent process start; scripts may parse it. */
export function agentStartLine(agent: Pick<LocalAgent, 'name' | 'pid' | 'httpPort' | 'grpcPort'>): string {
  return `agent ${agent.name} pid ${agent.pid} http ${agent.httpPort} grpc ${agent.grpcPort}`;
}

/**
 * A role's config JSON pointed at a local NATS: `jobStore.url` replaced,
 * `credentialsFile` dropped (the Secret is not here) and the stream and bucket
 * replicas set to 1 (one local server is not a cluster). Unchanged without a `jobStore`.
 */
export function withNatsUrl(configJson: string, natsUrl: string): string {
  const config = JSON.parse(configJson) as { jobStore?: { url: string; credentialsFile?: string; replicas: number } };
  if (!config.jobStore) return configJson;
  config.jobStore.url = natsUrl;
  delete config.jobStore.credentialsFile;
  config.jobStore.replicas = 1;
  return JSON.stringify(config);
}

/** Whether any role's config names a job store. */
export function needsJobStore(roles: readonly LocalRole[]): boolean {
  return roles.some((r) => (JSON.parse(r.configJson) as { jobStore?: unknown }).jobStore !== undefined);
}

/**
 * Delay before starting a dead agent again: 250 ms doubling per crash in a
 * row, at most 8 s (the kubelet's CrashLoopBackOff starts at 10 s, too slow
 * for a laptop or a test). A process that ran 10 s resets the count.
 */
export function restartBackoffMs(crashesInARow: number): number {
  return Math.min(8000, 250 * 2 ** Math.max(0, crashesInARow - 1));
}

// Two levels below the package root in both src/ (tests) and dist/ (built).
const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli.js');

/** Reads the roles (Deployment + its ConfigMap) from a synthesized manifest file. */
export function readRoles(file: string): LocalRole[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as Manifest).filter(Boolean);
  const configMaps = new Map(docs.filter((d) => d.kind === 'ConfigMap').map((d) => [d.metadata?.name, d]));
  const roles: LocalRole[] = [];
  for (const d of docs.filter((x) => x.kind === 'Deployment')) {
    const name = d.metadata?.name ?? '';
    const pod = d.spec?.template?.spec;
    const container = pod?.containers?.[0];
    // The config volume: one ConfigMap, or (a mesh) the role's ConfigMap and the cluster's peer list projected together.
    const volume = pod?.volumes?.find((v) => v.name === 'config') ?? pod?.volumes?.find((v) => v.configMap);
    const sources = volume?.projected ? (volume.projected.sources ?? []).map((s) => s.configMap?.name) : [volume?.configMap?.name];
    const configFiles: Record<string, string> = {};
    for (const cmName of sources) {
      const cm = cmName ? configMaps.get(cmName) : undefined;
      if (cmName && !cm) throw new Error(`${file}: Deployment '${name}' mounts ConfigMap '${cmName}', which is not in the file`);
      Object.assign(configFiles, cm?.data ?? {});
    }
    const configJson = configFiles['agent-config.json'];
    if (!container || !configJson) throw new Error(`${file}: Deployment '${name}' has no container or no ConfigMap with agent-config.json`);
    roles.push({ name, namespace: d.metadata?.namespace ?? 'default', env: container.env ?? [], configJson, configFiles, entry: (JSON.parse(configJson) as { entry?: boolean }).entry === true });
  }
  if (roles.length === 0) throw new Error(`${file}: no Deployments found`);
  return roles;
}

/** The error line of a child's stderr (not just its stack's tail). */
function summarize(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const error = lines.find((l) => /error|EADDRINUSE|fatal/i.test(l) && !/^\s+at /.test(l));
  return [error, ...lines.slice(-2)].filter(Boolean).join(' | ');
}

/**
 * The environment a role's container gets from its manifest, as local mode
 * can provide it: literals, the pod name, and the upstream key for
 * `UPSTREAM_API_KEY`. Any other Secret (an MCP server's bearer token) is not
 * known here: it is left out (a same-named variable of the launching
 * environment passes through), never filled with the upstream key.
 */
export function containerEnv(role: string, vars: readonly EnvVar[], podName: string, apiKey: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of vars) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[v.name] = podName;
    else if (v.valueFrom?.secretKeyRef && v.name !== 'UPSTREAM_API_KEY') continue;
    else if (v.valueFrom?.secretKeyRef) {
      if (apiKey === undefined) {
        throw new Error(`${v.name} comes from Secret '${v.valueFrom.secretKeyRef.name}' (key '${v.valueFrom.secretKeyRef.key}'): set UPSTREAM_API_KEY in the environment for local mode`);
      }
      env[v.name] = apiKey;
    } else if (v.valueFrom?.configMapKeyRef?.optional) {
      // An optional key of a ConfigMap that is not in the manifests: the pod would start without it too.
      continue;
    } else throw new Error(`Deployment '${role}': env ${v.name} uses a source local mode cannot provide`);
  }
  return env;
}

/**
 * The OpenTelemetry settings of the launching environment (`OTEL_*`), which
 * every local agent gets over its manifest's: the manifests name the
 * cluster's collector, which a laptop cannot reach, and the one you run
 * `local` with is the one you mean. OTEL_SERVICE_NAME is left out: each agent
 * names itself after its role.
 */
export function launcherOtelEnv(parent: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parent)) if (k.startsWith('OTEL_') && k !== 'OTEL_SERVICE_NAME' && v !== undefined) out[k] = v;
  return out;
}

/** A role's config JSON with the URLs of the named MCP servers replaced (others, and roles without tools, unchanged). */
export function withMcpUrls(configJson: string, urls: Readonly<Record<string, string>>): string {
  const config = JSON.parse(configJson) as { tools?: { mcpServers?: Array<{ name: string; url: string }> } };
  const servers = config.tools?.mcpServers ?? [];
  if (!servers.some((s) => urls[s.name] !== undefined)) return configJson;
  for (const s of servers) if (urls[s.name] !== undefined) s.url = urls[s.name];
  return JSON.stringify(config);
}

/**
 * A role's config JSON with its API auth made local: `api-keys` reads
 * `apiKeysFile` (an absolute path) instead of the Secret's mount; without a
 * file the API runs open. Configs without `auth` are unchanged.
 */
export function withLocalAuth(configJson: string, apiKeysFile: string | undefined): string {
  const config = JSON.parse(configJson) as { auth?: { mode: string; keysFile?: string } };
  if (!config.auth || config.auth.mode !== 'api-keys') return configJson;
  config.auth = apiKeysFile ? { mode: 'api-keys', keysFile: path.resolve(apiKeysFile) } : { mode: 'none' };
  return JSON.stringify(config);
}

/**
 * Starts every role of a synthesized topology as local processes, with the
 * manifests' own env and ConfigMap, Service DNS names mapped to loopback
 * ports, and (when a config names a job store) a local nats-server. Resolves
 * once every agent's /readyz answers 200. Agents that die afterwards are
 * started again (see `restartPolicy`).
 */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const roles = readRoles(opts.manifests);
  const apiKey = opts.apiKey ?? process.env.UPSTREAM_API_KEY;
  const restartPolicy = opts.restartPolicy ?? 'Always';
  // Everything that can refuse the manifests runs before anything is started.
  // a bad keys file fails here, once, rather than in the entry's boot
  if (opts.apiKeysFile) ApiKeys.load(opts.apiKeysFile, '--api-keys');
  const podEnv = new Map(roles.map((r) => [r.name, (podName: string) => containerEnv(r.name, r.env, podName, apiKey)]));
  for (const r of roles) podEnv.get(r.name)!(`${r.name}-0`);
  const plan: Array<{ role: LocalRole; replica: number; http: number; grpc: number }> = [];
  for (const role of roles) {
    const n = opts.roleReplicas?.[role.name] ?? opts.replicas ?? 1;
    for (let i = 0; i < n; i++) plan.push({ role, replica: i, http: await freePort(), grpc: await freePort() });
  }
  const endpoints: Record<string, string[]> = {};
  for (const role of roles) {
    const host = peerHost(role.name, role.namespace);
    if (opts.peerEndpointOverrides?.[role.name]) {
      endpoints[host] = [...opts.peerEndpointOverrides[role.name]];
      continue;
    }
    endpoints[host] = [];
    for (const p of plan.filter((x) => x.role === role)) {
      const real = `127.0.0.1:${p.grpc}`;
      endpoints[host].push(opts.endpointFor ? await opts.endpointFor(role.name, p.replica, real) : real);
    }
  }

  // Last before the agents: a missing nats-server fails here, with its install hint.
  let nats: NatsServer | undefined;
  let natsUrl = opts.natsUrl;
  if (natsUrl === undefined && needsJobStore(roles)) {
    nats = await startNatsServer();
    natsUrl = nats.url;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-local-'));
  const withTls = localTls(dir, roles, opts.mtls ?? true);
  let stopping = false;
  let booted = false;
  const bootErrors: string[] = [];
  const agents: LocalAgent[] = [];
  const pendingRestarts = new Set<NodeJS.Timeout>();
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(AGENT_|UPSTREAM_|HTTP_PORT|GRPC_PORT|NODE_OPTIONS|OTEL_SERVICE_NAME$)/.test(k)) baseEnv[k] = v;
  }
  const otel = launcherOtelEnv(process.env);
  for (const p of plan) {
    const roleDir = path.join(dir, `${p.role.name}-${p.replica}`);
    mkdirSync(roleDir, { recursive: true });
    for (const [fileName, text] of Object.entries(p.role.configFiles)) {
      let content = text;
      if (fileName === 'agent-config.json' && opts.mcpUrls) content = withMcpUrls(content, opts.mcpUrls);
      if (fileName === 'agent-config.json' && natsUrl !== undefined) content = withNatsUrl(content, natsUrl);
      if (fileName === 'agent-config.json') content = withLocalAuth(content, opts.apiKeysFile);
      if (fileName === 'agent-config.json') content = withTls.configure(p.role.name, content);
      writeFileSync(path.join(roleDir, fileName), content);
    }
    const configFile = path.join(roleDir, 'agent-config.json');
    const podName = `${p.role.name}-${p.replica}`;
    const env: NodeJS.ProcessEnv = { ...baseEnv, ...podEnv.get(p.role.name)!(podName) };
    Object.assign(env, {
      HTTP_PORT: String(p.http),
      GRPC_PORT: String(p.grpc),
      AGENT_CONFIG_FILE: configFile,
      AGENT_PEER_ENDPOINTS: JSON.stringify(endpoints),
      ...(env.UPSTREAM_BASE_URL !== undefined ? { UPSTREAM_BASE_URL: opts.upstreamUrl } : {}),
      ...otel,
      ...(opts.env ?? {}),
      ...(opts.roleEnv?.[p.role.name] ?? {}),
    });

    let child!: ChildProcess;
    let exited!: Promise<number | string>;
    let restarts = 0;
    let crashesInARow = 0;
    const agent: LocalAgent = {
      role: p.role.name,
      replica: p.replica,
      name: podName,
      httpUrl: `http://127.0.0.1:${p.http}`,
      grpcAddress: `127.0.0.1:${p.grpc}`,
      httpPort: p.http,
      grpcPort: p.grpc,
      get process() {
        return child;
      },
      get pid() {
        return child.pid ?? -1;
      },
      get exited() {
        return exited;
      },
      get restarts() {
        return restarts;
      },
    };
    const launch = () => {
      // Children log to stdout (pino); those lines go to our stderr so that our
      // stdout carries only the lines scripts read (`agent ...`, `ready <url>`).
      child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'serve'], { env, stdio: ['ignore', opts.logs === 'ignore' ? 'ignore' : 'pipe', 'pipe'] });
      const startedAt = Date.now();
      child.stdout?.on('data', (c: Buffer) => process.stderr.write(c));
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-4000);
        if (opts.logs !== 'ignore') process.stderr.write(c);
      });
      exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
      void exited.then((code) => {
        if (stopping) return;
        if (!booted) {
          if (code !== 0) bootErrors.push(`${podName} exited (${code}): ${summarize(stderr)}`);
          return;
        }
        if (restartPolicy === 'Never') return;
        crashesInARow = Date.now() - startedAt >= 10_000 ? 1 : crashesInARow + 1;
        const delay = restartBackoffMs(crashesInARow);
        if (opts.logs !== 'ignore') process.stderr.write(`agent-runtime local: ${podName} exited (${code})${stderr ? `: ${summarize(stderr)}` : ''}; starting it again in ${delay} ms\n`);
        const timer = setTimeout(() => {
          pendingRestarts.delete(timer);
          if (stopping) return;
          restarts++;
          launch();
        }, delay);
        pendingRestarts.add(timer);
      });
      if (child.pid !== undefined) opts.onAgentStart?.(agentStartLine(agent), agent);
    };
    launch();
    agents.push(agent);
  }

  const isRunning = (a: LocalAgent) => a.process.exitCode === null && a.process.signalCode === null;
  const stop = async () => {
    stopping = true;
    for (const t of pendingRestarts) clearTimeout(t);
    pendingRestarts.clear();
    for (const a of agents) if (isRunning(a)) a.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(agents.map((a) => a.exited)), new Promise((r) => (timer = setTimeout(r, 10000)))]);
    clearTimeout(timer);
    for (const a of agents) if (isRunning(a)) a.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await nats?.stop();
  };

  const answersReady = async (a: LocalAgent) => {
    try {
      const res = await fetch(`${a.httpUrl}/readyz`, { headers: { connection: 'close' } });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false; // not listening yet
    }
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60000);
  const pending = new Set(agents);
  while (pending.size > 0) {
    if (bootErrors.length > 0) {
      await stop();
      throw new Error(`local cluster failed to boot: ${bootErrors.join('; ')}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`local cluster not ready after ${opts.readyTimeoutMs ?? 60000} ms: ${[...pending].map((a) => a.name).join(', ')}`);
    }
    for (const a of [...pending]) if (await answersReady(a)) pending.delete(a);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 100));
  }
  booted = true;
  // A process that died between its /readyz and this point was not seen by the boot loop.
  const early = agents.filter((a) => !isRunning(a));
  if (early.length > 0) {
    await stop();
    throw new Error(`local cluster failed to boot: ${early.map((a) => a.name).join(', ')} exited after answering /readyz`);
  }

  const entryRole = roles.find((r) => r.entry) ?? roles[0];
  const find = (role: string, replica = 0) => {
    const a = agents.find((x) => x.role === role && x.replica === replica);
    if (!a) throw new Error(`no local agent ${role}#${replica}`);
    return a;
  };
  return {
    entryUrl: find(entryRole.name).httpUrl,
    agents,
    roles,
    natsUrl,
    nats,
    agent: find,
    kill: (role, replica = 0, signal = 'SIGKILL') => find(role, replica).process.kill(signal),
    tlsFiles: (role) => withTls.files(role),
    ready: async (role, replica = 0, timeoutMs = 60000) => {
      const a = find(role, replica);
      const until = Date.now() + timeoutMs;
      while (!(isRunning(a) && (await answersReady(a)))) {
        if (stopping) throw new Error(`local cluster stopped while waiting for ${a.name}`);
        if (Date.now() > until) throw new Error(`${a.name} not ready after ${timeoutMs} ms (restarts: ${a.restarts})`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return a;
    },
    stop,
  };
}

/** `agent-runtime local --manifests <file> --upstream-url <url> [--replicas N] [--nats-url <url>] [--no-mtls]` */
export async function runLocalCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'manifests': { type: 'string' },
      'upstream-url': { type: 'string' },
      'replicas': { type: 'string', default: '1' },
      // e.g. --node-arg=--cpu-prof: a flag for every agent process
      'node-arg': { type: 'string', multiple: true },
      // e.g. --mcp-url docs=http://127.0.0.1:8765/mcp
      'mcp-url': { type: 'string', multiple: true },
      // keys.json: [{"tenant", "key_sha256", "daily_budget_usd"?}]
      'api-keys': { type: 'string' },
      // the job store's NATS instead of a local nats-server
      'nats-url': { type: 'string' },
      // plain-text gRPC between the agents instead of local mTLS
      'no-mtls': { type: 'boolean', default: false },
    },
  });
  const mcpUrls: Record<string, string> = {};
  for (const pair of values['mcp-url'] ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0 || !/^https?:\/\//.test(pair.slice(at + 1))) {
      process.stderr.write(`agent-runtime local: --mcp-url must be <server name>=<http(s) URL>, got '${pair}'\n`);
      process.exit(2);
    }
    mcpUrls[pair.slice(0, at)] = pair.slice(at + 1);
  }
  if (!values.manifests || !values['upstream-url']) {
    process.stderr.write('agent-runtime local: --manifests <file> and --upstream-url <url> are required\n');
    process.exit(2);
  }
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1) {
    process.stderr.write(`agent-runtime local: --replicas must be a whole number >= 1, got '${values.replicas}'\n`);
    process.exit(2);
  }
  const natsUrl = values['nats-url'];
  if (natsUrl !== undefined && !/^(nats|tls):\/\/\S+$/.test(natsUrl)) {
    process.stderr.write(`agent-runtime local: --nats-url must be a nats:// or tls:// URL, got '${natsUrl}'\n`);
    process.exit(2);
  }
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({
      manifests: values.manifests,
      upstreamUrl: values['upstream-url'],
      replicas,
      nodeArgs: values['node-arg'] ?? [],
      mcpUrls,
      natsUrl,
      apiKeysFile: values['api-keys'],
      mtls: !values['no-mtls'],
      onAgentStart: (line) => process.stdout.write(`${line}\n`),
    });
  } catch (e) {
    const hint = e instanceof NatsServerNotFoundError ? '; or pass --nats-url <url> of a running NATS with JetStream' : '';
    process.stderr.write(`agent-runtime local: ${(e as Error).message}${hint}\n`);
    process.exit(1);
  }
  process.stdout.write(values['api-keys'] ? `api keys: ${path.resolve(values['api-keys'])}\n` : 'api keys: none (no --api-keys): the entry API is open to anyone who reaches it\n');
  if (cluster.nats) process.stdout.write(`nats ${cluster.nats.url} pid ${cluster.nats.pid} store ${cluster.nats.storeDir}\n`);
  process.stdout.write(`ready ${cluster.entryUrl}\n`);
  const stop = () => void cluster.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
