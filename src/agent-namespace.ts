import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { KubeLimitRange, KubeNamespace, KubeNetworkPolicy, KubeResourceQuota } from './l1';
import { isDnsLabel } from './labels';

/** Namespace-wide ceilings (a ResourceQuota). */
export interface AgentQuota {
  /** Sum of CPU requests. @default - unlimited */
  readonly requestsCpu?: string;
  /** Sum of memory requests. @default - unlimited */
  readonly requestsMemory?: string;
  /** Sum of CPU limits. @default - unlimited */
  readonly limitsCpu?: string;
  /** Sum of memory limits. @default - unlimited */
  readonly limitsMemory?: string;
  /** Number of pods. @default - unlimited */
  readonly pods?: number;
}

/** Per-container defaults and bounds (a LimitRange). */
export interface AgentLimitRange {
  /** Default CPU request. @default '250m' */
  readonly defaultCpuRequest?: string;
  /** Default memory request. @default '256Mi' */
  readonly defaultMemoryRequest?: string;
  /** Default CPU limit. @default '1' */
  readonly defaultCpuLimit?: string;
  /** Default memory limit. @default '1Gi' */
  readonly defaultMemoryLimit?: string;
  /** Largest CPU limit allowed. @default - none */
  readonly maxCpu?: string;
  /** Largest memory limit allowed. @default - none */
  readonly maxMemory?: string;
}

/** Props of an AgentNamespace. */
export interface AgentNamespaceProps {
  /** Namespace name. @default - the construct id */
  readonly name?: string;
  /** Pod Security Standard version the labels pin. @default 'v1.28' */
  readonly podSecurityVersion?: string;
  /** Extra labels. @default - none */
  readonly labels?: { [key: string]: string };
  /** A ResourceQuota. @default - none */
  readonly quota?: AgentQuota;
  /** A LimitRange. @default - none */
  readonly limitRange?: AgentLimitRange;
}

/**
 * A namespace locked down by default: Pod Security Admission enforces the
 * "restricted" standard, and a default-deny NetworkPolicy blocks all traffic
 * but DNS until allow rules open the paths a topology needs.
 */
export class AgentNamespace extends Construct {
  /** Namespace name. */
  public readonly name: string;

  constructor(scope: Construct, id: string, props: AgentNamespaceProps = {}) {
    super(scope, id);
    this.name = props.name ?? id;
    const version = props.podSecurityVersion ?? 'v1.28';
    const pss: Record<string, string> = {};
    for (const mode of ['enforce', 'audit', 'warn']) {
      pss[`pod-security.kubernetes.io/${mode}`] = 'restricted';
      pss[`pod-security.kubernetes.io/${mode}-version`] = version;
    }
    new KubeNamespace(this, 'namespace', {
      metadata: { name: this.name, labels: { ...(props.labels ?? {}), ...pss } },
    });

    new KubeNetworkPolicy(this, 'default-deny', {
      metadata: { name: 'default-deny', namespace: this.name },
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
    });
    new KubeNetworkPolicy(this, 'allow-dns', {
      metadata: { name: 'allow-dns', namespace: this.name },
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
              },
            ],
            ports: [
              { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
              { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
            ],
          },
        ],
      },
    });

    if (props.quota) {
      const q = props.quota;
      const hard: Record<string, k8s.Quantity> = {};
      if (q.requestsCpu) hard['requests.cpu'] = k8s.Quantity.fromString(q.requestsCpu);
      if (q.requestsMemory) hard['requests.memory'] = k8s.Quantity.fromString(q.requestsMemory);
      if (q.limitsCpu) hard['limits.cpu'] = k8s.Quantity.fromString(q.limitsCpu);
      if (q.limitsMemory) hard['limits.memory'] = k8s.Quantity.fromString(q.limitsMemory);
      if (q.pods !== undefined) hard.pods = k8s.Quantity.fromNumber(q.pods);
      new KubeResourceQuota(this, 'quota', { metadata: { name: 'agents', namespace: this.name }, spec: { hard } });
    }
    if (props.limitRange) {
      const l = props.limitRange;
      const q = (v: string) => k8s.Quantity.fromString(v);
      const max: Record<string, k8s.Quantity> = {};
      if (l.maxCpu) max.cpu = q(l.maxCpu);
      if (l.maxMemory) max.memory = q(l.maxMemory);
      new KubeLimitRange(this, 'limit-range', {
        metadata: { name: 'agents', namespace: this.name },
        spec: {
          limits: [
            {
              type: 'Container',
              defaultRequest: { cpu: q(l.defaultCpuRequest ?? '250m'), memory: q(l.defaultMemoryRequest ?? '256Mi') },
              default: { cpu: q(l.defaultCpuLimit ?? '1'), memory: q(l.defaultMemoryLimit ?? '1Gi') },
              max: Object.keys(max).length > 0 ? max : undefined,
            },
          ],
        },
      });
    }

    // cdk8s prints the construct path before each line
    Node.of(this).addValidation({
      validate: () =>
        isDnsLabel(this.name) ? [] : [`name: '${this.name}' is not a DNS label. Fix: use lower-case letters, digits and dashes, at most 63 characters.`],
    });
  }
}
