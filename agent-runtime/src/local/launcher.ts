import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { peerHost } from '../config';
import { localTls, LocalTlsFiles } from './tls';

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
  readonly name: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
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
   * mTLS between the agents: a throwaway CA and one certificate per role in
   * the temp dir, `tls` put into every config (local/tls.ts). False runs
   * gRPC in plain text (and drops a `tls` the manifests carry). @default true
   */
  readonly mtls?: boolean;
}

export interface LocalCluster {
  readonly entryUrl: string;
  readonly agents: readonly LocalAgent[];
  readonly roles: readonly LocalRole[];
  agent(role: string, replica?: number): LocalAgent;
  /** Sends `signal` to one agent process. */
  kill(role: string, replica?: number, signal?: NodeJS.Signals): void;
  /** The certificate, key and CA files local mode made for a role (undefined with mTLS off). */
  tlsFiles(role: string): LocalTlsFiles | undefined;
  stop(): Promise<void>;
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

/**
 * Ports for local agents come from below the kernel's ephemeral range: a port
 * the OS hands out for `listen(0)` is in that range, so between our probe and
 * the child's bind an outgoing connection (to the mock, to a peer) can take
 * it and the child fails with EADDRINUSE. Below the range only listeners
 * compete, and the probe sees those. A rotating cursor keeps one run from
 * handing the same port out twice.
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768; // Linux's default; other systems use 49152, above it
  }
})();
const PORT_POOL = { low: Math.max(1025, EPHEMERAL_LOW - 12000), high: EPHEMERAL_LOW };
let portCursor = PORT_POOL.low + Math.floor(Math.random() * (PORT_POOL.high - PORT_POOL.low));

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  if (PORT_POOL.high - PORT_POOL.low < 1000) {
    // no room below the ephemeral range: let the OS choose
    return new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
  }
  for (let i = 0; i < 200; i++) {
    const port = portCursor;
    portCursor = portCursor + 1 >= PORT_POOL.high ? PORT_POOL.low : portCursor + 1;
    if (await probe(port)) return port;
  }
  throw new Error(`no free port in ${PORT_POOL.low}-${PORT_POOL.high - 1} after 200 tries`);
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

/** A role's config JSON with the URLs of the named MCP servers replaced (others, and roles without tools, unchanged). */
export function withMcpUrls(configJson: string, urls: Readonly<Record<string, string>>): string {
  const config = JSON.parse(configJson) as { tools?: { mcpServers?: Array<{ name: string; url: string }> } };
  const servers = config.tools?.mcpServers ?? [];
  if (!servers.some((s) => urls[s.name] !== undefined)) return configJson;
  for (const s of servers) if (urls[s.name] !== undefined) s.url = urls[s.name];
  return JSON.stringify(config);
}

/**
 * Starts every role of a synthesized topology as local processes, with the
 * manifests' own env and ConfigMap, Service DNS names mapped to loopback
 * ports. Resolves once every agent's /readyz answers 200.
 */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const roles = readRoles(opts.manifests);
  const apiKey = opts.apiKey ?? process.env.UPSTREAM_API_KEY;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-local-'));
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

  const withTls = localTls(dir, roles, opts.mtls ?? true);
  const agents: LocalAgent[] = [];
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(AGENT_|UPSTREAM_|HTTP_PORT|GRPC_PORT|NODE_OPTIONS)/.test(k)) baseEnv[k] = v;
  }
  for (const p of plan) {
    const roleDir = path.join(dir, p.role.name);
    mkdirSync(roleDir, { recursive: true });
    for (const [fileName, text] of Object.entries(p.role.configFiles)) {
      const config = fileName === 'agent-config.json' ? withTls.configure(p.role.name, opts.mcpUrls ? withMcpUrls(text, opts.mcpUrls) : text) : undefined;
      writeFileSync(path.join(roleDir, fileName), config ?? text);
    }
    const configFile = path.join(roleDir, 'agent-config.json');
    const podName = `${p.role.name}-${p.replica}`;
    const env: NodeJS.ProcessEnv = { ...baseEnv, ...containerEnv(p.role.name, p.role.env, podName, apiKey) };
    Object.assign(env, {
      HTTP_PORT: String(p.http),
      GRPC_PORT: String(p.grpc),
      AGENT_CONFIG_FILE: configFile,
      AGENT_PEER_ENDPOINTS: JSON.stringify(endpoints),
      ...(env.UPSTREAM_BASE_URL !== undefined ? { UPSTREAM_BASE_URL: opts.upstreamUrl } : {}),
      ...(opts.env ?? {}),
      ...(opts.roleEnv?.[p.role.name] ?? {}),
    });
    // Children log to stdout (pino); those lines go to our stderr so that our
    // stdout carries only the `ready <url>` line scripts wait for.
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'serve'], { env, stdio: ['ignore', opts.logs === 'ignore' ? 'ignore' : 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => process.stderr.write(c));
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-4000);
      if (opts.logs !== 'ignore') process.stderr.write(c);
    });
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
    agents.push({ role: p.role.name, replica: p.replica, name: podName, httpUrl: `http://127.0.0.1:${p.http}`, grpcAddress: `127.0.0.1:${p.grpc}`, process: child, exited });
    void exited.then((code) => {
      if (code !== 0 && !stopping) bootErrors.push(`${podName} exited (${code}): ${summarize(stderr)}`);
    });
  }
  let stopping = false;
  const bootErrors: string[] = [];

  const stop = async () => {
    stopping = true;
    for (const a of agents) if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(agents.map((a) => a.exited)), new Promise((r) => (timer = setTimeout(r, 10000)))]);
    clearTimeout(timer);
    for (const a of agents) if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
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
    for (const a of [...pending]) {
      try {
        const res = await fetch(`${a.httpUrl}/readyz`, { headers: { connection: 'close' } });
        if (res.status === 200) pending.delete(a);
      } catch {
        // not listening yet
      }
    }
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 100));
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
    agent: find,
    kill: (role, replica = 0, signal = 'SIGKILL') => find(role, replica).process.kill(signal),
    tlsFiles: (role) => withTls.files(role),
    stop,
  };
}

/** `agent-runtime local --manifests <file> --upstream-url <url> [--replicas N] [--no-mtls]` */
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
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({ manifests: values.manifests, upstreamUrl: values['upstream-url'], replicas, nodeArgs: values['node-arg'] ?? [], mcpUrls, mtls: !values['no-mtls'] });
  } catch (e) {
    process.stderr.write(`agent-runtime local: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ready ${cluster.entryUrl}\n`);
  const stop = () => void cluster.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
