import { Construct, Node } from 'constructs';
import { KubePriorityClass } from './l1';

/** Props of a PriorityClass. */
export interface PriorityClassProps {
  /** Cluster-wide name. @default - the construct id */
  readonly name?: string;
  /** Priority; higher is scheduled first and may preempt lower. Must be <= 1000000000. */
  readonly value: number;
  /** Make this the priority of pods that name no class. @default false */
  readonly globalDefault?: boolean;
  /** 'PreemptLowerPriority' or 'Never'. @default 'PreemptLowerPriority' */
  readonly preemptionPolicy?: string;
  /** What the class is for. @default - none */
  readonly description?: string;
}

/**
 * A scheduling.k8s.io/v1 PriorityClass (cdk8s-plus has no construct for it).
 */
export class PriorityClass extends Construct {
  /** The coordinator/supervisor class of the reference deployment. */
  public static readonly HIGH_PRIORITY_AGENT = 'high-priority-agent';
  /** The worker class. */
  public static readonly AGENT_WORKER = 'agent-worker';

  /** The class name pods refer to. */
  public readonly name: string;

  constructor(scope: Construct, id: string, props: PriorityClassProps) {
    super(scope, id);
    this.name = props.name ?? id;
    const preemption = props.preemptionPolicy ?? 'PreemptLowerPriority';
    new KubePriorityClass(this, 'resource', {
      metadata: { name: this.name },
      value: props.value,
      globalDefault: props.globalDefault ?? false,
      preemptionPolicy: preemption,
      description: props.description,
    });
    // cdk8s prints the construct path before each line
    Node.of(this).addValidation({
      validate: () => {
        const errors: string[] = [];
        if (!Number.isInteger(props.value) || props.value > 1_000_000_000 || props.value < -2_147_483_648) {
          errors.push(`value: ${props.value} is out of range. Fix: use a whole number up to 1000000000 (higher values are reserved for system classes).`);
        }
        if (!['PreemptLowerPriority', 'Never'].includes(preemption)) {
          errors.push(`preemptionPolicy: '${preemption}' is unknown. Fix: use 'PreemptLowerPriority' or 'Never'.`);
        }
        return errors;
      },
    });
  }
}
