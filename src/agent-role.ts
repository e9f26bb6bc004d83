import { Autoscaling } from './agent-autoscaler';
import { ApiAccessRule, AgentResources } from './agent-deployment';
import { AgentPodOptions } from './pod-options';

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
  /** Fixed replica count, or the autoscaler's starting point. @default - 3 for a coordinator, 2 otherwise */
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
}

/** A role below the top of a hierarchy, naming the role it reports to. */
export interface SupervisedRoleSpec extends AgentRoleSpec {
  /** Name of the supervisor (or the coordinator) that calls this role. */
  readonly reportsTo: string;
}
