import { ApiObject, Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { TLS_MOUNT_PATH } from './agent-mtls';
import { peerAddress } from './contract';
import { imageProblems } from './images';
import { renderedConfigProps } from './internal';
import { KubeConfigMap, KubeDeployment, KubePodDisruptionBudget, KubeRole, KubeRoleBinding, KubeService, KubeServiceAccount } from './l1';
import { GRPC_PORT, HTTP_PORT, isDnsLabel, roleLabels, selectorLabels } from './labels';
import { McpServer } from './mcp-server';
import { AgentPodOptions, isDnsSubdomain, podOptionProblems, restrictedContainerSecurityContext } from './pod-options';
import { problem } from './problems';
import { parseQuantity } from './quantity';
import { AGENT_IMAGE_REPOSITORY, PACKAGE_VERSION } from './version';

export { imageProblems } from './images';

/** Default image: the agent runtime of this repository (agent-runtime/), tagged with this package's version. */
export const DEFAULT_AGENT_IMAGE = `${AGENT_IMAGE_REPOSITORY}:${PACKAGE_VERSION}`;
/** Where the ConfigMap is mounted and the file the runtime reads. */
export const CONFIG_MOUNT_PATH = '/etc/agent-runtime';
export const CONFIG_FILE_KEY = 'agent-config.json';
/** Key of the shared peer list in a cluster's peers ConfigMap (a mesh). */
export const PEERS_FILE_KEY = 'peers.json';

/** Container requests and limits (Kubernetes quantities). */
export interface AgentResources {
  /** CPU request. @default '500m' */
  readonly cpuRequest?: string;
  /** Memory request. @default '512Mi' */
  readonly memoryRequest?: string;
  /** CPU limit. @default '1' */
  readonly cpuLimit?: string;
  /** Memory limit; the V8 heap is sized to 75 % of it. @default '1Gi' */
  readonly memoryLimit?: string;
}

/** A read-only Kubernetes API permission for a role that needs the API. */
export interface ApiAccessRule {
  /** API group, '' for the core group. @default '' */
  readonly apiGroup?: string;
  /** Resource type, e.g. 'configmaps'. Never '*'. */
  readonly resource: string;
  /** Names of the objects readable; required so access is never namespace-wide. */
  readonly resourceNames: string[];
  /** Verbs, only from get, list, watch. @default ['get'] */
  readonly verbs?: string[];
}

/** Where the runtime finds the OpenAI-compatible upstream and its key. */
export interface AgentUpstream {
  /** Base URL of the OpenAI-compatible API, e.g. https://api.example.com/v1. */
  readonly baseUrl: string;
  /** Name of an existing Secret holding the API key (only referenced, never read). */
  readonly apiKeySecretName: string;
  /** Key inside that Secret. @default 'api-key' */
  readonly apiKeySecretKey?: string;
}

/** Props of one agent role's workload. */
export interface AgentDeploymentProps {
  /** Role name (DNS label): names the Deployment, Services, ConfigMap, PDB. @default - the construct id */
  readonly role?: string;
  /** Cluster name for the part-of and cluster labels. @default 'agents' */
  readonly clusterName?: string;
  /** Component label value (coordinator, supervisor, worker, peer). @default 'worker' */
  readonly component?: string;
  /** Namespace of every object. @default - none (the kubectl context's namespace) */
  readonly namespace?: string;
  /** The agent config JSON (agent-runtime/schema/agent-config.schema.json); AgentCluster derives it. */
  readonly agentConfigJson: string;
  /** Image pinned by tag or digest; never 'latest'. @default DEFAULT_AGENT_IMAGE */
  readonly image?: string;
  /** Replicas; left out of the Deployment once an autoscaler targets this role, since the autoscaler owns the count. @default 1 */
  readonly replicas?: number;
  /** Requests and limits. @default - 500m/512Mi requests, 1 CPU/1Gi limits */
  readonly resources?: AgentResources;
  /** Upstream URL and API key Secret; omit for roles that never call a model. @default - no upstream env */
  readonly upstream?: AgentUpstream;
  /** Seconds the runtime waits for in-flight work on SIGTERM; the pod gets 5 s more. @default 25 */
  readonly drainSeconds?: number;
  /** PriorityClass name for the pods. @default - none */
  readonly priorityClassName?: string;
  /** Read-only API access; when set, the role gets a Role, a RoleBinding and a mounted token. @default - none */
  readonly apiAccess?: ApiAccessRule[];
  /** Extra pod labels (e.g. the mesh label). @default - none */
  readonly podLabels?: { [key: string]: string };
  /** Numeric non-root UID the container runs as. @default 10001 */
  readonly runAsUser?: number;
  /** Scheduling, registry, identity, env, volumes and sidecars of the pods. @default - none */
  readonly pods?: AgentPodOptions;
  /** A ConfigMap with the cluster's shared peers.json, projected beside agent-config.json (a mesh). @default - none: the peers are inline */
  readonly peersConfigMapName?: string;
  /** MCP servers the role calls: a server's bearer token Secret becomes its env var (secretKeyRef). @default - none */
  readonly mcpServers?: McpServer[];
  /** Secret with the role's mTLS certificate (tls.crt, tls.key, ca.crt), mounted read-only at /etc/agent-tls; liveness then probes HTTP, since the kubelet's gRPC probe has no client certificate. @default - none: plain-text gRPC */
  readonly tlsSecretName?: string;
  /** Secrets mounted read-only as files into the agent container (AgentCluster: the entry's API keys). @default - none */
  readonly secretMounts?: SecretMount[];
}

/** A Secret mounted read-only as files into the agent container. */
export interface SecretMount {
  /** Volume name (DNS label), unique in the pod. */
  readonly volumeName: string;
  /** The Secret; only referenced. */
  readonly secretName: string;
  /** Directory the files appear in. */
  readonly mountPath: string;
  /** Secret keys to project, each as a file of the same name. @default - every key of the Secret */
  readonly keys?: string[];
}

const FORBIDDEN_VERBS = new Set(['*', 'create', 'update', 'patch', 'delete', 'deletecollection', 'escalate', 'bind', 'impersonate']);

/**
 * One agent role: Deployment, ServiceAccount, headless gRPC Service, HTTP
 * Service, ConfigMap, PodDisruptionBudget, and (only when asked) a read-only
 * Role. Every pod passes the Pod Security Standard "restricted".
 *
 * Built on the `k8s` API objects rather than cdk8s-plus's Deployment so that
 * every field is explicit in review and synth stays close to plain ApiObjects.
 */
export class AgentDeployment extends Construct {
  /** Role name. */
  public readonly role: string;
  /** Cluster name (label value). */
  public readonly clusterName: string;
  /** Namespace, if set. */
  public readonly namespace?: string;
  /** Replicas from the props (not written when an autoscaler owns the count). */
  public readonly replicas: number;
  /** Labels selecting this role's pods. */
  public readonly selector: { [key: string]: string };
  /** The Deployment object. */
  public readonly deployment: k8s.KubeDeployment;
  /** The ServiceAccount the pods run as. */
  public readonly serviceAccount: k8s.KubeServiceAccount;
  /** The PodDisruptionBudget (one pod at a time). */
  public readonly podDisruptionBudget: k8s.KubePodDisruptionBudget;
  /** The headless gRPC Service (one A record per pod). */
  public readonly grpcService: k8s.KubeService;
  /** The ClusterIP HTTP Service. */
  public readonly httpService: k8s.KubeService;
  /** The ConfigMap with agent-config.json. */
  public readonly configMap: k8s.KubeConfigMap;
  /** Name of the Deployment (the target of an autoscaler). */
  public readonly deploymentName: string;
  private autoscaled = false;

  constructor(scope: Construct, id: string, props: AgentDeploymentProps) {
    super(scope, id);
    this.role = props.role ?? id;
    this.clusterName = props.clusterName ?? 'agents';
    this.namespace = props.namespace;
    this.replicas = props.replicas ?? 1;
    this.deploymentName = this.role;
    const component = props.component ?? 'worker';
    const labels = roleLabels(this.clusterName, this.role, component);
    this.selector = selectorLabels(this.clusterName, this.role);
    const metadata = (name: string) => ({ name, namespace: props.namespace, labels });
    const image = props.image ?? DEFAULT_AGENT_IMAGE;
    const res = {
      cpuRequest: props.resources?.cpuRequest ?? '500m',
      memoryRequest: props.resources?.memoryRequest ?? '512Mi',
      cpuLimit: props.resources?.cpuLimit ?? '1',
      memoryLimit: props.resources?.memoryLimit ?? '1Gi',
    };
    const drainSeconds = props.drainSeconds ?? 25;
    const apiAccess = props.apiAccess ?? [];
    const needsApi = apiAccess.length > 0;

    const pods = props.pods ?? {};
    const secretVolumes: k8s.Volume[] = (props.secretMounts ?? []).map((m) => ({
      name: m.volumeName,
      secret: { secretName: m.secretName, ...(m.keys ? { items: m.keys.map((key) => ({ key, path: key })) } : {}), defaultMode: 0o440 },
    }));
    const secretMounts: k8s.VolumeMount[] = (props.secretMounts ?? []).map((m) => ({ name: m.volumeName, mountPath: m.mountPath, readOnly: true }));
    const reservedEnv = new Set(['AGENT_ID', 'AGENT_ROLE', 'AGENT_CONFIG_FILE', 'HTTP_PORT', 'GRPC_PORT', 'UPSTREAM_BASE_URL', 'UPSTREAM_API_KEY', 'NODE_OPTIONS']);
    for (const server of props.mcpServers ?? []) if (server.bearerTokenEnv) reservedEnv.add(server.bearerTokenEnv);
    this.validate(props, image, res, drainSeconds, () =>
      podOptionProblems(pods, {
        env: reservedEnv,
        volumes: new Set(['config', 'tmp', ...(props.tlsSecretName ? ['tls'] : []), ...secretVolumes.map((v) => v.name)]),
        mountPaths: [CONFIG_MOUNT_PATH, '/tmp', ...(props.tlsSecretName ? [TLS_MOUNT_PATH] : []), ...secretMounts.map((m) => m.mountPath)],
        labels: new Set(Object.keys(this.selector)),
      }),
    );

    this.serviceAccount = new KubeServiceAccount(this, 'service-account', {
      metadata: pods.serviceAccountAnnotations ? { ...metadata(this.role), annotations: pods.serviceAccountAnnotations } : metadata(this.role),
      automountServiceAccountToken: needsApi,
    });

    this.configMap = new KubeConfigMap(this, 'config', {
      metadata: metadata(`${this.role}-config`),
      data: { [CONFIG_FILE_KEY]: props.agentConfigJson },
    });

    const env: k8s.EnvVar[] = [
      { name: 'AGENT_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'AGENT_ROLE', value: this.role },
      { name: 'AGENT_CONFIG_FILE', value: `${CONFIG_MOUNT_PATH}/${CONFIG_FILE_KEY}` },
      { name: 'HTTP_PORT', value: String(HTTP_PORT) },
      { name: 'GRPC_PORT', value: String(GRPC_PORT) },
    ];
    if (props.upstream) {
      env.push(
        { name: 'UPSTREAM_BASE_URL', value: props.upstream.baseUrl },
        {
          name: 'UPSTREAM_API_KEY',
          valueFrom: { secretKeyRef: { name: props.upstream.apiKeySecretName, key: props.upstream.apiKeySecretKey ?? 'api-key' } },
        },
      );
    }
    for (const server of props.mcpServers ?? []) {
      const tokenEnv = server._tokenEnv();
      if (tokenEnv) env.push(tokenEnv);
    }
    const memLimitBytes = parseQuantity(res.memoryLimit);
    if (memLimitBytes !== undefined) {
      // V8 must hit its own heap limit (and shed) before the kernel OOM-kills the pod.
      const heapMiB = Math.max(64, Math.floor((memLimitBytes / 2 ** 20) * 0.75));
      env.push({ name: 'NODE_OPTIONS', value: `--max-old-space-size=${heapMiB}` });
    }

    for (const [name, v] of Object.entries(pods.env ?? {})) env.push(v._toEnvVar(name));

    const podLabels = { ...(pods.podLabels ?? {}), ...labels, ...(props.podLabels ?? {}) };
    const defaultSpread: k8s.TopologySpreadConstraint[] = ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
      topologyKey,
      maxSkew: 1,
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: this.selector },
    }));
    const configVolume: k8s.Volume = props.peersConfigMapName
      ? { name: 'config', projected: { sources: [{ configMap: { name: `${this.role}-config` } }, { configMap: { name: props.peersConfigMapName } }] } }
      : { name: 'config', configMap: { name: `${this.role}-config` } };
    const sidecars = (pods.sidecars ?? []).map((c) => (c.securityContext ? c : { ...c, securityContext: restrictedContainerSecurityContext() }));
    this.deployment = new KubeDeployment(this, 'deployment', {
      metadata: metadata(this.role),
      spec: {
        // An autoscaler owns the count: a replicas field would reset its choice on every apply.
        replicas: Lazy.any({ produce: () => (this.autoscaled ? undefined : this.replicas) }) as unknown as number,
        selector: { matchLabels: this.selector },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: pods.podAnnotations ? { labels: podLabels, annotations: pods.podAnnotations } : { labels: podLabels },
          spec: {
            nodeSelector: pods.nodeSelector,
            tolerations: pods.tolerations?.map((t) => ({ ...t })),
            affinity: pods.affinity,
            imagePullSecrets: pods.imagePullSecrets?.map((name) => ({ name })),
            serviceAccountName: this.role,
            automountServiceAccountToken: needsApi,
            enableServiceLinks: false,
            priorityClassName: props.priorityClassName,
            terminationGracePeriodSeconds: drainSeconds + 5,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: props.runAsUser ?? 10001,
              runAsGroup: props.runAsUser ?? 10001,
              fsGroup: props.runAsUser ?? 10001,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            topologySpreadConstraints: pods.topologySpreadConstraints ?? defaultSpread,
            containers: [
              {
                name: 'agent',
                image,
                imagePullPolicy: 'IfNotPresent',
                args: ['serve'],
                ports: [
                  { name: 'grpc', containerPort: GRPC_PORT, protocol: 'TCP' },
                  { name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' },
                ],
                env,
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(res.cpuRequest), memory: k8s.Quantity.fromString(res.memoryRequest) },
                  limits: { cpu: k8s.Quantity.fromString(res.cpuLimit), memory: k8s.Quantity.fromString(res.memoryLimit) },
                },
                securityContext: restrictedContainerSecurityContext(),
                startupProbe: {
                  httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('http') },
                  periodSeconds: 2,
                  failureThreshold: 30,
                },
                livenessProbe: {
                  ...(props.tlsSecretName ? { httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('http') } } : { grpc: { port: GRPC_PORT } }),
                  periodSeconds: 10,
                  timeoutSeconds: 2,
                  failureThreshold: 3,
                },
                readinessProbe: {
                  httpGet: { path: '/readyz', port: k8s.IntOrString.fromString('http') },
                  periodSeconds: 5,
                  timeoutSeconds: 2,
                  failureThreshold: 2,
                },
                volumeMounts: [
                  { name: 'config', mountPath: CONFIG_MOUNT_PATH, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(props.tlsSecretName ? [{ name: 'tls', mountPath: TLS_MOUNT_PATH, readOnly: true }] : []),
                  ...secretMounts,
                  ...(pods.volumeMounts ?? []),
                ],
              },
              ...sidecars,
            ],
            volumes: [
              configVolume,
              { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('64Mi') } },
              // readable by the pod's group (fsGroup) only
              ...(props.tlsSecretName ? [{ name: 'tls', secret: { secretName: props.tlsSecretName, defaultMode: 0o440 } }] : []),
              ...secretVolumes,
              ...(pods.volumes ?? []),
            ],
          },
        },
      },
    });

    // Headless: clients resolve every pod and balance gRPC per pod.
    this.grpcService = new KubeService(this, 'grpc-service', {
      metadata: metadata(`${this.role}-grpc`),
      spec: {
        clusterIp: 'None',
        selector: this.selector,
        ports: [{ name: 'grpc', port: GRPC_PORT, targetPort: k8s.IntOrString.fromString('grpc'), protocol: 'TCP' }],
      },
    });
    this.httpService = new KubeService(this, 'http-service', {
      metadata: metadata(this.role),
      spec: {
        type: 'ClusterIP',
        selector: this.selector,
        ports: [{ name: 'http', port: HTTP_PORT, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' }],
      },
    });

    // One pod at a time may be evicted; the rolling update adds before it removes.
    this.podDisruptionBudget = new KubePodDisruptionBudget(this, 'pdb', {
      metadata: metadata(this.role),
      spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: this.selector } },
    });

    if (needsApi) {
      new KubeRole(this, 'role', {
        metadata: metadata(this.role),
        rules: apiAccess.map((r) => ({
          apiGroups: [r.apiGroup ?? ''],
          resources: [r.resource],
          resourceNames: [...r.resourceNames],
          verbs: [...(r.verbs ?? ['get'])],
        })),
      });
      new KubeRoleBinding(this, 'role-binding', {
        metadata: metadata(this.role),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: this.role },
        subjects: [{ kind: 'ServiceAccount', name: this.role, namespace: props.namespace }],
      });
    }
  }

  /** Host:port of the headless gRPC Service inside the cluster. */
  public get grpcAddress(): string {
    return peerAddress(this.role, this.namespace ?? 'default');
  }

  /**
   * Called by an autoscaler that targets this role: from then on the
   * Deployment carries no `spec.replicas`, which the autoscaler owns.
   * @internal
   */
  public _ownedByAutoscaler(): void {
    this.autoscaled = true;
  }

  /** True when an HPA or ScaledObject owns the replica count. */
  public get isAutoscaled(): boolean {
    return this.autoscaled;
  }

  /** The pod template's ApiObject, for escape-hatch patches. */
  public get apiObject(): ApiObject {
    return this.deployment;
  }

  private validate(
    props: AgentDeploymentProps,
    image: string,
    res: Required<AgentResources>,
    drainSeconds: number,
    podProblems: () => string[],
  ): void {
    const fail = problem;
    Node.of(this).addValidation({
      validate: () => {
        const errors: string[] = podProblems();
        if (props.upstream && !renderedConfigProps.has(props)) errors.push(...upstreamProblems(props.upstream, 'upstream'));
        if (props.peersConfigMapName !== undefined && !isDnsSubdomain(props.peersConfigMapName)) {
          errors.push(fail('peersConfigMapName', `'${props.peersConfigMapName}' is not a valid ConfigMap name`, 'use lower-case letters, digits, dashes and dots'));
        }
        if (props.tlsSecretName !== undefined && !isDnsSubdomain(props.tlsSecretName)) {
          errors.push(fail('tlsSecretName', `'${props.tlsSecretName}' is not a valid Secret name`, 'use lower-case letters, digits, dashes and dots'));
        }
        if (!isDnsLabel(this.role)) errors.push(fail('role', `'${this.role}' is not a DNS label`, 'use lower-case letters, digits and dashes, at most 63 characters'));
        // AgentCluster checks its roles' replicas itself (an autoscaled role's count comes from the autoscaler).
        if (!renderedConfigProps.has(props) && (!Number.isInteger(this.replicas) || this.replicas < 0)) errors.push(fail('replicas', `${this.replicas} is not a whole number >= 0`, 'set replicas to 1 or more'));
        if (!Number.isInteger(props.runAsUser ?? 10001) || (props.runAsUser ?? 10001) < 1) {
          errors.push(fail('runAsUser', `${props.runAsUser} is not a non-root UID`, 'use a whole number >= 1, e.g. 10001'));
        }
        errors.push(...imageProblems(image).map((p) => fail('image', p, `pin a version, e.g. '${DEFAULT_AGENT_IMAGE}' or 'repo/image@sha256:<digest>'`)));
        for (const kind of ['cpu', 'memory'] as const) {
          const reqText = kind === 'cpu' ? res.cpuRequest : res.memoryRequest;
          const limText = kind === 'cpu' ? res.cpuLimit : res.memoryLimit;
          const req = parseQuantity(reqText);
          const lim = parseQuantity(limText);
          if (req === undefined) errors.push(fail(`resources.${kind}Request`, `'${reqText}' is not a Kubernetes quantity`, "write e.g. '500m' or '512Mi'"));
          if (lim === undefined) errors.push(fail(`resources.${kind}Limit`, `'${limText}' is not a Kubernetes quantity`, "write e.g. '1' or '1Gi'"));
          if (req !== undefined && lim !== undefined && req > lim) {
            errors.push(fail(`resources.${kind}Request`, `request ${reqText} exceeds limit ${limText}`, `lower ${kind}Request or raise ${kind}Limit`));
          }
        }
        if (!(Number.isInteger(drainSeconds) && drainSeconds >= 0)) errors.push(fail('drainSeconds', `${drainSeconds} is not a whole number >= 0`, 'set 0 or more whole seconds'));
        if (!renderedConfigProps.has(props)) {
          try {
            JSON.parse(props.agentConfigJson);
          } catch (e) {
            errors.push(fail('agentConfigJson', `not valid JSON (${(e as Error).message})`, 'pass the config rendered by AgentCluster or valid JSON'));
          }
        }
        const configBytes = configByteLength(props.agentConfigJson);
        if (configBytes > MAX_CONFIGMAP_BYTES) {
          errors.push(
            fail(
              'agentConfigJson',
              `${configBytes} bytes, over the 1 MiB (${MAX_CONFIGMAP_BYTES}) a ConfigMap may hold, so the API server would refuse it`,
              'make the config smaller: a role\'s config lists every peer it may call, so split a very large mesh into a hierarchical topology',
            ),
          );
        }
        for (const [i, r] of (props.apiAccess ?? []).entries()) {
          const verbs = r.verbs ?? ['get'];
          const bad = verbs.filter((v) => FORBIDDEN_VERBS.has(v) || !['get', 'list', 'watch'].includes(v));
          if (bad.length > 0) errors.push(fail(`apiAccess[${i}].verbs`, `${bad.join(', ')} not allowed`, 'agents get read-only access: use get, list or watch'));
          if (r.resource === '*' || r.resource.length === 0) errors.push(fail(`apiAccess[${i}].resource`, `'${r.resource}' is not a single resource`, "name one resource type, e.g. 'configmaps'"));
          if (r.resourceNames.length === 0 || r.resourceNames.includes('*')) errors.push(fail(`apiAccess[${i}].resourceNames`, 'access must be to named objects', 'list the object names the agent reads'));
        }
        return errors;
      },
    });
  }
}

/** The API server refuses a ConfigMap whose data is over 1 MiB. */
const MAX_CONFIGMAP_BYTES = 1024 * 1024;

/**
 * The config's UTF-8 size, counted only when it could be over the limit: a
 * UTF-16 code unit is at most 3 bytes of UTF-8, and a 1,000-role mesh has
 * 1,000 configs of ~130 KB each that need no count.
 */
function configByteLength(json: string): number {
  return json.length * 3 <= MAX_CONFIGMAP_BYTES ? json.length : Buffer.byteLength(json, 'utf8');
}

const PRIVATE_HOST = /^(localhost|127\.\d+\.\d+\.\d+|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+|\[::1\]|\[f[cd][0-9a-f]*:.*\])$/;

/** True for a host that only resolves inside the cluster or a private network. */
function isPrivateHost(host: string): boolean {
  return PRIVATE_HOST.test(host) || !host.includes('.') || /\.(svc|cluster\.local|local|internal)$/.test(host);
}

/** What the runtime or the API server would refuse in an upstream, one line each (fields under `field`). */
export function upstreamProblems(u: AgentUpstream, field: string): string[] {
  const out: string[] = [];
  let url: URL | undefined;
  try {
    url = new URL(u.baseUrl);
  } catch {
    out.push(problem(`${field}.baseUrl`, `'${u.baseUrl}' is not a URL`, "write the OpenAI-compatible base URL, e.g. 'https://api.example.com/v1'"));
  }
  if (url && url.protocol !== 'https:' && url.protocol !== 'http:') {
    out.push(problem(`${field}.baseUrl`, `'${u.baseUrl}' uses ${url.protocol} and the runtime speaks only http(s)`, 'use an https:// URL'));
  } else if (url && url.protocol === 'http:' && !isPrivateHost(url.hostname)) {
    out.push(problem(`${field}.baseUrl`, `'${u.baseUrl}' is plain http to the public host ${url.hostname}, so the API key would travel in clear text`, 'use https://, or an in-cluster gateway (a *.svc host)'));
  }
  if (!isDnsSubdomain(u.apiKeySecretName)) {
    out.push(problem(`${field}.apiKeySecretName`, `'${u.apiKeySecretName}' is not a valid Secret name`, 'use lower-case letters, digits, dashes and dots (a DNS subdomain)'));
  }
  const key = u.apiKeySecretKey ?? 'api-key';
  if (!/^[-._a-zA-Z0-9]{1,253}$/.test(key)) {
    out.push(problem(`${field}.apiKeySecretKey`, `'${key}' is not a valid Secret key`, 'use letters, digits, - _ .'));
  }
  return out;
}
