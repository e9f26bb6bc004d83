/* eslint-disable */
// Generated from agent-runtime/schema/agent-config.schema.json by `npx projen gen:contract`.
// Do not edit: change the schema and regenerate (test/contract.test.ts fails when this file is stale).
// In src/ this file is internal: it is not exported from src/index.ts, so jsii never sees it.

export type TopologyKind = 'hub-and-spoke' | 'mesh' | 'hierarchical';
/**
 * coordinator: fans jobs out to its peers and aggregates; supervisor: middle tier of a hierarchy; worker: calls the upstream; peer: mesh member that both spreads and executes.
 */
export type AgentKind = 'coordinator' | 'supervisor' | 'worker' | 'peer';
/**
 * What a worker does: shown in logs and metrics; its behavior (instructions) is what makes it act the part.
 */
export type WorkerKind = 'task-executor' | 'data-retrieval' | 'validation' | 'general';
export type DnsLabel = string;
/**
 * 'api-keys': every request needs Authorization: Bearer <key> listed in keysFile; 'none': open, for a trusted namespace.
 */
export type ApiAuthMode = 'api-keys' | 'none';

/**
 * The one contract between the cdk8s constructs and the agent runtime. The constructs render it into each role's ConfigMap (key agent-config.json); the runtime validates it at boot and refuses to start, naming the field, when it does not match.
 */
export interface AgentConfig {
  apiVersion: 'agents.cdk8s.io/v1';
  /**
   * Name of the AgentCluster.
   */
  cluster: string;
  /**
   * Namespace the agents run in.
   */
  namespace: string;
  topology: TopologyKind;
  /**
   * This agent's role name (also AGENT_ROLE).
   */
  role: string;
  kind: AgentKind;
  workerKind?: WorkerKind;
  /**
   * True for the role that accepts jobs from outside the cluster on HTTP.
   */
  entry: boolean;
  /**
   * The roles this agent may call, one entry per edge of the topology graph leaving this role.
   */
  peers: PeerEntry[];
  /**
   * With peers empty: the name of a file beside this one that holds the peers array. A mesh's roles all call the same peers, so the constructs write that list once per cluster (ConfigMap <cluster>-peers, key peers.json, projected next to agent-config.json) and its manifests grow linearly with its size. The runtime reads the file at boot and validates it as peers.
   */
  peersFile?: string;
  fanOut: {
    /**
     * Tasks of one job in flight to peers at once (the article's semaphore of 5).
     */
    concurrency: number;
  };
  concurrency: {
    /**
     * Tasks this pod accepts at once; more are rejected with RESOURCE_EXHAUSTED / 429 so the caller re-dispatches.
     */
    maxInFlightTasks: number;
  };
  deadlines: {
    defaultMs: number;
    maxMs: number;
  };
  drain: {
    /**
     * How long SIGTERM waits for in-flight work before handing it back; the pod's terminationGracePeriodSeconds is larger.
     */
    gracePeriodMs: number;
  };
  retry: {
    maxAttempts: number;
    initialDelayMs: number;
    maxDelayMs: number;
    /**
     * Longest one upstream attempt may take (capped by the remaining deadline), so a hung call leaves time for a retry.
     */
    attemptTimeoutMs?: number;
  };
  models: {
    /**
     * The model this role calls when a task names none.
     */
    default: string;
    /**
     * The cluster's default model: the entry gives it to a task or step that names neither a model nor a role, so the same request never changes model with load. Absent: models.default.
     */
    clusterDefault?: string;
    /**
     * @minItems 1
     */
    allowed: string[];
  };
  /**
   * The slice of the cluster's model catalog this role may use (its allowed models and their fallbacks).
   */
  catalog: {
    [k: string]: ModelEntry;
  };
  limits: {
    maxTasksPerJob: number;
    maxRequestBytes: number;
  };
  behavior?: RoleBehavior;
  tools?: RoleTools;
  jobStore?: JobStoreConfig;
  auth?: ApiAuthConfig;
  budgets?: BudgetConfig;
  tls?: TlsConfig;
}
export interface PeerEntry {
  role: DnsLabel;
  kind: AgentKind;
  /**
   * host:port of the callee's headless gRPC Service; every A record is a pod to balance across.
   */
  address: string;
  /**
   * Tasks one callee pod accepts at once.
   */
  maxInFlightTasks: number;
  /**
   * Models a task may ask for through this callee (its own, or its subtree's). Absent: any.
   */
  models?: string[];
  /**
   * Roles a task or workflow step may name when sent through this callee: the callee itself and, for a supervisor, every role below it. Absent: the callee's own role only.
   */
  roles?: DnsLabel[];
}
export interface ModelEntry {
  /**
   * USD per million prompt tokens.
   */
  inputUsdPerMTok: number;
  /**
   * USD per million completion tokens.
   */
  outputUsdPerMTok: number;
  /**
   * USD per million prompt tokens the upstream reports as cached (usage.prompt_tokens_details.cached_tokens). Absent: inputUsdPerMTok.
   */
  cachedInputUsdPerMTok?: number;
  contextWindowTokens: number;
  /**
   * Tokens kept free for the completion.
   */
  reserveTokens: number;
  breaker: {
    /**
     * Consecutive failures that open the circuit.
     */
    failureThreshold: number;
    /**
     * Time the circuit stays open before a half-open trial.
     */
    recoverySeconds: number;
  };
  /**
   * Bulkhead: upstream calls to this model in flight per pod.
   */
  maxConcurrency: number;
  /**
   * Models tried in order when this one's circuit is open or its retries are spent.
   */
  fallbacks: string[];
  /**
   * BPE encoding used to count this model's context in tokens.
   */
  tokenizer: 'o200k_base' | 'cl100k_base';
}
/**
 * What makes this role an agent: its instructions and call defaults. Only roles that call the upstream use it.
 */
export interface RoleBehavior {
  /**
   * The role's system prompt, sent first on every upstream call the role makes.
   */
  instructions: string;
  /**
   * Sampling temperature for the role's calls unless a task sets one. Absent: the upstream's default.
   */
  temperature?: number;
  /**
   * Completion token limit for the role's calls unless a task sets one. Absent: the upstream's default.
   */
  maxTokens?: number;
  responseSchema?: ResponseSchemaEntry;
}
/**
 * Structured answers: sent as OpenAI response_format json_schema; an answer that does not parse and validate fails the task with bad_response.
 */
export interface ResponseSchemaEntry {
  name: string;
  /**
   * A JSON Schema (draft-07 or 2020-12) for the answer.
   */
  schema: {
    [k: string]: unknown;
  };
}
/**
 * MCP tool servers this role offers its model (Streamable HTTP). Only roles that call the upstream use it.
 */
export interface RoleTools {
  /**
   * @minItems 1
   */
  mcpServers: McpServerEntry[];
  /**
   * Model turns that may request tools in one task; one more request ends the task with tool_rounds_exceeded.
   */
  maxRounds: number;
  /**
   * Longest one tool call may take (capped by the task's deadline); a slower call is reported to the model as a tool error.
   */
  callTimeoutMs: number;
}
export interface McpServerEntry {
  /**
   * Server name, unique in the role; tool names are offered to the model as '<name>__<tool>'.
   */
  name: string;
  /**
   * Streamable HTTP endpoint, e.g. http://docs-mcp.tools.svc.cluster.local:8000/mcp
   */
  url: string;
  /**
   * Environment variable holding a bearer token for this server (the constructs fill it from a Secret). Absent: no Authorization header.
   */
  bearerTokenEnv?: string;
  /**
   * Only these tools of the server are offered. Absent: every tool it lists.
   */
  allowedTools?: string[];
}
/**
 * The durable job store (NATS JetStream): a work-queue stream for jobs and a KV bucket for job state, results and budgets. Absent: jobs live in the memory of the pod that took them (the API answers "durable": false).
 */
export interface JobStoreConfig {
  /**
   * NATS server URL; several may be given comma-separated, e.g. nats://agents-nats.agents.svc.cluster.local:4222
   */
  url: string;
  /**
   * Path of a NATS credentials (.creds) file mounted read-only from a Secret. Absent: connect without credentials.
   */
  credentialsFile?: string;
  /**
   * JetStream stream (work-queue retention) that holds submitted jobs.
   */
  stream: string;
  /**
   * Durable pull consumer the job runners share; KEDA scales on its pending count.
   */
  consumer: string;
  /**
   * KV bucket for job state, results, idempotency keys and budgets.
   */
  bucket: string;
  /**
   * Replicas of the stream and the bucket (at most the NATS cluster size).
   */
  replicas: number;
}
/**
 * Authentication on the entry's HTTP API (jobs and A2A). Only the entry role uses it. Absent: open (local mode without --api-keys).
 */
export interface ApiAuthConfig {
  mode: ApiAuthMode;
  /**
   * With mode api-keys: path of keys.json mounted from a Secret: [{"tenant","key_sha256","daily_budget_usd"?}].
   */
  keysFile?: string;
}
/**
 * Spend limits enforced by reservation before each upstream attempt (per job budgets come in the job body, per tenant ones in keys.json).
 */
export interface BudgetConfig {
  /**
   * The most the whole cluster may spend per clock hour (UTC), in USD. Absent: no cluster limit.
   */
  clusterHourlyUsd?: number;
}
/**
 * mTLS between agents: this agent serves gRPC over TLS, presents its certificate when it calls peers, and accepts only callers whose certificate names a role in allowedCallers. Absent: plain-text gRPC.
 */
export interface TlsConfig {
  /**
   * PEM certificate of this role (its URI SAN names the role, see CONTRACT.md).
   */
  certFile: string;
  /**
   * PEM private key of the certificate.
   */
  keyFile: string;
  /**
   * PEM CA bundle that signs every agent certificate of the cluster.
   */
  caFile: string;
  /**
   * Roles with an edge of the topology to this role; callers presenting another role are refused with PERMISSION_DENIED.
   */
  allowedCallers: DnsLabel[];
  /**
   * A mesh: every role in peers (inline or peersFile) may call this role too, so the callers are not listed again in each member's config.
   */
  peersMayCall?: boolean;
}
