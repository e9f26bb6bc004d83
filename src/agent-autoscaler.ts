import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { AgentDeployment } from './agent-deployment';
import { KubeHorizontalPodAutoscalerV2 } from './l1';

/** A Pods metric target (averaged over the role's pods). */
export interface PodsMetricTarget {
  /** Metric name, e.g. 'http_requests_per_second'. */
  readonly name: string;
  /** Target average per pod (a Kubernetes quantity, e.g. '100'). */
  readonly averageValue: string;
}

/** An External metric target, e.g. a queue depth from the metrics adapter. */
export interface ExternalMetricTarget {
  /** Metric name, e.g. 'task_queue_depth'. */
  readonly name: string;
  /** Label selector of the series, e.g. { queue: 'agent-tasks' }. @default - all series */
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
  /** Pods metrics. @default [{ name: 'http_requests_per_second', averageValue: '100' }] */
  readonly podsMetrics?: PodsMetricTarget[];
  /** External metrics. @default [] */
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
  /**
   * The queue-driven preset for task executors: External metric
   * `task_queue_depth{queue=agent-tasks}` averaging 10 per pod, 5..50 pods.
   */
  public static queueDepthSpec(queue: string = 'agent-tasks'): AutoscalingSpec {
    return {
      minReplicas: 5,
      maxReplicas: 50,
      resourceMetrics: false,
      podsMetrics: [],
      externalMetrics: [{ name: 'task_queue_depth', matchLabels: { queue }, averageValue: '10' }],
    };
  }

  /** The reference coordinator HPA (every default). */
  public static coordinatorSpec(): AutoscalingSpec {
    return {};
  }

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
    const pods = props.podsMetrics ?? [{ name: 'http_requests_per_second', averageValue: '100' }];
    const external = props.externalMetrics ?? [];
    const scaleUp: ScalingRules = props.scaleUp ?? {
      stabilizationWindowSeconds: 0,
      policies: [
        { type: 'Percent', value: 100, periodSeconds: 15 },
        { type: 'Pods', value: 4, periodSeconds: 15 },
      ],
      selectPolicy: 'Max',
    };
    const scaleDown: ScalingRules = props.scaleDown ?? {
      stabilizationWindowSeconds: 300,
      policies: [{ type: 'Percent', value: 10, periodSeconds: 60 }],
      selectPolicy: 'Max',
    };

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

    const rules = (r: ScalingRules): k8s.HpaScalingRulesV2 => ({
      stabilizationWindowSeconds: r.stabilizationWindowSeconds,
      selectPolicy: r.selectPolicy ?? 'Max',
      policies: r.policies.map((p) => ({ type: p.type, value: p.value, periodSeconds: p.periodSeconds })),
    });

    this.hpa = new KubeHorizontalPodAutoscalerV2(this, 'hpa', {
      metadata: { name: props.target.role, namespace: props.target.namespace, labels: props.target.selector },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: props.target.deploymentName },
        minReplicas: this.minReplicas,
        maxReplicas: this.maxReplicas,
        metrics,
        behavior: { scaleUp: rules(scaleUp), scaleDown: rules(scaleDown) },
      },
    });

    const path = this.node.path;
    const fail = (field: string, problem: string, fix: string) => `[${path}] ${field}: ${problem}. Fix: ${fix}.`;
    Node.of(this).addValidation({
      validate: () => {
        const errors: string[] = [];
        if (!Number.isInteger(this.minReplicas) || this.minReplicas < 1) errors.push(fail('minReplicas', `${this.minReplicas} is not a whole number >= 1`, 'set minReplicas to 1 or more'));
        if (!Number.isInteger(this.maxReplicas)) errors.push(fail('maxReplicas', `${this.maxReplicas} is not a whole number`, 'set a whole number'));
        if (this.minReplicas > this.maxReplicas) errors.push(fail('minReplicas', `minReplicas ${this.minReplicas} exceeds maxReplicas ${this.maxReplicas}`, `lower minReplicas to at most ${this.maxReplicas} or raise maxReplicas`));
        if (useResources) {
          for (const [field, v] of [['cpuUtilizationPercent', cpu], ['memoryUtilizationPercent', memory]] as const) {
            if (!Number.isInteger(v) || v < 1 || v > 100) errors.push(fail(field, `${v} is out of range`, 'use a whole percentage from 1 to 100'));
          }
        }
        if (metrics.length === 0) errors.push(fail('metrics', 'no metric to scale on', 'enable resourceMetrics or give podsMetrics / externalMetrics'));
        for (const [dir, r] of [['scaleUp', scaleUp], ['scaleDown', scaleDown]] as const) {
          if (r.stabilizationWindowSeconds < 0 || r.stabilizationWindowSeconds > 3600) errors.push(fail(`${dir}.stabilizationWindowSeconds`, `${r.stabilizationWindowSeconds} is out of range`, 'use 0..3600 seconds'));
          if (!['Max', 'Min', 'Disabled'].includes(r.selectPolicy ?? 'Max')) errors.push(fail(`${dir}.selectPolicy`, `'${r.selectPolicy}' is unknown`, "use 'Max', 'Min' or 'Disabled'"));
          for (const [i, p] of r.policies.entries()) {
            if (!['Pods', 'Percent'].includes(p.type)) errors.push(fail(`${dir}.policies[${i}].type`, `'${p.type}' is unknown`, "use 'Pods' or 'Percent'"));
            if (!(p.value > 0)) errors.push(fail(`${dir}.policies[${i}].value`, `${p.value} must be > 0`, 'use a positive value'));
            if (!(p.periodSeconds >= 1 && p.periodSeconds <= 1800)) errors.push(fail(`${dir}.policies[${i}].periodSeconds`, `${p.periodSeconds} is out of range`, 'use 1..1800 seconds'));
          }
        }
        return errors;
      },
    });
  }
}
