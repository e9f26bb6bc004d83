import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { AgentDeployment } from './agent-deployment';
import { JobQueueTarget } from './job-store';
import { KubeHorizontalPodAutoscalerV2 } from './l1';
import { problem, replicaBoundProblems } from './problems';

/** A Pods metric target (averaged over the role's pods). */
export interface PodsMetricTarget {
  /** Metric name, e.g. 'http_requests_per_second'. */
  readonly name: string;
  /** Target average per pod (a Kubernetes quantity, e.g. '100'). */
  readonly averageValue: string;
}

/** An External metric target, e.g. a queue depth from the metrics adapter. */
export interface ExternalMetricTarget {
  /** Metric name, e.g. 'gateway_requests_waiting' (for the job queue, use KEDA with a job store instead). */
  readonly name: string;
  /** Label selector of the series, e.g. { gateway: 'public' }. @default - all series */
  readonly matchLabels?: { [key: string]: string };
  /** Target average per pod (a Kubernetes quantity, e.g. '10'). */
  readonly averageValue: string;
}

/** One scaling policy: change by `value` pods or percent per `periodSeconds`. */
export interface ScalingPolicy {
  /** 'Pods' or 'Percent'. */
  readonly type: string;
  /** Pods or percent. */
  readonly value: number;
  /** Period the policy applies over, 1..1800 s. */
  readonly periodSeconds: number;
}

/** Scale-up or scale-down behavior. */
export interface ScalingRules {
  /** Seconds of recommendations considered before acting. */
  readonly stabilizationWindowSeconds: number;
  /** The policies. */
  readonly policies: ScalingPolicy[];
  /** 'Max', 'Min' or 'Disabled'. @default 'Max' */
  readonly selectPolicy?: string;
}

/** What to scale on and how fast; every field defaults to the reference coordinator HPA. */
export interface AutoscalingSpec {
  /** Lower bound. @default 3 */
  readonly minReplicas?: number;
  /** Upper bound. @default 20 */
  readonly maxReplicas?: number;
  /** Scale on CPU and memory utilisation. @default true */
  readonly resourceMetrics?: boolean;
  /** Target CPU utilisation in percent of requests (1..100). @default 70 */
  readonly cpuUtilizationPercent?: number;
  /** Target memory utilisation in percent of requests (1..100). @default 80 */
  readonly memoryUtilizationPercent?: number;
  /** Pods metrics (served by a custom metrics adapter you install). @default [] */
  readonly podsMetrics?: PodsMetricTarget[];
  /** External metrics (served by an external metrics adapter you install). @default [] */
  readonly externalMetrics?: ExternalMetricTarget[];
  /** Scale-up behavior. @default - no stabilisation; max of +100 % or +4 pods per 15 s */
  readonly scaleUp?: ScalingRules;
  /** Scale-down behavior. @default - 300 s stabilisation; at most -10 % per 60 s */
  readonly scaleDown?: ScalingRules;
}

/** Props of an AgentAutoscaler. */
export interface AgentAutoscalerProps extends AutoscalingSpec {
  /** The role to scale. */
  readonly target: AgentDeployment;
}

/**
 * An autoscaling/v2 HorizontalPodAutoscaler for one agent role, with explicit
 * behavior. The defaults are the reference coordinator HPA.
 */
export class AgentAutoscaler extends Construct {
  /** The HPA object. */
  public readonly hpa: k8s.KubeHorizontalPodAutoscalerV2;
  /** Lower bound in force. */
  public readonly minReplicas: number;
  /** Upper bound in force. */
  public readonly maxReplicas: number;

  constructor(scope: Construct, id: string, props: AgentAutoscalerProps) {
    super(scope, id);
    this.minReplicas = props.minReplicas ?? 3;
    this.maxReplicas = props.maxReplicas ?? 20;
    const useResources = props.resourceMetrics ?? true;
    const cpu = props.cpuUtilizationPercent ?? 70;
    const memory = props.memoryUtilizationPercent ?? 80;
    const pods = props.podsMetrics ?? [];
    const external = props.externalMetrics ?? [];
    const scaleUp = props.scaleUp ?? DEFAULT_SCALE_UP;
    const scaleDown = props.scaleDown ?? DEFAULT_SCALE_DOWN;

    const metrics: k8s.MetricSpecV2[] = [];
    if (useResources) {
      metrics.push(
        { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: cpu } } },
        { type: 'Resource', resource: { name: 'memory', target: { type: 'Utilization', averageUtilization: memory } } },
      );
    }
    for (const m of pods) {
      metrics.push({ type: 'Pods', pods: { metric: { name: m.name }, target: { type: 'AverageValue', averageValue: k8s.Quantity.fromString(m.averageValue) } } });
    }
    for (const m of external) {
      metrics.push({
        type: 'External',
        external: {
          metric: { name: m.name, selector: m.matchLabels ? { matchLabels: m.matchLabels } : undefined },
          target: { type: 'AverageValue', averageValue: k8s.Quantity.fromString(m.averageValue) },
        },
      });
    }

    this.hpa = new KubeHorizontalPodAutoscalerV2(this, 'hpa', {
      metadata: { name: props.target.role, namespace: props.target.namespace, labels: props.target.selector },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: props.target.deploymentName },
        minReplicas: this.minReplicas,
        maxReplicas: this.maxReplicas,
        metrics,
        behavior: { scaleUp: renderRules(scaleUp), scaleDown: renderRules(scaleDown) },
      },
    });
    props.target._ownedByAutoscaler();

    Node.of(this).addValidation({
      validate: () => {
        const errors = replicaBoundProblems(this.minReplicas, this.maxReplicas);
        if (useResources) errors.push(...utilizationProblems(cpu, memory));
        if (metrics.length === 0) errors.push(problem('metrics', 'no metric to scale on', 'enable resourceMetrics or give podsMetrics / externalMetrics'));
        errors.push(...scalingRuleProblems(scaleUp, scaleDown));
        return errors;
      },
    });
  }
}

const DEFAULT_SCALE_UP: ScalingRules = {
  stabilizationWindowSeconds: 0,
  policies: [
    { type: 'Percent', value: 100, periodSeconds: 15 },
    { type: 'Pods', value: 4, periodSeconds: 15 },
  ],
  selectPolicy: 'Max',
};
const DEFAULT_SCALE_DOWN: ScalingRules = {
  stabilizationWindowSeconds: 300,
  policies: [{ type: 'Percent', value: 10, periodSeconds: 60 }],
  selectPolicy: 'Max',
};

function renderRules(r: ScalingRules): k8s.HpaScalingRulesV2 {
  return {
    stabilizationWindowSeconds: r.stabilizationWindowSeconds,
    selectPolicy: r.selectPolicy ?? 'Max',
    policies: r.policies.map((p) => ({ type: p.type, value: p.value, periodSeconds: p.periodSeconds })),
  };
}

function utilizationProblems(cpu: number, memory: number): string[] {
  const out: string[] = [];
  for (const [field, v] of [['cpuUtilizationPercent', cpu], ['memoryUtilizationPercent', memory]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 100) out.push(problem(field, `${v} is out of range`, 'use a whole percentage from 1 to 100'));
  }
  return out;
}

function scalingRuleProblems(scaleUp: ScalingRules, scaleDown: ScalingRules): string[] {
  const out: string[] = [];
  for (const [dir, r] of [['scaleUp', scaleUp], ['scaleDown', scaleDown]] as const) {
    if (!(r.stabilizationWindowSeconds >= 0 && r.stabilizationWindowSeconds <= 3600)) out.push(problem(`${dir}.stabilizationWindowSeconds`, `${r.stabilizationWindowSeconds} is out of range`, 'use 0..3600 seconds'));
    if (!['Max', 'Min', 'Disabled'].includes(r.selectPolicy ?? 'Max')) out.push(problem(`${dir}.selectPolicy`, `'${r.selectPolicy}' is unknown`, "use 'Max', 'Min' or 'Disabled'"));
    for (const [i, p] of r.policies.entries()) {
      if (!['Pods', 'Percent'].includes(p.type)) out.push(problem(`${dir}.policies[${i}].type`, `'${p.type}' is unknown`, "use 'Pods' or 'Percent'"));
      if (!(p.value > 0)) out.push(problem(`${dir}.policies[${i}].value`, `${p.value} must be > 0`, 'use a positive value'));
      if (!(p.periodSeconds >= 1 && p.periodSeconds <= 1800)) out.push(problem(`${dir}.policies[${i}].periodSeconds`, `${p.periodSeconds} is out of range`, 'use 1..1800 seconds'));
    }
  }
  return out;
}

/** What a KEDA trigger needs to know about the role it scales. */
interface KedaTriggerContext {
  readonly namespace: string;
  readonly role: string;
  readonly prometheusServerAddress: string;
  /** The job consumer, when the cluster has a job store KEDA can read. */
  readonly jobQueue?: JobQueueTarget;
}

/**
 * One signal a KEDA ScaledObject scales on. Each names only metrics the
 * agent runtime exports on /metrics (see agent-runtime/src/metrics.ts).
 */
export class KedaTrigger {
  /**
   * Load against capacity: the tasks the role's pods hold
   * (`agent_tasks_held`) in units of one pod's capacity
   * (`agent_task_capacity`), so KEDA keeps each pod at `targetUtilization`
   * of its maxInFlightTasks. Queried from Prometheus.
   * @param targetUtilization fraction of capacity each pod should carry, in (0, 1]
   */
  public static taskLoad(targetUtilization: number = 0.7): KedaTrigger {
    return new KedaTrigger('taskLoad', targetUtilization, (ctx) => {
      const sel = `{namespace="${ctx.namespace}",role="${ctx.role}"}`;
      return {
        type: 'prometheus',
        metricType: 'AverageValue',
        metadata: {
          serverAddress: ctx.prometheusServerAddress,
          query: `sum(agent_tasks_held${sel}) / max(agent_task_capacity${sel})`,
          threshold: String(targetUtilization),
        },
      };
    });
  }

  /**
   * Jobs waiting: the pending count of the cluster's job consumer on NATS
   * JetStream (KEDA's nats-jetstream scaler, reading the NATS monitoring
   * endpoint), so KEDA keeps about `lagThreshold` queued jobs per pod of the
   * role that pulls jobs (the entry). Needs the cluster's `jobStore`
   * (synthesized, or external with a `monitoringEndpoint`).
   * @param lagThreshold queued jobs per pod, a whole number >= 1
   */
  public static jobQueue(lagThreshold: number = 10): KedaTrigger {
    return new KedaTrigger('jobQueue', lagThreshold, (ctx) => ({
      type: 'nats-jetstream',
      metadata: {
        natsServerMonitoringEndpoint: ctx.jobQueue?.monitoringEndpoint ?? '',
        account: ctx.jobQueue?.account ?? '$G',
        stream: ctx.jobQueue?.stream ?? '',
        consumer: ctx.jobQueue?.consumer ?? '',
        lagThreshold: String(lagThreshold),
      },
    }));
  }

  /** CPU utilisation in percent of requests (KEDA's cpu scaler, metrics-server). */
  public static cpu(utilizationPercent: number = 70): KedaTrigger {
    return new KedaTrigger('cpu', utilizationPercent, () => ({ type: 'cpu', metricType: 'Utilization', metadata: { value: String(utilizationPercent) } }));
  }

  /** Memory utilisation in percent of requests (KEDA's memory scaler, metrics-server). */
  public static memory(utilizationPercent: number = 80): KedaTrigger {
    return new KedaTrigger('memory', utilizationPercent, () => ({ type: 'memory', metricType: 'Utilization', metadata: { value: String(utilizationPercent) } }));
  }

  private constructor(
    /** Which signal: taskLoad, jobQueue, cpu or memory. */
    public readonly signal: string,
    /** Its target value. */
    public readonly target: number,
    private readonly render: (ctx: KedaTriggerContext) => Record<string, unknown>,
  ) {}

  /** @internal */
  public _render(ctx: KedaTriggerContext): Record<string, unknown> {
    return this.render(ctx);
  }

  /** @internal */
  public _problems(index: number, ctx: KedaTriggerContext): string[] {
    const field = `triggers[${index}]`;
    if (this.signal === 'jobQueue') {
      const out: string[] = [];
      if (!(Number.isInteger(this.target) && this.target >= 1)) out.push(problem(field, `jobQueue lagThreshold ${this.target} is not a whole number >= 1`, 'use e.g. KedaTrigger.jobQueue(10)'));
      if (!ctx.jobQueue) {
        out.push(problem(field, 'jobQueue scales on the job consumer, and this role has no job store KEDA can read', 'give the AgentCluster jobStore: JobStore.jetStream() (or JobStore.external with a monitoringEndpoint) and use it on the entry role, or use another trigger'));
      }
      return out;
    }
    if (this.signal === 'taskLoad') {
      return this.target > 0 && this.target <= 1 ? [] : [problem(field, `taskLoad target ${this.target} is not a fraction of capacity in (0, 1]`, 'use e.g. KedaTrigger.taskLoad(0.7)')];
    }
    return Number.isInteger(this.target) && this.target >= 1 && this.target <= 100 ? [] : [problem(field, `${this.signal} target ${this.target} is out of range`, 'use a whole percentage from 1 to 100')];
  }
}

/** Bounds and triggers of a KEDA ScaledObject. */
export interface KedaScalingOptions {
  /** Lower bound. @default 2 */
  readonly minReplicas?: number;
  /** Upper bound. @default 20 */
  readonly maxReplicas?: number;
  /** What to scale on. @default - [KedaTrigger.jobQueue(), KedaTrigger.cpu(70)] for the role that pulls jobs from a job store; else [KedaTrigger.taskLoad(0.7), KedaTrigger.cpu(70)] */
  readonly triggers?: KedaTrigger[];
  /** Prometheus that KEDA queries for the taskLoad trigger. @default 'http://prometheus-operated.monitoring.svc:9090' */
  readonly prometheusServerAddress?: string;
  /** Seconds between KEDA's checks of each trigger. @default 15 */
  readonly pollingIntervalSeconds?: number;
  /** Scale-up behavior of the HPA that KEDA manages. @default - no stabilisation; max of +100 % or +4 pods per 15 s */
  readonly scaleUp?: ScalingRules;
  /** Scale-down behavior of the HPA that KEDA manages. @default - 300 s stabilisation; at most -10 % per 60 s */
  readonly scaleDown?: ScalingRules;
}

/** Props of an AgentScaledObject. */
export interface AgentScaledObjectProps extends KedaScalingOptions {
  /** The role to scale. */
  readonly target: AgentDeployment;
  /** The job consumer KedaTrigger.jobQueue reads; AgentCluster sets it for its entry role when it has a job store. @default - none */
  readonly jobQueue?: JobQueueTarget;
}

/**
 * A KEDA ScaledObject (keda.sh/v1alpha1) for one agent role. Needs KEDA
 * installed; KEDA creates and owns the HPA, so the Deployment carries no
 * replica count.
 */
export class AgentScaledObject extends Construct {
  /** The ScaledObject. */
  public readonly scaledObject: ApiObject;
  /** Lower bound in force. */
  public readonly minReplicas: number;
  /** Upper bound in force. */
  public readonly maxReplicas: number;

  constructor(scope: Construct, id: string, props: AgentScaledObjectProps) {
    super(scope, id);
    this.minReplicas = props.minReplicas ?? 2;
    this.maxReplicas = props.maxReplicas ?? 20;
    const triggers = props.triggers ?? (props.jobQueue ? [KedaTrigger.jobQueue(), KedaTrigger.cpu()] : [KedaTrigger.taskLoad(), KedaTrigger.cpu()]);
    const address = props.prometheusServerAddress ?? 'http://prometheus-operated.monitoring.svc:9090';
    const polling = props.pollingIntervalSeconds ?? 15;
    const scaleUp = props.scaleUp ?? DEFAULT_SCALE_UP;
    const scaleDown = props.scaleDown ?? DEFAULT_SCALE_DOWN;
    const target = props.target;
    const ctx: KedaTriggerContext = { namespace: target.namespace ?? 'default', role: target.role, prometheusServerAddress: address, jobQueue: props.jobQueue };
    this.scaledObject = new ApiObject(this, 'scaled-object', {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: target.role, namespace: target.namespace, labels: target.selector },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target.deploymentName },
        minReplicaCount: this.minReplicas,
        maxReplicaCount: this.maxReplicas,
        pollingInterval: polling,
        advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleUp: renderRules(scaleUp), scaleDown: renderRules(scaleDown) } } },
        triggers: triggers.map((t) => t._render(ctx)),
      },
    });
    target._ownedByAutoscaler();

    Node.of(this).addValidation({
      validate: () => {
        const errors = replicaBoundProblems(this.minReplicas, this.maxReplicas);
        if (triggers.length === 0) errors.push(problem('triggers', 'no trigger to scale on', 'give at least one KedaTrigger, e.g. KedaTrigger.taskLoad()'));
        triggers.forEach((t, i) => errors.push(...t._problems(i, ctx)));
        if (!/^https?:\/\/[^\s/]+/.test(address)) errors.push(problem('prometheusServerAddress', `'${address}' is not an http(s) URL`, "give the Prometheus URL KEDA can reach, e.g. 'http://prometheus-operated.monitoring.svc:9090'"));
        if (!(Number.isInteger(polling) && polling >= 1)) errors.push(problem('pollingIntervalSeconds', `${polling} is not a whole number >= 1`, 'use 1 or more seconds'));
        errors.push(...scalingRuleProblems(scaleUp, scaleDown));
        return errors;
      },
    });
  }
}

/** Options of the default, metrics-server based HPA. */
export interface ResourceScalingOptions {
  /** Lower bound. @default 3 */
  readonly minReplicas?: number;
  /** Upper bound. @default 20 */
  readonly maxReplicas?: number;
  /** Target CPU utilisation in percent of requests (1..100). @default 70 */
  readonly cpuUtilizationPercent?: number;
  /** Target memory utilisation in percent of requests (1..100). @default 80 */
  readonly memoryUtilizationPercent?: number;
  /** Scale-up behavior. @default - no stabilisation; max of +100 % or +4 pods per 15 s */
  readonly scaleUp?: ScalingRules;
  /** Scale-down behavior. @default - 300 s stabilisation; at most -10 % per 60 s */
  readonly scaleDown?: ScalingRules;
}

/**
 * How a role scales. `Autoscaling.resource()` works on any cluster with
 * metrics-server; `Autoscaling.keda()` needs KEDA (and Prometheus for the
 * taskLoad trigger); `Autoscaling.hpa()` takes a full HPA spec for metrics
 * served by an adapter you run.
 */
export class Autoscaling {
  /** An autoscaling/v2 HPA on CPU and memory (Resource metrics only). */
  public static resource(options: ResourceScalingOptions = {}): Autoscaling {
    return new Autoscaling('resource', options.minReplicas ?? 3, options.maxReplicas ?? 20, (scope, id, target) =>
      new AgentAutoscaler(scope, id, { ...options, resourceMetrics: true, target }),
    );
  }

  /** A KEDA ScaledObject; by default on task load (Prometheus) and CPU. */
  public static keda(options: KedaScalingOptions = {}): Autoscaling {
    return new Autoscaling('keda', options.minReplicas ?? 2, options.maxReplicas ?? 20, (scope, id, target, jobQueue) => new AgentScaledObject(scope, id, { ...options, target, jobQueue }));
  }

  /** An autoscaling/v2 HPA with any metrics (Pods and External ones need a metrics adapter). */
  public static hpa(spec: AutoscalingSpec): Autoscaling {
    return new Autoscaling('hpa', spec.minReplicas ?? 3, spec.maxReplicas ?? 20, (scope, id, target) => new AgentAutoscaler(scope, id, { ...spec, target }));
  }

  private constructor(
    /** resource, keda or hpa. */
    public readonly kind: string,
    /** Lower bound: the replicas the role is sized with at synth. */
    public readonly minReplicas: number,
    /** Upper bound. */
    public readonly maxReplicas: number,
    private readonly attach: (scope: Construct, id: string, target: AgentDeployment, jobQueue?: JobQueueTarget) => Construct,
  ) {}

  /** Creates the autoscaling object for `target`; `jobQueue` when the target pulls jobs from a job store. @internal */
  public _attach(scope: Construct, id: string, target: AgentDeployment, jobQueue?: JobQueueTarget): Construct {
    return this.attach(scope, id, target, jobQueue);
  }
}
