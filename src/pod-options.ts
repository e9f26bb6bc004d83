import { k8s } from 'cdk8s-plus-28';
import { imageProblems } from './images';
import { problem } from './problems';
import { parseQuantity } from './quantity';

/** The value of an extra environment variable: a literal or a key of a Secret or ConfigMap. */
export class EnvValue {
  /** A literal value (never a secret: use fromSecret). */
  public static fromValue(value: string): EnvValue {
    return new EnvValue({ value });
  }

  /** A key of an existing Secret (only referenced, never read). */
  public static fromSecret(secretName: string, key: string, optional?: boolean): EnvValue {
    return new EnvValue({ valueFrom: { secretKeyRef: { name: secretName, key, optional } } });
  }

  /** A key of an existing ConfigMap. */
  public static fromConfigMap(configMapName: string, key: string, optional?: boolean): EnvValue {
    return new EnvValue({ valueFrom: { configMapKeyRef: { name: configMapName, key, optional } } });
  }

  private constructor(private readonly source: Omit<k8s.EnvVar, 'name'>) {}

  /** @internal */
  public _toEnvVar(name: string): k8s.EnvVar {
    return { name, ...this.source };
  }

  /** @internal */
  public _refName(): string | undefined {
    return this.source.valueFrom?.secretKeyRef?.name ?? this.source.valueFrom?.configMapKeyRef?.name;
  }
}

/** A toleration, so pods may run on tainted (dedicated or spot) nodes. */
export interface AgentToleration {
  /** Taint key; empty with operator Exists tolerates every taint. @default - every key (operator must be Exists) */
  readonly key?: string;
  /** 'Equal' or 'Exists'. @default 'Equal' */
  readonly operator?: string;
  /** Taint value (with operator Equal). @default - none */
  readonly value?: string;
  /** 'NoSchedule', 'PreferNoSchedule' or 'NoExecute'. @default - every effect */
  readonly effect?: string;
  /** Seconds a NoExecute taint is tolerated. @default - forever */
  readonly tolerationSeconds?: number;
}

/**
 * How a platform team shapes the pods: scheduling, registries, identity,
 * extra env, volumes and sidecars. Everything added is checked against Pod
 * Security "restricted" at synth. Set on the cluster (every role) and on a
 * role (added to, or for maps overriding, the cluster's).
 */
export interface AgentPodOptions {
  /** Tolerations for tainted nodes. @default - none */
  readonly tolerations?: AgentToleration[];
  /** Node labels the pods must run on, e.g. a dedicated pool. @default - none */
  readonly nodeSelector?: { [key: string]: string };
  /** Node and pod (anti-)affinity. @default - none */
  readonly affinity?: k8s.Affinity;
  /** Topology spread constraints; replace the default spread over hostname and zone. @default - spread by hostname and zone, ScheduleAnyway */
  readonly topologySpreadConstraints?: k8s.TopologySpreadConstraint[];
  /** Secrets for pulling images from private registries. @default - none */
  readonly imagePullSecrets?: string[];
  /** Extra pod annotations. @default - none */
  readonly podAnnotations?: { [key: string]: string };
  /** Extra pod labels (never the selector labels). @default - none */
  readonly podLabels?: { [key: string]: string };
  /** ServiceAccount annotations, e.g. cloud workload identity (eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account). @default - none */
  readonly serviceAccountAnnotations?: { [key: string]: string };
  /** Extra env of the agent container, by name. @default - none */
  readonly env?: { [name: string]: EnvValue };
  /** Extra pod volumes (restricted types only: configMap, secret, emptyDir, csi, downwardAPI, ephemeral, persistentVolumeClaim, projected). @default - none */
  readonly volumes?: k8s.Volume[];
  /** Extra mounts of the agent container. @default - none */
  readonly volumeMounts?: k8s.VolumeMount[];
  /** Extra containers in each pod; a missing securityContext gets the restricted one the agent has. @default - none */
  readonly sidecars?: k8s.Container[];
}

/** The cluster's options with a role's on top: lists add up, maps merge (the role wins). */
export function mergePodOptions(base: AgentPodOptions | undefined, over: AgentPodOptions | undefined): AgentPodOptions | undefined {
  if (!base) return over;
  if (!over) return base;
  const list = <T>(a?: T[], b?: T[]) => (a || b ? [...(a ?? []), ...(b ?? [])] : undefined);
  const map = <T>(a?: { [k: string]: T }, b?: { [k: string]: T }) => (a || b ? { ...(a ?? {}), ...(b ?? {}) } : undefined);
  return {
    tolerations: list(base.tolerations, over.tolerations),
    nodeSelector: map(base.nodeSelector, over.nodeSelector),
    affinity: over.affinity ?? base.affinity,
    topologySpreadConstraints: over.topologySpreadConstraints ?? base.topologySpreadConstraints,
    imagePullSecrets: list(base.imagePullSecrets, over.imagePullSecrets),
    podAnnotations: map(base.podAnnotations, over.podAnnotations),
    podLabels: map(base.podLabels, over.podLabels),
    serviceAccountAnnotations: map(base.serviceAccountAnnotations, over.serviceAccountAnnotations),
    env: map(base.env, over.env),
    volumes: list(base.volumes, over.volumes),
    volumeMounts: list(base.volumeMounts, over.volumeMounts),
    sidecars: list(base.sidecars, over.sidecars),
  };
}

/** The securityContext every container gets unless it sets its own (Pod Security "restricted"). */
export function restrictedContainerSecurityContext(): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

const RESTRICTED_VOLUME_TYPES = new Set(['configMap', 'csi', 'downwardApi', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const TOLERATION_OPERATORS = ['Equal', 'Exists'];
const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Qualified names as Kubernetes checks label and annotation keys: an optional DNS-subdomain prefix and a name.
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** True for a Secret or ConfigMap name the API server accepts (a DNS subdomain). */
export function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

/** Names the constructs use themselves. */
interface ReservedNames {
  readonly env: Set<string>;
  readonly volumes: Set<string>;
  readonly mountPaths: string[];
  readonly labels: Set<string>;
}

/** What the API server or Pod Security "restricted" would refuse in these options, one line each. */
export function podOptionProblems(o: AgentPodOptions, reserved: ReservedNames): string[] {
  const out: string[] = [];
  const p = (field: string, what: string, fix: string) => out.push(problem(`pods.${field}`, what, fix));
  (o.tolerations ?? []).forEach((t, i) => {
    const op = t.operator ?? 'Equal';
    if (!TOLERATION_OPERATORS.includes(op)) p(`tolerations[${i}].operator`, `'${op}' is unknown`, "use 'Equal' or 'Exists'");
    if (t.effect !== undefined && !TAINT_EFFECTS.includes(t.effect)) p(`tolerations[${i}].effect`, `'${t.effect}' is unknown`, "use 'NoSchedule', 'PreferNoSchedule' or 'NoExecute'");
    if (op === 'Exists' && t.value) p(`tolerations[${i}].value`, 'a value with operator Exists', 'drop the value or use operator Equal');
    if (!t.key && op !== 'Exists') p(`tolerations[${i}].key`, 'an empty key needs operator Exists', "set a key or operator 'Exists'");
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') p(`tolerations[${i}].tolerationSeconds`, 'only applies to effect NoExecute', "set effect 'NoExecute' or drop tolerationSeconds");
  });
  for (const [field, m] of [['nodeSelector', o.nodeSelector], ['podLabels', o.podLabels]] as const) {
    for (const [k, v] of Object.entries(m ?? {})) {
      if (!QUALIFIED_NAME.test(k)) p(`${field}`, `'${k}' is not a valid label key`, 'use [prefix/]name with letters, digits, - _ .');
      if (!LABEL_VALUE.test(v)) p(`${field}`, `'${v}' (for '${k}') is not a valid label value`, 'use at most 63 letters, digits, - _ . starting and ending alphanumeric');
    }
  }
  for (const k of Object.keys(o.podLabels ?? {})) if (reserved.labels.has(k)) p('podLabels', `'${k}' is set by the constructs (it selects the role's pods)`, 'choose another label key');
  for (const [field, m] of [['podAnnotations', o.podAnnotations], ['serviceAccountAnnotations', o.serviceAccountAnnotations]] as const) {
    for (const k of Object.keys(m ?? {})) if (!QUALIFIED_NAME.test(k)) p(field, `'${k}' is not a valid annotation key`, 'use [prefix/]name with letters, digits, - _ .');
  }
  (o.imagePullSecrets ?? []).forEach((s, i) => {
    if (!isDnsSubdomain(s)) p(`imagePullSecrets[${i}]`, `'${s}' is not a valid Secret name`, 'use lower-case letters, digits, dashes and dots');
  });
  for (const [name, v] of Object.entries(o.env ?? {})) {
    if (!ENV_NAME.test(name)) p(`env.${name}`, `'${name}' is not a valid variable name`, 'use letters, digits, _ - . not starting with a digit');
    if (reserved.env.has(name)) p(`env.${name}`, 'is set by the constructs (the runtime reads it)', 'use another name; change the value through its own prop');
    const ref = v._refName();
    if (ref !== undefined && !isDnsSubdomain(ref)) p(`env.${name}`, `'${ref}' is not a valid Secret/ConfigMap name`, 'use lower-case letters, digits, dashes and dots');
  }
  const volumeNames = new Set(reserved.volumes);
  (o.volumes ?? []).forEach((v, i) => {
    const type = Object.keys(v).find((k) => k !== 'name' && (v as unknown as Record<string, unknown>)[k] !== undefined);
    if (volumeNames.has(v.name)) p(`volumes[${i}].name`, `'${v.name}' is used twice or by the constructs`, 'choose another volume name');
    volumeNames.add(v.name);
    if (!type || !RESTRICTED_VOLUME_TYPES.has(type)) {
      p(`volumes[${i}]`, `volume '${v.name}' of type ${type ?? '(none)'} is not allowed by Pod Security restricted`, 'use configMap, secret, emptyDir, csi, downwardAPI, ephemeral, persistentVolumeClaim or projected');
    }
  });
  const checkMounts = (field: string, mounts: k8s.VolumeMount[]) => {
    mounts.forEach((m, i) => {
      if (!volumeNames.has(m.name)) p(`${field}[${i}].name`, `mounts volume '${m.name}', which no volume defines`, 'add it to volumes or fix the name');
      if (reserved.mountPaths.some((r) => m.mountPath === r || m.mountPath.startsWith(`${r}/`))) p(`${field}[${i}].mountPath`, `${m.mountPath} is where the constructs mount the config, /tmp or the mTLS certificate`, 'mount somewhere else');
    });
  };
  checkMounts('volumeMounts', o.volumeMounts ?? []);
  const containerNames = new Set(['agent']);
  (o.sidecars ?? []).forEach((c, i) => {
    const f = `sidecars[${i}]`;
    if (containerNames.has(c.name)) p(`${f}.name`, `'${c.name}' is used twice or by the agent container`, 'choose another container name');
    containerNames.add(c.name);
    if (!c.image) p(`${f}.image`, 'no image', 'pin an image by tag or digest');
    else for (const x of imageProblems(c.image)) p(`${f}.image`, x, "pin a version, e.g. 'repo/image:1.2.3' or 'repo/image@sha256:<digest>'");
    const sc = c.securityContext;
    if (sc) {
      if (sc.privileged) p(`${f}.securityContext.privileged`, 'privileged containers break Pod Security restricted', 'remove privileged');
      if (sc.allowPrivilegeEscalation !== false) p(`${f}.securityContext.allowPrivilegeEscalation`, 'must be false under Pod Security restricted', 'set allowPrivilegeEscalation: false');
      if (sc.runAsNonRoot === false) p(`${f}.securityContext.runAsNonRoot`, 'must not be false under Pod Security restricted', 'drop it or set true');
      if (sc.runAsUser === 0) p(`${f}.securityContext.runAsUser`, 'root (0) breaks Pod Security restricted', 'use a non-zero UID');
      const drop = sc.capabilities?.drop ?? [];
      if (!drop.includes('ALL')) p(`${f}.securityContext.capabilities.drop`, "must include 'ALL' under Pod Security restricted", "set capabilities.drop: ['ALL']");
      const added = (sc.capabilities?.add ?? []).filter((x) => x !== 'NET_BIND_SERVICE');
      if (added.length > 0) p(`${f}.securityContext.capabilities.add`, `${added.join(', ')} not allowed under Pod Security restricted`, 'add only NET_BIND_SERVICE, or nothing');
      const seccomp = sc.seccompProfile?.type;
      if (seccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(seccomp)) p(`${f}.securityContext.seccompProfile.type`, `'${seccomp}' breaks Pod Security restricted`, "use 'RuntimeDefault'");
      if (sc.procMount !== undefined && sc.procMount !== 'Default') p(`${f}.securityContext.procMount`, `'${sc.procMount}' breaks Pod Security baseline`, 'drop procMount');
      if (sc.windowsOptions?.hostProcess) p(`${f}.securityContext.windowsOptions.hostProcess`, 'host processes break Pod Security baseline', 'drop hostProcess');
    }
    (c.ports ?? []).forEach((port, j) => {
      if (port.hostPort) p(`${f}.ports[${j}].hostPort`, 'host ports break Pod Security baseline', 'drop hostPort; use a Service');
    });
    const res = c.resources;
    for (const kind of ['cpu', 'memory']) {
      for (const side of ['requests', 'limits'] as const) {
        const q = res?.[side]?.[kind];
        if (q === undefined) p(`${f}.resources.${side}.${kind}`, 'missing: every container needs requests and limits', `set resources.${side}.${kind}`);
        else if (parseQuantity(String(q.value)) === undefined) p(`${f}.resources.${side}.${kind}`, `'${q.value}' is not a Kubernetes quantity`, "write e.g. '100m' or '128Mi'");
      }
    }
    checkMounts(`${f}.volumeMounts`, c.volumeMounts ?? []);
  });
  return out;
}
