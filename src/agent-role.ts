import { Autoscaling } from './agent-autoscaler';
import { ApiAccessRule, AgentResources } from './agent-deployment';
import { McpServer } from './mcp-server';
import { AgentPodOptions } from './pod-options';
import { ResponseSchema } from './response-schema';

/** What a role does in its topology. */
export enum AgentKind {
  /** Accepts jobs, fans tasks out to its callees and aggregates the results. */
  COORDINATOR = 'coordinator',
  /** Middle tier of a hierarchy: receives batches and fans them out to its workers. */
  SUPERVISOR = 'supervisor',
  /** Makes the upstream model calls. */
  WORKER = 'worker',
  /** Mesh member: spreads jobs across the mesh and executes tasks itself. */
  PEER = 'peer',
}

/** What a worker is for (shown in labels, logs and metrics). */
export enum WorkerKind {
  /** Executes the job's tasks. */
  TASK_EXECUTOR = 'task-executor',
  /** Retrieves data for other agents. */
  DATA_RETRIEVAL = 'data-retrieval',
  /** Validates other agents' results. */
  VALIDATION = 'validation',
  /** No particular specialisation. */
  GENERAL = 'general',
}

/**
 * One agent role of a topology. Everything but the name has a default.
 */
export interface AgentRoleSpec {
  /** Role name: a DNS label, used for the Deployment, Services and ConfigMap. */
  readonly name: string;
  /** What a worker does. @default WorkerKind.GENERAL */
  readonly workerKind?: WorkerKind;
  /** Fixed replica count for a role without an autoscaler (an autoscaled role is sized by its minReplicas). @default - 3 for a coordinator, 2 otherwise */
  readonly replicas?: number;
  /** Autoscaling for this role. @default - Autoscaling.resource() (CPU and memory, 3..20 pods) for coordinators, Autoscaling.resource({ minReplicas: 5, maxReplicas: 50 }) for task executors, none otherwise */
  readonly autoscaling?: Autoscaling;
  /** Turn the default autoscaler off for this role. @default false */
  readonly disableAutoscaling?: boolean;
  /** Models this role may call; its first is the default. @default - the cluster's default model */
  readonly models?: string[];
  /** Tasks one pod of this role accepts at once. @default - the cluster's maxInFlightTasks */
  readonly maxInFlightTasks?: number;
  /** Tasks of one job this role keeps in flight to its callees. @default - the cluster's fanOutConcurrency */
  readonly fanOutConcurrency?: number;
  /** Container resources. @default - 500m/512Mi requests, 1 CPU/1Gi limits */
  readonly resources?: AgentResources;
  /** Container image pinned by tag or digest. @default - the cluster's image */
  readonly image?: string;
  /** Kubernetes API access this role needs (read-only). @default - none: no token is mounted */
  readonly apiAccess?: ApiAccessRule[];
  /** Pod shaping for this role, on top of the cluster's `pods`. @default - the cluster's */
  readonly pods?: AgentPodOptions;
  /** The role's system prompt, sent first on every model call it makes (at most 32768 characters); only for roles that call models (workers, mesh peers). @default - none */
  readonly instructions?: string;
  /** Sampling temperature (0 to 2) of the role's model calls unless a task sets one; needs `instructions`. @default - the upstream's default */
  readonly temperature?: number;
  /** Completion token limit of the role's model calls unless a task sets one (at most the model's context window); needs `instructions`. @default - the upstream's default */
  readonly maxTokens?: number;
  /** JSON Schema the role's answers must match (structured output); an answer that does not fails its task with bad_response; needs `instructions`. @default - free text answers */
  readonly responseSchema?: ResponseSchema;
  /** MCP tool servers the role offers its model; egress is opened to exactly these. @default - no tools */
  readonly mcpServers?: McpServer[];
  /** Model turns that may request tools in one task (1 to 50). @default - the cluster's maxToolRounds */
  readonly maxToolRounds?: number;
  /** Longest one tool call may take, in ms (capped by the task's deadline). @default - the cluster's toolCallTimeoutMs */
  readonly toolCallTimeoutMs?: number;
}

/** A role below the top of a hierarchy, naming the role it reports to. */
export interface SupervisedRoleSpec extends AgentRoleSpec {
  /** Name of the supervisor (or the coordinator) that calls this role. */
  readonly reportsTo: string;
}
