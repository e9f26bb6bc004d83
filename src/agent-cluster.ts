import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { Autoscaling } from './agent-autoscaler';
import { AgentDeployment, AgentDeploymentProps, AgentUpstream, PEERS_FILE_KEY, upstreamProblems } from './agent-deployment';
import { AgentMonitoring, AgentMonitoringOptions } from './agent-monitoring';
import { AgentMtls } from './agent-mtls';
import { AgentLimitRange, AgentNamespace, AgentQuota } from './agent-namespace';
import { AgentKind, WorkerKind } from './agent-role';
import { ApiAuth } from './api-auth';
import { cidrProblem } from './cidr';
import { AgentConfig, callsUpstream, ModelEntry, PeerEntry, peerAddress, RoleBehavior, RoleTools } from './contract';
import { renderedConfigProps } from './internal';
import { BoundJobStore, JobStore } from './job-store';
import { KubeConfigMap, KubeNetworkPolicy } from './l1';
import { GRPC_PORT, HTTP_PORT, isDnsLabel, LABEL_API_CLIENT, LABEL_MESH, selectorLabels } from './labels';
import { ModelCatalog } from './model-catalog';
import { AgentPodOptions, mergePodOptions } from './pod-options';
import { PriorityClass } from './priority-class';
import { problem } from './problems';
import { Topology, TopologyKind, TopologyRole } from './topology';
import { addTracingEgress, AgentTracingOptions, tracingPodOptions, tracingProblems } from './tracing';

/** An egress destination for upstream model calls. */
export interface UpstreamEgressRule {
  /** Destination CIDR. */
  readonly cidr: string;
  /** CIDRs carved out of `cidr`. @default - none */
  readonly except?: string[];
  /** TCP ports. @default [443] */
  readonly ports?: number[];
}

/** Props of an AgentCluster. */
export interface AgentClusterProps {
  /** Who calls whom: `Topology.hubAndSpoke`, `Topology.mesh` or `Topology.hierarchical`. */
  readonly topology: Topology;
  /** Upstream URL and the Secret holding its API key (only referenced). */
  readonly upstream: AgentUpstream;
  /** Cluster name, used in labels and in the runtime's config. @default - the construct id */
  readonly name?: string;
  /** Namespace of every object. @default - the cluster name */
  readonly namespace?: string;
  /** Create the namespace (restricted PSA, default-deny). Set false when it exists. @default true */
  readonly createNamespace?: boolean;
  /** ResourceQuota for the namespace. @default - none */
  readonly quota?: AgentQuota;
  /** LimitRange for the namespace. @default - none */
  readonly limitRange?: AgentLimitRange;
  /** Where upstream calls may go. @default - TCP 443 to 0.0.0.0/0 except 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 */
  readonly upstreamEgress?: UpstreamEgressRule[];
  /** The model catalog. @default ModelCatalog.defaults() */
  readonly catalog?: ModelCatalog;
  /** Model used when a role names none. @default 'gpt-4.1' */
  readonly defaultModel?: string;
  /** Image for every role, pinned by tag or digest. @default DEFAULT_AGENT_IMAGE */
  readonly image?: string;
  /** Tasks of one job kept in flight to callees (per caller pod). @default 5 */
  readonly fanOutConcurrency?: number;
  /** Tasks one pod accepts at once. @default 16 */
  readonly maxInFlightTasks?: number;
  /** Deadline of a job whose client sets none, in ms. @default 30000 */
  readonly defaultDeadlineMs?: number;
  /** Largest deadline a client may ask for, in ms. @default 120000 */
  readonly maxDeadlineMs?: number;
  /** Seconds a pod drains on SIGTERM before handing work back. @default 25 */
  readonly drainSeconds?: number;
  /** Upstream attempts per model, first try included. @default 4 */
  readonly retryMaxAttempts?: number;
  /** First backoff ceiling in ms (full jitter). @default 200 */
  readonly retryInitialDelayMs?: number;
  /** Largest backoff in ms. @default 5000 */
  readonly retryMaxDelayMs?: number;
  /** Longest one upstream attempt may take, so a hung call leaves time to retry. @default 15000 */
  readonly attemptTimeoutMs?: number;
  /** Tasks one job may hold. @default 10000 */
  readonly maxTasksPerJob?: number;
  /** Largest request body in bytes. @default 8388608 */
  readonly maxRequestBytes?: number;
  /** Labels of the pods allowed to call the entry role's HTTP API. @default { 'agents.cdk8s.io/api-client': 'true' } */
  readonly apiClientPodLabels?: { [key: string]: string };
  /** Namespaces (by labels) those pods may be in. @default - the cluster's own namespace only */
  readonly apiClientNamespaceLabels?: { [key: string]: string };
  /** Create the two PriorityClasses. Set false when they exist. @default true */
  readonly createPriorityClasses?: boolean;
  /** Pod shaping for every role (a role's own `pods` adds to it). @default - none */
  readonly pods?: AgentPodOptions;
  /** Scraping, alerts and a dashboard (needs the Prometheus Operator; the dashboard, Grafana's sidecar). @default - none */
  readonly monitoring?: AgentMonitoringOptions;
  /** Model turns that may request tools in one task, for roles with MCP servers that set none (1 to 50). @default 8 */
  readonly maxToolRounds?: number;
  /** Longest one MCP tool call may take in ms, for roles that set none. @default 10000 */
  readonly toolCallTimeoutMs?: number;
  /** Who may call the entry's job API and A2A: `ApiAuth.apiKeys(...)` or, for a trusted namespace, `ApiAuth.none()`. @default ApiAuth.apiKeys() (Secret '<cluster>-api-keys', key 'keys.json') */
  readonly apiAuth?: ApiAuth;
  /** The most the whole cluster may spend on upstream calls per UTC clock hour, in USD, enforced before each call. @default - no cluster budget */
  readonly clusterHourlyBudgetUsd?: number;
  /** Durable jobs on NATS JetStream: `JobStore.jetStream()` (synthesized in the namespace) or `JobStore.external(...)`; every role's config gets it. @default - none: jobs live in the entry pod's memory */
  readonly jobStore?: JobStore;
  /** OpenTelemetry traces: every agent gets OTEL_EXPORTER_OTLP_* for this collector and egress to it. @default - no tracing */
  readonly tracing?: AgentTracingOptions;
  /** mTLS between agents, each callee admitting only the roles with an edge to it: `AgentMtls.selfSigned()` or `AgentMtls.certManager(...)` (needs cert-manager's CRDs). @default - none: plain-text gRPC, the NetworkPolicies alone enforce the edges */
  readonly mtls?: AgentMtls;
}

/** Longest system prompt the runtime's config schema accepts, in characters. */
const MAX_INSTRUCTIONS = 32768;
const DEFAULT_MAX_TOOL_ROUNDS = 8;
const DEFAULT_TOOL_CALL_TIMEOUT_MS = 10000;

const CLUSTER_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];
/** Children of an AgentCluster that are not roles: a role of the same name would collide with them. */
const RESERVED_IDS = new Set(['namespace', 'priority-high', 'priority-worker', 'mesh-policy', 'entry-policy', 'peers', 'monitoring', 'job-store', 'mtls']);
// The top-level `"peers": []` of a rendered config; inside a JSON string the
// quotes would be escaped, so this text can only be the key itself.
const PEERS_EMPTY = '"peers": []';

/** Why a tool setting is out of the schema's range, as [problem, fix]. */
function toolSettingProblem(field: 'maxToolRounds' | 'toolCallTimeoutMs', value: number | undefined): [string, string] | undefined {
  if (value === undefined) return undefined;
  const max = field === 'maxToolRounds' ? 50 : Number.MAX_SAFE_INTEGER;
  if (Number.isInteger(value) && value >= 1 && value <= max) return undefined;
  return field === 'maxToolRounds' ? [`${value} is out of range`, 'use a whole number of rounds from 1 to 50'] : [`${value} is not a whole number of ms >= 1`, 'use e.g. 10000'];
}

/**
 * A complete multi-agent system from a topology: namespace, per-role
 * workloads and config, autoscalers, priority classes, disruption budgets,
 * and network policies that admit exactly the topology's edges.
 */
export class AgentCluster extends Construct {
  /** Cluster name. */
  public readonly name: string;
  /** Namespace name. */
  public readonly namespace: string;
  /** The topology. */
  public readonly topology: Topology;
  /** The catalog in force. */
  public readonly catalog: ModelCatalog;
  /** The mesh's shared peer list (`<cluster>-peers`, key peers.json); other topologies keep peers inline. */
  public readonly peersConfigMap?: k8s.KubeConfigMap;
  /** Scraping, alerts and dashboard, when `monitoring` is set. */
  public readonly monitoring?: AgentMonitoring;
  private readonly agents = new Map<string, AgentDeployment>();
  private readonly capacities = new Map<string, { replicas: number; inFlight: number }>();
  // keyed by the topology's shared callee arrays (one for a whole mesh)
  private readonly peersJsonCache = new Map<readonly string[], string>();
  private readonly capacityCache = new Map<readonly string[], number>();
  private readonly sizedCache = new Map<readonly string[], boolean>();
  private readonly modelsCache = new Map<string, string[]>();
  private readonly rolesCache = new Map<string, string[]>();
  private readonly defaultModel: string;
  private readonly jobStore?: BoundJobStore;

  constructor(scope: Construct, id: string, props: AgentClusterProps) {
    super(scope, id);
    this.name = props.name ?? id;
    this.namespace = props.namespace ?? this.name;
    this.topology = props.topology;
    this.catalog = props.catalog ?? ModelCatalog.defaults();
    const topo = props.topology;
    const defaultModel = props.defaultModel ?? 'gpt-4.1';
    this.defaultModel = defaultModel;
    const fanOut = props.fanOutConcurrency ?? 5;
    const inFlight = props.maxInFlightTasks ?? 16;
    const drainSeconds = props.drainSeconds ?? 25;
    const errors: string[] = [];
    // Problems about one role are reported by that role's construct, so cdk8s prints its path once.
    const roleErrors = new Map<string, string[]>();
    const roleError = (role: string, line: string) => (roleErrors.get(role) ?? roleErrors.set(role, []).get(role)!).push(line);

    if (props.createNamespace ?? true) {
      new AgentNamespace(this, 'namespace', { name: this.namespace, quota: props.quota, limitRange: props.limitRange });
    }
    if (props.createPriorityClasses ?? true) {
      new PriorityClass(this, 'priority-high', {
        name: PriorityClass.HIGH_PRIORITY_AGENT,
        value: 100000,
        description: 'Coordinators and supervisors: scheduled before the workers they orchestrate.',
      });
      new PriorityClass(this, 'priority-worker', {
        name: PriorityClass.AGENT_WORKER,
        value: 10000,
        preemptionPolicy: 'Never',
        description: 'Agent workers: above best-effort pods, below the agents that coordinate them.',
      });
    }

    const scrapers = props.monitoring ? { namespaceLabels: props.monitoring.monitoringNamespaceLabels ?? { 'kubernetes.io/metadata.name': 'monitoring' }, podLabels: props.monitoring.monitoringPodLabels } : undefined;
    const roleNames = topo.roles.map((r) => r.spec.name);
    this.jobStore = props.jobStore?._bind(this, { clusterName: this.name, namespace: this.namespace, roles: roleNames, scrapers });

    for (const p of topo._problems) errors.push(`topology: ${p}.`);
    for (const p of this.catalog.problems()) errors.push(`catalog: ${p}.`);
    for (const [field, value] of [['maxToolRounds', props.maxToolRounds], ['toolCallTimeoutMs', props.toolCallTimeoutMs]] as const) {
      const bad = toolSettingProblem(field, value);
      if (bad) errors.push(problem(field, bad[0], bad[1]));
    }
    if (!this.catalog.has(defaultModel)) {
      errors.push(problem('defaultModel', `'${defaultModel}' is not in the catalog`, `use one of ${this.catalog.modelIds.join(', ')} or add it with catalog.withModel(...)`));
    }
    errors.push(...clusterProblems(props, this.name, this.namespace));
    const apiAuth = props.apiAuth ?? ApiAuth.apiKeys();
    errors.push(...apiAuth._problems(this.name));
    errors.push(...tracingProblems(props.tracing, this.namespace));

    // First pass: capacities, so fan-out can be checked against callees.
    for (const r of topo.roles) {
      const autoscaling = this.autoscalingFor(r);
      const replicas = autoscaling ? autoscaling.minReplicas : r.spec.replicas ?? (r.kind === AgentKind.COORDINATOR ? 3 : 2);
      this.capacities.set(r.spec.name, { replicas, inFlight: r.spec.maxInFlightTasks ?? inFlight });
    }

    // A mesh's members all call the same peers: one list per cluster, projected into every pod.
    const sharedPeers = topo.kind === TopologyKind.MESH && topo.roles.length > 0;
    let peersConfigMapName: string | undefined;
    if (sharedPeers) {
      peersConfigMapName = `${this.name}-peers`;
      this.peersConfigMap = new KubeConfigMap(this, 'peers', {
        metadata: { name: peersConfigMapName, namespace: this.namespace, labels: { 'app.kubernetes.io/part-of': this.name, 'app.kubernetes.io/managed-by': 'cdk8s-agent-cluster' } },
        data: { [PEERS_FILE_KEY]: this.peersJson(topo.roles[0].spec.name) },
      });
      const bytes = Buffer.byteLength(this.peersJson(topo.roles[0].spec.name), 'utf8');
      if (bytes > 1024 * 1024) {
        errors.push(problem('topology', `the mesh's peer list is ${bytes} bytes, over the 1 MiB a ConfigMap may hold`, 'split a mesh this large into a hierarchical topology'));
      }
    }

    const created = new Set<string>();
    for (const r of topo.roles) {
      const role = r.spec.name;
      // The topology reports the duplicate; a second construct of that id would throw first.
      if (created.has(role)) continue;
      if (RESERVED_IDS.has(role) || /-(policy|autoscaler|mcp)$/.test(role)) {
        errors.push(problem(`roles.${role}`, `the name '${role}' is taken by the cluster's own objects`, 'rename the role'));
        continue;
      }
      created.add(role);
      const models = r.spec.models ?? [defaultModel];
      for (const m of models) {
        if (!this.catalog.has(m)) {
          roleError(role, problem('models', `role '${role}' uses model '${m}', which is not in the catalog`, `use one of ${this.catalog.modelIds.join(', ')} or add it with catalog.withModel({ id: '${m}', ... })`));
        }
      }
      const cap = this.capacities.get(role)!;
      const autoscaling = this.autoscalingFor(r);
      for (const [field, v, min] of [['replicas', r.spec.replicas, 0], ['maxInFlightTasks', r.spec.maxInFlightTasks, 1], ['fanOutConcurrency', r.spec.fanOutConcurrency, 1]] as const) {
        if (v !== undefined && !(Number.isInteger(v) && v >= min)) roleError(role, problem(field, `${v} is not a whole number >= ${min}`, `set ${field} to ${Math.max(min, 1)} or more`));
      }
      if (cap.replicas === 0 && !autoscaling) {
        roleError(role, problem('replicas', `role '${role}' has 0 replicas and no autoscaler, so nothing would ever serve it`, 'set replicas >= 1 or give it autoscaling'));
      }
      const callees = topo._callees(role);
      const roleFanOut = r.spec.fanOutConcurrency ?? fanOut;
      // A callee with an invalid size has its own error; a capacity computed from it would only mislead.
      const sized = (c: string) => {
        const k = this.capacities.get(c);
        return k !== undefined && Number.isInteger(k.replicas) && k.replicas >= 0 && Number.isInteger(k.inFlight) && k.inFlight >= 1;
      };
      let allSized = this.sizedCache.get(callees);
      if (allSized === undefined) this.sizedCache.set(callees, (allSized = callees.every(sized)));
      if (callees.length > 0 && allSized) {
        const capacity = this.capacityOf(callees);
        if (roleFanOut > capacity) {
          roleError(role, problem('fanOutConcurrency', `${roleFanOut} tasks in flight exceed the ${capacity} its callees (${callees.length > 8 ? `${callees.slice(0, 8).join(', ')}, ...` : callees.join(', ')}) can ever hold (replicas × maxInFlightTasks)`, `lower fanOutConcurrency to ${capacity} or add callee replicas / maxInFlightTasks`));
        }
      }

      for (const [field, what, fix] of this.behaviourProblems(r, models)) roleError(role, problem(field, what, fix));

      const upstreamCaller = callsUpstream(r.kind);
      const highPriority = r.kind === AgentKind.COORDINATOR || r.kind === AgentKind.SUPERVISOR;
      const deploymentProps: AgentDeploymentProps = {
        role,
        clusterName: this.name,
        component: r.kind,
        namespace: this.namespace,
        agentConfigJson: this.renderConfig(r, models, props, { fanOut: roleFanOut, inFlight: cap.inFlight, drainSeconds }, sharedPeers),
        image: r.spec.image ?? props.image,
        replicas: cap.replicas,
        resources: r.spec.resources,
        upstream: upstreamCaller ? props.upstream : undefined,
        mcpServers: upstreamCaller ? r.spec.mcpServers : undefined,
        drainSeconds,
        priorityClassName: highPriority ? PriorityClass.HIGH_PRIORITY_AGENT : PriorityClass.AGENT_WORKER,
        apiAccess: r.spec.apiAccess,
        podLabels: topo.kind === TopologyKind.MESH ? { [LABEL_MESH]: this.name } : undefined,
        pods: mergePodOptions(mergePodOptions(mergePodOptions(tracingPodOptions(props.tracing), props.pods), r.spec.pods), this.jobStore?.pods),
        peersConfigMapName,
        secretMounts: r.entry ? apiAuth._mounts(this.name) : undefined,
        tlsSecretName: props.mtls?.secretNameFor(role),
      };
      renderedConfigProps.add(deploymentProps);
      const agent = new AgentDeployment(this, role, deploymentProps);
      this.agents.set(role, agent);
      const own = roleErrors.get(role);
      if (own) Node.of(agent).addValidation({ validate: () => own });
      // the entry pulls jobs: with a job store, KEDA can scale it on the job queue
      autoscaling?._attach(this, `${role}-autoscaler`, agent, r.entry ? this.jobStore?.jobQueue : undefined);
    }
    // Problems about roles that have no construct of their own (duplicates, reserved names) stay on the cluster.
    for (const [role, lines] of roleErrors) if (!this.agents.has(role)) errors.push(...lines.map((l) => `roles.${role}.${l}`));

    props.mtls?._bind(this, 'mtls', { name: this.name, namespace: this.namespace, roles: [...this.agents.keys()] });
    this.createNetworkPolicies(props);
    addTracingEgress(this, props.tracing, { name: this.name, namespace: this.namespace });
    if (props.monitoring) {
      this.monitoring = new AgentMonitoring(this, 'monitoring', { ...props.monitoring, clusterName: this.name, namespace: this.namespace, agents: [...this.agents.values()] });
    }

    Node.of(this).addValidation({ validate: () => errors });
  }

  /** The AgentDeployment of a role. */
  public agent(role: string): AgentDeployment {
    const a = this.agents.get(role);
    if (!a) throw new Error(`[${this.node.path}] no role '${role}' (roles: ${[...this.agents.keys()].join(', ')})`);
    return a;
  }

  /** The role that accepts jobs from outside. */
  public get entryRole(): string {
    // '' only for a topology without roles, which synth refuses
    return this.topology.roles.find((r) => r.entry)?.spec.name ?? this.topology.roles[0]?.spec.name ?? '';
  }

  /**
   * Models a task may ask for when sent to `role`: its own allowed models
   * when it calls the upstream, else the union over the roles it calls.
   */
  private modelsThrough(role: string, seen: Set<string> = new Set()): string[] {
    const cached = this.modelsCache.get(role);
    if (cached) return cached;
    const r = this.topology.roleNamed(role)!;
    let models: string[];
    if (callsUpstream(r.kind)) {
      models = (r.spec.models ?? [this.defaultModel]).filter((m) => this.catalog.has(m));
    } else {
      seen.add(role);
      const union = new Set<string>();
      for (const c of this.topology.calleesOf(role)) if (!seen.has(c)) this.modelsThrough(c, seen).forEach((m) => union.add(m));
      models = [...union];
    }
    this.modelsCache.set(role, models);
    return models;
  }

  /**
   * Roles a task may name when sent to `role`: the role itself and, when it
   * calls other roles (a supervisor), every role below it.
   */
  private rolesThrough(role: string, seen: Set<string> = new Set()): string[] {
    const cached = this.rolesCache.get(role);
    if (cached) return cached;
    const r = this.topology.roleNamed(role)!;
    const roles = new Set([role]);
    if (r.kind === AgentKind.SUPERVISOR) {
      seen.add(role);
      for (const c of this.topology.calleesOf(role)) if (!seen.has(c)) this.rolesThrough(c, seen).forEach((x) => roles.add(x));
    }
    const out = [...roles];
    this.rolesCache.set(role, out);
    return out;
  }

  /** Tasks `callees` can hold at once at their declared replicas: replicas × maxInFlightTasks, summed. */
  private capacityOf(callees: readonly string[]): number {
    let capacity = this.capacityCache.get(callees);
    if (capacity === undefined) {
      capacity = callees.reduce((sum, c) => sum + (this.capacities.get(c)?.replicas ?? 0) * (this.capacities.get(c)?.inFlight ?? 0), 0);
      this.capacityCache.set(callees, capacity);
    }
    return capacity;
  }

  /** Defaults need only metrics-server: CPU and memory. */
  private autoscalingFor(r: TopologyRole): Autoscaling | undefined {
    if (r.spec.disableAutoscaling) return undefined;
    if (r.spec.autoscaling) return r.spec.autoscaling;
    if (r.kind === AgentKind.COORDINATOR) return Autoscaling.resource();
    if (r.spec.workerKind === WorkerKind.TASK_EXECUTOR) return Autoscaling.resource({ minReplicas: 5, maxReplicas: 50 });
    return undefined;
  }

  private renderConfig(
    r: TopologyRole,
    models: string[],
    props: AgentClusterProps,
    sizes: { fanOut: number; inFlight: number; drainSeconds: number },
    sharedPeers: boolean,
  ): string {
    const role = r.spec.name;
    const known = models.filter((m) => this.catalog.has(m));
    const catalog: Record<string, ModelEntry> = {};
    for (const id of this.catalog._closure(known)) catalog[id] = this.catalog._resolve(id);
    const config: AgentConfig = {
      apiVersion: 'agents.cdk8s.io/v1',
      cluster: this.name,
      namespace: this.namespace,
      topology: this.topology.kind,
      role,
      kind: r.kind,
      ...(r.spec.workerKind ? { workerKind: r.spec.workerKind } : {}),
      entry: r.entry,
      // inline lists are spliced in below (see there); [] keeps this object an AgentConfig
      peers: [],
      ...(sharedPeers ? { peersFile: PEERS_FILE_KEY } : {}),
      fanOut: { concurrency: sizes.fanOut },
      concurrency: { maxInFlightTasks: sizes.inFlight },
      deadlines: { defaultMs: props.defaultDeadlineMs ?? 30000, maxMs: props.maxDeadlineMs ?? 120000 },
      drain: { gracePeriodMs: sizes.drainSeconds * 1000 },
      retry: {
        maxAttempts: props.retryMaxAttempts ?? 4,
        initialDelayMs: props.retryInitialDelayMs ?? 200,
        maxDelayMs: props.retryMaxDelayMs ?? 5000,
        attemptTimeoutMs: props.attemptTimeoutMs ?? 15000,
      },
      // clusterDefault: what the entry gives a task naming neither model nor role
      models: { default: known[0] ?? models[0], clusterDefault: this.defaultModel, allowed: known.length > 0 ? known : models },
      catalog,
      limits: { maxTasksPerJob: props.maxTasksPerJob ?? 10000, maxRequestBytes: props.maxRequestBytes ?? 8 * 1024 * 1024 },
      ...this.renderBehaviour(r, props),
      ...(r.entry ? { auth: (props.apiAuth ?? ApiAuth.apiKeys())._config() } : {}),
      ...(props.clusterHourlyBudgetUsd !== undefined ? { budgets: { clusterHourlyUsd: props.clusterHourlyBudgetUsd } } : {}),
      // every role: the entry pulls jobs, the others reach the KV (budgets)
      ...(this.jobStore ? { jobStore: this.jobStore.config } : {}),
      ...(props.mtls ? { tls: props.mtls._tlsConfig(this.topology, role) } : {}),
    };
    const json = JSON.stringify(config, null, 2);
    // Peer lists are rendered once per distinct callee set and spliced in.
    return sharedPeers ? json : json.replace(PEERS_EMPTY, () => `"peers": ${this.peersJson(role).replace(/\n/g, '\n  ')}`);
  }

  /** The peers `role` calls, as JSON; cached by the topology's shared callee arrays (one for a whole mesh). */
  private peersJson(role: string): string {
    const callees = this.topology._callees(role);
    let peersJson = this.peersJsonCache.get(callees);
    if (peersJson === undefined) {
      const kindOf = (name: string) => this.topology.roleNamed(name)!.kind;
      const peers = callees.map((c): PeerEntry => ({
        role: c,
        kind: kindOf(c),
        address: peerAddress(c, this.namespace),
        maxInFlightTasks: this.capacities.get(c)!.inFlight,
        models: this.modelsThrough(c),
        // only a supervisor reaches more than itself; absent means its own role
        ...(kindOf(c) === AgentKind.SUPERVISOR ? { roles: this.rolesThrough(c) } : {}),
      }));
      peersJson = JSON.stringify(peers, null, 2);
      this.peersJsonCache.set(callees, peersJson);
    }
    return peersJson;
  }

  /** The config's `behavior` and `tools` for a role that calls models, when it has them. */
  private renderBehaviour(r: TopologyRole, props: AgentClusterProps): { behavior?: RoleBehavior; tools?: RoleTools } {
    const spec = r.spec;
    if (!callsUpstream(r.kind)) return {};
    const out: { behavior?: RoleBehavior; tools?: RoleTools } = {};
    if (spec.instructions !== undefined) {
      // a schema that does not parse fails synth (behaviourProblems); nothing to render then
      const schema = spec.responseSchema?._parsed();
      out.behavior = {
        instructions: spec.instructions,
        ...(spec.temperature !== undefined ? { temperature: spec.temperature } : {}),
        ...(spec.maxTokens !== undefined ? { maxTokens: spec.maxTokens } : {}),
        ...(spec.responseSchema && schema ? { responseSchema: { name: spec.responseSchema.name, schema } } : {}),
      };
    }
    if (spec.mcpServers && spec.mcpServers.length > 0) {
      out.tools = {
        mcpServers: spec.mcpServers.map((m) => m._entry()),
        maxRounds: spec.maxToolRounds ?? props.maxToolRounds ?? DEFAULT_MAX_TOOL_ROUNDS,
        callTimeoutMs: spec.toolCallTimeoutMs ?? props.toolCallTimeoutMs ?? DEFAULT_TOOL_CALL_TIMEOUT_MS,
      };
    }
    return out;
  }

  /** What is wrong with a role's behaviour and tools, as [field, problem, fix]. */
  private behaviourProblems(r: TopologyRole, models: string[]): Array<[string, string, string]> {
    const spec = r.spec;
    const role = spec.name;
    const out: Array<[string, string, string]> = [];
    const set: Array<[string, boolean]> = [
      ['instructions', spec.instructions !== undefined],
      ['temperature', spec.temperature !== undefined],
      ['maxTokens', spec.maxTokens !== undefined],
      ['responseSchema', spec.responseSchema !== undefined],
      ['mcpServers', (spec.mcpServers ?? []).length > 0],
    ];
    if (!callsUpstream(r.kind)) {
      for (const [field, isSet] of set) {
        if (isSet) {
          out.push([field, `role '${role}' is a ${r.kind}: it dispatches tasks and makes no model calls, so its ${field} would never be used`, 'set it on the workers (or mesh peers) that do the work, or remove it']);
        }
      }
      return out;
    }
    if (spec.instructions === undefined) {
      for (const [field, isSet] of set.slice(1, 4)) {
        if (isSet) out.push([field, `role '${role}' sets ${field} but no instructions, and the runtime's call defaults come with the role's system prompt`, `add instructions to role '${role}'`]);
      }
    } else {
      const chars = [...spec.instructions].length;
      if (spec.instructions.trim() === '') out.push(['instructions', 'is empty', "write the role's system prompt, or leave instructions out"]);
      if (chars > MAX_INSTRUCTIONS) out.push(['instructions', `${chars} characters, over the ${MAX_INSTRUCTIONS} the runtime accepts`, `shorten them to at most ${MAX_INSTRUCTIONS} characters (move reference material into an MCP tool)`]);
    }
    const t = spec.temperature;
    if (t !== undefined && !(Number.isFinite(t) && t >= 0 && t <= 2)) out.push(['temperature', `${t} is out of range`, 'use a number from 0 to 2']);
    const mt = spec.maxTokens;
    if (mt !== undefined) {
      if (!Number.isInteger(mt) || mt < 1) {
        out.push(['maxTokens', `${mt} is not a whole number >= 1`, 'use 1 or more tokens']);
      } else {
        for (const m of models.filter((id) => this.catalog.has(id))) {
          const window = this.catalog._resolve(m).contextWindowTokens;
          if (mt > window) out.push(['maxTokens', `${mt} exceeds the ${window}-token context window of model '${m}'`, `use at most ${window}`]);
        }
      }
    }
    if (spec.responseSchema) out.push(...spec.responseSchema._problems());
    const names = new Map<string, number>();
    for (const [i, server] of (spec.mcpServers ?? []).entries()) {
      for (const [field, what, fix] of server._problems(this.namespace)) out.push([`mcpServers[${i}].${field}`, what, fix]);
      const first = names.get(server.name);
      if (first !== undefined) out.push([`mcpServers[${i}].name`, `'${server.name}' is also the name of mcpServers[${first}]`, 'give each server of a role its own name']);
      else names.set(server.name, i);
    }
    for (const [field, value] of [['maxToolRounds', spec.maxToolRounds], ['toolCallTimeoutMs', spec.toolCallTimeoutMs]] as const) {
      const bad = toolSettingProblem(field, value);
      if (bad) out.push([field, ...bad]);
    }
    return out;
  }

  /**
   * One allow rule per topology edge, on both ends (the callee's ingress and
   * the caller's egress), on top of the namespace's default-deny. A mesh uses
   * one label-based policy instead, so its size does not grow with the square
   * of the member count.
   */
  private createNetworkPolicies(props: AgentClusterProps): void {
    const topo = this.topology;
    const ns = this.namespace;
    const grpc = [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(GRPC_PORT) }];
    const roleSel = (role: string) => ({ matchLabels: selectorLabels(this.name, role) });
    const upstreamRules: k8s.NetworkPolicyEgressRule[] = (props.upstreamEgress ?? [{ cidr: '0.0.0.0/0', except: CLUSTER_RANGES }]).map((e) => ({
      to: [{ ipBlock: { cidr: e.cidr, except: e.except } }],
      ports: (e.ports ?? [443]).map((p) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(p) })),
    }));
    const apiFrom: k8s.NetworkPolicyPeer = {
      podSelector: { matchLabels: props.apiClientPodLabels ?? { [LABEL_API_CLIENT]: 'true' } },
      namespaceSelector: props.apiClientNamespaceLabels ? { matchLabels: props.apiClientNamespaceLabels } : undefined,
    };

    if (topo.kind === TopologyKind.MESH) {
      const member = { matchLabels: { [LABEL_MESH]: this.name } };
      new KubeNetworkPolicy(this, 'mesh-policy', {
        metadata: { name: `${this.name}-mesh`, namespace: ns },
        spec: {
          podSelector: member,
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ from: [{ podSelector: member }], ports: grpc }],
          egress: [{ to: [{ podSelector: member }], ports: grpc }, ...upstreamRules],
        },
      });
    } else {
      const done = new Set<string>();
      for (const r of topo.roles) {
        const role = r.spec.name;
        // duplicates and reserved names are reported, not built
        if (done.has(role) || !this.agents.has(role)) continue;
        done.add(role);
        const callers = topo.callersOf(role);
        const callees = topo.calleesOf(role);
        const ingress = callers.map((c) => ({ from: [{ podSelector: roleSel(c) }], ports: grpc }));
        const egress: k8s.NetworkPolicyEgressRule[] = callees.map((c) => ({ to: [{ podSelector: roleSel(c) }], ports: grpc }));
        if (callsUpstream(r.kind)) egress.push(...upstreamRules);
        if (ingress.length === 0 && egress.length === 0) continue;
        const policyTypes = [...(ingress.length > 0 ? ['Ingress'] : []), ...(egress.length > 0 ? ['Egress'] : [])];
        new KubeNetworkPolicy(this, `${role}-policy`, {
          metadata: { name: `${role}-peers`, namespace: ns },
          spec: {
            podSelector: roleSel(role),
            policyTypes,
            ingress: ingress.length > 0 ? ingress : undefined,
            egress: egress.length > 0 ? egress : undefined,
          },
        });
      }
    }

    // Tools: one egress rule per MCP server, only for the roles that list it
    // (a policy of its own, so it applies in every topology, mesh included).
    const withTools = new Set<string>();
    for (const r of topo.roles) {
      const servers = r.spec.mcpServers ?? [];
      if (servers.length === 0 || !callsUpstream(r.kind) || withTools.has(r.spec.name) || !this.agents.has(r.spec.name)) continue;
      withTools.add(r.spec.name);
      new KubeNetworkPolicy(this, `${r.spec.name}-mcp-policy`, {
        metadata: { name: `${r.spec.name}-mcp`, namespace: ns },
        spec: { podSelector: roleSel(r.spec.name), policyTypes: ['Egress'], egress: servers.map((m) => m._egressRule(ns)) },
      });
    }

    if (!this.agents.has(this.entryRole)) return;
    new KubeNetworkPolicy(this, 'entry-policy', {
      metadata: { name: `${this.entryRole}-api`, namespace: ns },
      spec: {
        podSelector: roleSel(this.entryRole),
        policyTypes: ['Ingress'],
        ingress: [{ from: [apiFrom], ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(HTTP_PORT) }] }],
      },
    });
  }
}


/** Cluster-wide props the API server or the runtime's config schema would refuse, one line each. */
function clusterProblems(props: AgentClusterProps, name: string, namespace: string): string[] {
  const out: string[] = [];
  if (!isDnsLabel(name)) out.push(problem('name', `'${name}' is not a DNS label`, 'use lower-case letters, digits and dashes, at most 63 characters'));
  if (!isDnsLabel(namespace)) out.push(problem('namespace', `'${namespace}' is not a DNS label`, 'use lower-case letters, digits and dashes, at most 63 characters'));
  out.push(...upstreamProblems(props.upstream, 'upstream'));
  const whole = (field: string, v: number | undefined, min: number, fix: string, max = Infinity) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= max)) out.push(problem(field, `${v} is not a whole number ${max === Infinity ? `>= ${min}` : `from ${min} to ${max}`}`, fix));
  };
  whole('fanOutConcurrency', props.fanOutConcurrency, 1, 'set 1 or more (tasks of one job in flight)');
  whole('maxInFlightTasks', props.maxInFlightTasks, 1, 'set 1 or more (tasks one pod accepts)');
  whole('defaultDeadlineMs', props.defaultDeadlineMs, 1, 'set a deadline in ms, e.g. 30000');
  whole('maxDeadlineMs', props.maxDeadlineMs, 1, 'set a deadline in ms, e.g. 120000');
  whole('drainSeconds', props.drainSeconds, 0, 'set 0 or more seconds');
  whole('retryMaxAttempts', props.retryMaxAttempts, 1, 'set 1 to 20 attempts', 20);
  whole('retryInitialDelayMs', props.retryInitialDelayMs, 0, 'set 0 or more ms');
  whole('retryMaxDelayMs', props.retryMaxDelayMs, 0, 'set 0 or more ms');
  whole('attemptTimeoutMs', props.attemptTimeoutMs, 1, 'set 1 or more ms');
  whole('maxTasksPerJob', props.maxTasksPerJob, 1, 'set 1 or more');
  whole('maxRequestBytes', props.maxRequestBytes, 1024, 'set 1024 or more bytes');
  const hourly = props.clusterHourlyBudgetUsd;
  if (hourly !== undefined && !(Number.isFinite(hourly) && hourly > 0)) {
    out.push(problem('clusterHourlyBudgetUsd', `${hourly} is not a number of USD above 0`, 'set the most the cluster may spend per hour, e.g. 20, or leave it out for no limit'));
  }
  const defaultMs = props.defaultDeadlineMs ?? 30000;
  const maxMs = props.maxDeadlineMs ?? 120000;
  if (maxMs < defaultMs) out.push(problem('maxDeadlineMs', `${maxMs} is below defaultDeadlineMs ${defaultMs}, so the runtime refuses its config`, `raise maxDeadlineMs to at least ${defaultMs} or lower defaultDeadlineMs`));
  const initial = props.retryInitialDelayMs ?? 200;
  const maxDelay = props.retryMaxDelayMs ?? 5000;
  if (initial > maxDelay) out.push(problem('retryInitialDelayMs', `${initial} is above retryMaxDelayMs ${maxDelay}, so the runtime refuses its config`, `lower retryInitialDelayMs to at most ${maxDelay}`));
  (props.upstreamEgress ?? []).forEach((e, i) => {
    for (const [j, cidr] of [e.cidr, ...(e.except ?? [])].entries()) {
      const field = j === 0 ? `upstreamEgress[${i}].cidr` : `upstreamEgress[${i}].except[${j - 1}]`;
      const bad = cidrProblem(cidr);
      if (bad) out.push(problem(field, bad, "write an address and prefix, e.g. '203.0.113.0/24'"));
    }
    (e.ports ?? []).forEach((port, j) => {
      if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) out.push(problem(`upstreamEgress[${i}].ports[${j}]`, `${port} is not a port`, 'use 1..65535'));
    });
  });
  return out;
}
