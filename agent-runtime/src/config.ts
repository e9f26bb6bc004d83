import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import Ajv, { ErrorObject } from 'ajv';

import type * as generated from './generated/agent-config';

// The config's types are generated from schema/agent-config.schema.json
// (`npx projen gen:contract`), the same file the constructs render with, so a
// field renamed in the schema breaks the build of both halves.

/** The agent config (schema/agent-config.schema.json). */
export type AgentConfig = generated.AgentConfig;
/** One model of the catalog, as the constructs render it. */
export type ModelEntry = generated.ModelEntry;
export type AgentKind = generated.AgentKind;
/** One callee: an edge of the topology leaving this role. */
export type PeerEntry = generated.PeerEntry;
/** The role's instructions and call defaults (config `behavior`). */
export type RoleBehavior = generated.RoleBehavior;
export type McpServerEntry = generated.McpServerEntry;
/** MCP tools offered to the role's model (config `tools`). */
export type RoleTools = generated.RoleTools;
/** mTLS between agents (config `tls`, CONTRACT.md "mTLS"). */
export type TlsConfig = generated.TlsConfig;
/** The durable job store: NATS JetStream (config `jobStore`). */
export type JobStoreConfig = generated.JobStoreConfig;

/** The port every agent serves gRPC on, and the port in every peer address. */
export const GRPC_SERVICE_PORT = 50051;

/** Whether a role of this kind makes upstream model calls (and so needs the upstream's URL and key). */
export function callsUpstream(kind: AgentKind): boolean {
  return kind === 'worker' || kind === 'peer';
}

/** DNS name of a role's headless gRPC Service: every A record is one of its pods. */
export function peerHost(role: string, namespace: string): string {
  return `${role}-grpc.${namespace}.svc.cluster.local`;
}

/** A peer's `address` in the config: `R-grpc.N.svc.cluster.local:50051`. */
export function peerAddress(role: string, namespace: string): string {
  return `${peerHost(role, namespace)}:${GRPC_SERVICE_PORT}`;
}

/** Process settings from the environment. */
export interface RuntimeEnv {
  readonly agentId: string;
  readonly role: string;
  readonly configFile: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly upstreamBaseUrl?: string;
  readonly upstreamApiKey?: string;
  /** host → static endpoints, overriding DNS (local mode). */
  readonly peerEndpoints: Readonly<Record<string, readonly string[]>>;
  readonly logLevel: string;
}

/** A config or environment problem; `field` names what to fix. */
export class ConfigError extends Error {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export const SCHEMA_PATH = path.resolve(__dirname, '..', 'schema', 'agent-config.schema.json');

let compiled: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null } | undefined;
function validator() {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: false, strict: true });
    compiled = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
  }
  return compiled;
}

/** `/catalog/gpt-4.1/breaker` → `catalog.gpt-4.1.breaker` */
function fieldOf(e: ErrorObject): string {
  const base = e.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
  const missing = (e.params as { missingProperty?: string }).missingProperty;
  const extra = (e.params as { additionalProperty?: string }).additionalProperty;
  const leaf = missing ?? extra;
  return [base, leaf].filter(Boolean).join('.') || '(root)';
}

/** Validates a parsed config against the shared schema and the rules a schema cannot say. */
export function validateAgentConfig(json: unknown): AgentConfig {
  const validate = validator();
  if (!validate(json)) {
    const e = validate.errors![0];
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    throw new ConfigError(fieldOf(e), extra ? 'is not a known field: remove it' : `${e.message ?? 'is invalid'}`);
  }
  const c = json as AgentConfig;
  if (!c.models.allowed.includes(c.models.default)) {
    throw new ConfigError('models.default', `'${c.models.default}' is not in models.allowed (${c.models.allowed.join(', ')})`);
  }
  for (const m of c.models.allowed) {
    if (!c.catalog[m]) throw new ConfigError(`models.allowed`, `'${m}' is not in catalog`);
    for (const f of c.catalog[m].fallbacks) {
      if (!c.catalog[f]) throw new ConfigError(`catalog.${m}.fallbacks`, `'${f}' is not in catalog`);
    }
  }
  if (c.deadlines.defaultMs > c.deadlines.maxMs) throw new ConfigError('deadlines.defaultMs', `must be <= deadlines.maxMs (${c.deadlines.maxMs})`);
  if (c.retry.initialDelayMs > c.retry.maxDelayMs) throw new ConfigError('retry.initialDelayMs', `must be <= retry.maxDelayMs (${c.retry.maxDelayMs})`);
  return c;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(name, `'${raw}' is not a port number (0-65535)`);
  return n;
}

/** Why an API key is unusable, or undefined. Never includes the key itself. */
export function apiKeyProblem(key: string): string | undefined {
  if (key.trim() === '') return 'it is empty';
  if (/\s/.test(key)) return 'it contains whitespace or a newline (was the Secret written with a trailing newline?)';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) return 'it contains control characters';
  if (/^(your[_-]?api[_-]?key|changeme|xxx+|<.*>|placeholder)$/i.test(key) || /YOUR_.*KEY/i.test(key)) return 'it is a placeholder, not a key';
  if (key.length < 8) return `it is ${key.length} characters long; real keys are longer`;
  return undefined;
}

function readJson(file: string, field: string): unknown {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(field, `cannot read '${file}': ${(e as Error).message}`);
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new ConfigError(field, `'${file}' is not JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads a config file and, when it names a `peersFile`, the peer list beside
 * it; validates the whole as if the list were inline.
 */
export function loadAgentConfigFile(configFile: string): AgentConfig {
  const json = readJson(configFile, 'AGENT_CONFIG_FILE');
  const config = validateAgentConfig(json);
  if (config.peersFile === undefined) return config;
  if (config.peers.length > 0) throw new ConfigError('peers', `must be empty when peersFile ('${config.peersFile}') holds the list`);
  const peers = readJson(path.join(path.dirname(configFile), config.peersFile), 'peersFile');
  const { peersFile: _, ...inline } = config;
  try {
    return validateAgentConfig({ ...inline, peers });
  } catch (e) {
    if (e instanceof ConfigError && e.field.startsWith('peers')) throw new ConfigError(`peersFile (${config.peersFile}): ${e.field}`, e.message.slice(e.field.length + 2));
    throw e;
  }
}

/** Reads and validates everything the process needs before it serves. */
export function loadRuntimeSettings(env: NodeJS.ProcessEnv = process.env): { config: AgentConfig; env: RuntimeEnv } {
  const configFile = env.AGENT_CONFIG_FILE;
  if (!configFile) throw new ConfigError('AGENT_CONFIG_FILE', 'is not set: point it at the agent-config.json the ConfigMap mounts');
  const config = loadAgentConfigFile(configFile);

  const role = env.AGENT_ROLE;
  if (!role) throw new ConfigError('AGENT_ROLE', 'is not set');
  if (role !== config.role) throw new ConfigError('AGENT_ROLE', `'${role}' does not match the config's role '${config.role}'`);
  const agentId = env.AGENT_ID || `${role}-local`;

  let upstreamBaseUrl = env.UPSTREAM_BASE_URL;
  const upstreamApiKey = env.UPSTREAM_API_KEY;
  if (callsUpstream(config.kind)) {
    if (!upstreamBaseUrl) throw new ConfigError('UPSTREAM_BASE_URL', `is not set; role '${role}' calls the upstream`);
    let url: URL;
    try {
      url = new URL(upstreamBaseUrl);
    } catch {
      throw new ConfigError('UPSTREAM_BASE_URL', `'${upstreamBaseUrl}' is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('UPSTREAM_BASE_URL', `must be http(s), got '${url.protocol}'`);
    upstreamBaseUrl = upstreamBaseUrl.replace(/\/+$/, '');
    if (upstreamApiKey === undefined) throw new ConfigError('UPSTREAM_API_KEY', 'is not set: reference the Secret with secretKeyRef');
    const problem = apiKeyProblem(upstreamApiKey);
    if (problem) throw new ConfigError('UPSTREAM_API_KEY', `is malformed: ${problem}`);
  }

  let peerEndpoints: Record<string, string[]> = {};
  if (env.AGENT_PEER_ENDPOINTS) {
    try {
      peerEndpoints = JSON.parse(env.AGENT_PEER_ENDPOINTS) as Record<string, string[]>;
    } catch (e) {
      throw new ConfigError('AGENT_PEER_ENDPOINTS', `is not JSON: ${(e as Error).message}`);
    }
    for (const [host, list] of Object.entries(peerEndpoints)) {
      if (!Array.isArray(list) || list.some((a) => typeof a !== 'string' || !/^[^:]+:\d+$/.test(a))) {
        throw new ConfigError(`AGENT_PEER_ENDPOINTS.${host}`, 'must be a list of "host:port" strings');
      }
    }
  }

  return {
    config,
    env: {
      agentId,
      role,
      configFile,
      httpPort: port(env, 'HTTP_PORT', 8080),
      grpcPort: port(env, 'GRPC_PORT', GRPC_SERVICE_PORT),
      upstreamBaseUrl,
      upstreamApiKey,
      peerEndpoints,
      logLevel: env.LOG_LEVEL ?? 'info',
    },
  };
}
