import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { AgentResources } from './agent-deployment';
import { JobStoreConfig } from './generated/agent-config';
import { imageProblems } from './images';
import { KubeConfigMap, KubeNetworkPolicy, KubePodDisruptionBudget, KubeService, KubeServiceAccount, KubeStatefulSet } from './l1';
import { isDnsLabel, LABEL_CLUSTER } from './labels';
import { AgentPodOptions, isDnsSubdomain, restrictedContainerSecurityContext } from './pod-options';
import { PriorityClass } from './priority-class';
import { problem } from './problems';
import { parseQuantity } from './quantity';

/** nats-server image of a synthesized JetStream cluster, pinned to an exact release. */
export const DEFAULT_NATS_IMAGE = 'nats:2.10.24-alpine';

const CLIENT_PORT = 4222;
const ROUTE_PORT = 6222;
const MONITOR_PORT = 8222;
/** Where an agent pod finds the NATS credentials file (from the Secret, read-only). */
const CREDENTIALS_DIR = '/etc/nats-credentials';
const CREDENTIALS_FILE = 'nats.creds';
const CREDENTIALS_VOLUME = 'nats-credentials';
/** The account a NATS server without configured accounts puts every client in. */
const GLOBAL_ACCOUNT = '$G';

/** A key of an existing Secret (only referenced, never read). */
export interface NatsCredentialsSecret {
  /** Secret name. */
  readonly name: string;
  /** Key holding the NATS credentials (.creds) file. */
  readonly key: string;
}

/** A NATS with JetStream you run yourself. */
export interface ExternalJobStoreOptions {
  /** Client URL(s), `nats://` or `tls://`, comma-separated for several servers, e.g. 'nats://nats.nats.svc.cluster.local:4222'. */
  readonly url: string;
  /** Secret key with a NATS credentials file, mounted read-only into every agent pod. @default - connect without credentials */
  readonly credentialsSecret?: NatsCredentialsSecret;
  /** host:port of the NATS monitoring endpoint, for KEDA's nats-jetstream trigger (KedaTrigger.jobQueue). @default - none: the job queue trigger is unavailable */
  readonly monitoringEndpoint?: string;
  /** NATS account of the agents' connection, as the monitoring endpoint names it. @default '$G' (no accounts configured) */
  readonly monitoringAccount?: string;
  /** Replicas of the job stream and the KV bucket (at most your NATS cluster's size): 1, 3 or 5. @default 1 */
  readonly streamReplicas?: number;
}

/** An in-namespace NATS JetStream cluster the construct synthesizes. */
export interface JetStreamJobStoreOptions {
  /** nats-server pods: 1, 3 or 5 (an odd count keeps a quorum). @default 3 */
  readonly replicas?: number;
  /** Replicas of the job stream and the KV bucket, at most `replicas`. @default - min(replicas, 3) */
  readonly streamReplicas?: number;
  /** Size of each pod's PersistentVolumeClaim for the JetStream file store. @default '10Gi' */
  readonly storageSize?: string;
  /** StorageClass of those claims. @default - the cluster's default StorageClass */
  readonly storageClassName?: string;
  /** nats-server image, pinned by tag or digest. @default DEFAULT_NATS_IMAGE */
  readonly image?: string;
  /** Requests and limits of the nats-server container. @default - 250m/512Mi requests, 1 CPU/1Gi limits */
  readonly resources?: AgentResources;
  /** PriorityClass of the NATS pods. @default PriorityClass.HIGH_PRIORITY_AGENT */
  readonly priorityClassName?: string;
  /** Labels of the namespace KEDA runs in; its operator may read the monitoring port. @default { 'kubernetes.io/metadata.name': 'keda' } */
  readonly kedaNamespaceLabels?: { [key: string]: string };
  /** Labels of the KEDA operator pods. @default { app: 'keda-operator' } */
  readonly kedaPodLabels?: { [key: string]: string };
}

/** What a KEDA nats-jetstream trigger reads: the job consumer's pending count. */
export interface JobQueueTarget {
  /** host:port of the NATS monitoring endpoint (KEDA prefixes a server name to reach one node of a cluster). */
  readonly monitoringEndpoint: string;
  /** NATS account of the stream. @default '$G' */
  readonly account?: string;
  /** JetStream stream of the jobs. */
  readonly stream: string;
  /** Durable consumer the job runners pull from. */
  readonly consumer: string;
}

/** What AgentCluster needs from a bound job store (not exported from index.ts). */
export interface BoundJobStore {
  /** The `jobStore` block of every role's config. */
  readonly config: JobStoreConfig;
  /** Pod options every agent pod gets (the credentials volume). */
  readonly pods?: AgentPodOptions;
  /** What KEDA's nats-jetstream trigger reads, when known. */
  readonly jobQueue?: JobQueueTarget;
}

/** The AgentCluster a job store is bound to (not exported from index.ts). */
export interface JobStoreContext {
  readonly clusterName: string;
  readonly namespace: string;
  /** Role names, so NATS objects cannot take a role's object names. */
  readonly roles: readonly string[];
  /** Where the Prometheus scrapers run (AgentCluster's monitoring), when it has monitoring. */
  readonly scrapers?: { namespaceLabels: { [key: string]: string }; podLabels?: { [key: string]: string } };
}

/**
 * Where an AgentCluster keeps its jobs: NATS JetStream (a work-queue stream
 * for jobs, a KV bucket for state, results and budgets). Bring your own NATS
 * with `JobStore.external(...)`, or let the cluster run one in its namespace
 * with `JobStore.jetStream()`.
 */
export class JobStore {
  /** A NATS with JetStream you run; agents get egress to its client port(s). */
  public static external(options: ExternalJobStoreOptions): JobStore {
    return new JobStore('external', (scope, ctx) => new ExternalJobStore(scope, 'job-store', { ...options, clusterName: ctx.clusterName, namespace: ctx.namespace })._bound());
  }

  /** An in-namespace JetStream cluster: a StatefulSet of nats-server pods with file storage on PVCs. */
  public static jetStream(options: JetStreamJobStoreOptions = {}): JobStore {
    return new JobStore('jetStream', (scope, ctx) =>
      new NatsJetStreamCluster(scope, 'job-store', {
        ...options,
        clusterName: ctx.clusterName,
        namespace: ctx.namespace,
        roles: [...ctx.roles],
        scraperNamespaceLabels: ctx.scrapers?.namespaceLabels,
        scraperPodLabels: ctx.scrapers?.podLabels,
      })._bound(),
    );
  }

  private constructor(
    /** 'external' or 'jetStream'. */
    public readonly kind: string,
    private readonly bind: (scope: Construct, ctx: JobStoreContext) => BoundJobStore,
  ) {}

  /** Creates the store's objects under `scope` (as `job-store`). @internal */
  public _bind(scope: Construct, ctx: JobStoreContext): BoundJobStore {
    return this.bind(scope, ctx);
  }
}

/** Stream, consumer and bucket names of a cluster's jobs: valid JetStream names derived from the cluster name. */
function jobNames(clusterName: string): { stream: string; consumer: string; bucket: string } {
  return { stream: `${clusterName}-jobs`, consumer: `${clusterName}-job-runners`, bucket: `${clusterName}-jobs` };
}

function tcp(port: number): k8s.NetworkPolicyPort {
  return { protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) };
}

/** Lines about a stream replica count (field `streamReplicas`), given the NATS cluster size when known. */
function streamReplicaProblems(streamReplicas: number, natsSize: number | undefined): string[] {
  if (![1, 3, 5].includes(streamReplicas)) return [problem('streamReplicas', `${streamReplicas} is not 1, 3 or 5`, 'use 1, 3 or 5 (JetStream keeps an odd number of copies)')];
  if (natsSize !== undefined && [1, 3, 5].includes(natsSize) && streamReplicas > natsSize) {
    return [problem('streamReplicas', `${streamReplicas} copies need ${streamReplicas} NATS servers and the cluster has ${natsSize}`, `lower streamReplicas to ${natsSize} or raise replicas to ${streamReplicas}`)];
  }
  return [];
}

/** Props of an ExternalJobStore. */
export interface ExternalJobStoreProps extends ExternalJobStoreOptions {
  /** Cluster name: derives the stream, consumer and bucket names. */
  readonly clusterName: string;
  /** Namespace of the agents. */
  readonly namespace: string;
}

/**
 * A job store on a NATS you run: the agents' egress to its client port(s)
 * and, with a credentials Secret, the volume that mounts it read-only.
 */
export class ExternalJobStore extends Construct {
  /** Client URL(s) the agents use. */
  public readonly url: string;
  private readonly bound: BoundJobStore;

  constructor(scope: Construct, id: string, props: ExternalJobStoreProps) {
    super(scope, id);
    this.url = props.url;
    const names = jobNames(props.clusterName);
    const replicas = props.streamReplicas ?? 1;
    const parsed = parseNatsUrls(props.url);
    const creds = props.credentialsSecret;
    this.bound = {
      config: { url: props.url, ...(creds ? { credentialsFile: `${CREDENTIALS_DIR}/${CREDENTIALS_FILE}` } : {}), ...names, replicas },
      pods: creds
        ? {
          volumes: [
            { name: CREDENTIALS_VOLUME, secret: { secretName: creds.name, items: [{ key: creds.key, path: CREDENTIALS_FILE }], defaultMode: 0o440 } },
          ],
          volumeMounts: [{ name: CREDENTIALS_VOLUME, mountPath: CREDENTIALS_DIR, readOnly: true }],
        }
        : undefined,
      jobQueue: props.monitoringEndpoint
        ? { monitoringEndpoint: props.monitoringEndpoint, account: props.monitoringAccount ?? GLOBAL_ACCOUNT, ...names }
        : undefined,
    };
    // Where the servers run is unknown here (another namespace, outside the
    // cluster): the rule opens the client ports, to any destination.
    const ports = [...new Set(parsed.urls.map((u) => u.port))];
    new KubeNetworkPolicy(this, 'agent-egress', {
      metadata: { name: `${props.clusterName}-job-store`, namespace: props.namespace },
      spec: {
        podSelector: { matchLabels: { [LABEL_CLUSTER]: props.clusterName } },
        policyTypes: ['Egress'],
        egress: [{ ports: (ports.length > 0 ? ports : [CLIENT_PORT]).map(tcp) }],
      },
    });

    Node.of(this).addValidation({
      validate: () => {
        const errors = parsed.problems.map((p) => problem('url', p, 'write nats://<host>:4222 or tls://<host>:4222, several comma-separated'));
        errors.push(...streamReplicaProblems(replicas, undefined));
        if (creds && !isDnsSubdomain(creds.name)) errors.push(problem('credentialsSecret.name', `'${creds.name}' is not a valid Secret name`, 'use lower-case letters, digits, dashes and dots (a DNS subdomain)'));
        if (creds && !/^[-._a-zA-Z0-9]{1,253}$/.test(creds.key)) errors.push(problem('credentialsSecret.key', `'${creds.key}' is not a valid Secret key`, 'use letters, digits, - _ .'));
        const ep = props.monitoringEndpoint;
        if (ep !== undefined && !/^[A-Za-z0-9.-]+:[0-9]{1,5}$/.test(ep)) errors.push(problem('monitoringEndpoint', `'${ep}' is not host:port`, "write e.g. 'nats-headless.nats.svc.cluster.local:8222' (no scheme)"));
        return errors;
      },
    });
  }

  /** @internal */
  public _bound(): BoundJobStore {
    return this.bound;
  }
}

/** The client URLs of a `url` field and what is wrong with them. */
function parseNatsUrls(text: string): { urls: Array<{ port: number }>; problems: string[] } {
  const urls: Array<{ port: number }> = [];
  const problems: string[] = [];
  for (const part of text.split(',').map((s) => s.trim())) {
    let u: URL | undefined;
    try {
      u = new URL(part);
    } catch {
      problems.push(`'${part}' is not a URL`);
      continue;
    }
    if (u.protocol !== 'nats:' && u.protocol !== 'tls:') problems.push(`'${part}' uses ${u.protocol} and NATS clients speak nats:// or tls://`);
    else if (!u.hostname) problems.push(`'${part}' has no host`);
    else if (u.pathname !== '' && u.pathname !== '/') problems.push(`'${part}' has a path, which NATS URLs do not have`);
    else urls.push({ port: u.port ? Number(u.port) : CLIENT_PORT });
  }
  return { urls, problems };
}

/** Props of a NatsJetStreamCluster. */
export interface NatsJetStreamClusterProps extends JetStreamJobStoreOptions {
  /** Agent cluster name: the NATS objects are `<clusterName>-nats...`, and its agent pods (label agents.cdk8s.io/cluster) are the clients. */
  readonly clusterName: string;
  /** Namespace of every object. */
  readonly namespace: string;
  /** Role names of the agent cluster, which the NATS object names must not take. @default - none */
  readonly roles?: string[];
  /** Labels of the namespace Prometheus runs in, admitted to the monitoring port. @default - no scraper rule */
  readonly scraperNamespaceLabels?: { [key: string]: string };
  /** Labels of the Prometheus pods there. @default - any pod of that namespace */
  readonly scraperPodLabels?: { [key: string]: string };
}

/**
 * An in-namespace NATS JetStream cluster for an AgentCluster's jobs: a
 * StatefulSet of nats-server pods (file store on PVCs, routes between the
 * pods over a headless Service, monitoring on 8222), a client Service on
 * 4222, a PodDisruptionBudget that keeps a quorum, its own ServiceAccount
 * without a token, and NetworkPolicies: the client port only from the
 * cluster's agent pods, the monitoring port only from KEDA and the scrapers,
 * the route port only between the NATS pods. Pods pass Pod Security
 * "restricted".
 */
export class NatsJetStreamCluster extends Construct {
  /** Name of the StatefulSet and of the client Service. */
  public readonly name: string;
  /** Client URL the agents use. */
  public readonly url: string;
  /** host:port of the monitoring endpoint on the headless Service (what KEDA's nats-jetstream scaler reads). */
  public readonly monitoringEndpoint: string;
  /** nats-server pods. */
  public readonly replicas: number;
  /** The StatefulSet. */
  public readonly statefulSet: k8s.KubeStatefulSet;
  private readonly bound: BoundJobStore;

  constructor(scope: Construct, id: string, props: NatsJetStreamClusterProps) {
    super(scope, id);
    const ns = props.namespace;
    const cluster = props.clusterName;
    this.name = `${cluster}-nats`;
    const headless = `${this.name}-headless`;
    this.replicas = props.replicas ?? 3;
    const n = this.replicas;
    const streamReplicas = props.streamReplicas ?? Math.min(n, 3);
    const storageSize = props.storageSize ?? '10Gi';
    const image = props.image ?? DEFAULT_NATS_IMAGE;
    const res = {
      cpuRequest: props.resources?.cpuRequest ?? '250m',
      memoryRequest: props.resources?.memoryRequest ?? '512Mi',
      cpuLimit: props.resources?.cpuLimit ?? '1',
      memoryLimit: props.resources?.memoryLimit ?? '1Gi',
    };
    const selector = { 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/instance': this.name };
    // No agents.cdk8s.io/cluster label: that label selects the agent pods (the NATS clients).
    const labels = { ...selector, 'app.kubernetes.io/part-of': cluster, 'app.kubernetes.io/component': 'job-store', 'app.kubernetes.io/managed-by': 'cdk8s-agent-cluster' };
    const metadata = (name: string) => ({ name, namespace: ns, labels });
    const host = (i: number) => `${this.name}-${i}.${headless}.${ns}.svc.cluster.local`;
    this.url = `nats://${this.name}.${ns}.svc.cluster.local:${CLIENT_PORT}`;
    // KEDA's scaler asks this endpoint which server leads the consumer, then
    // reads that server at <server_name>.<this host>: with server_name = pod
    // name, that is the pod's own DNS name under the headless Service.
    this.monitoringEndpoint = `${headless}.${ns}.svc.cluster.local:${MONITOR_PORT}`;

    new KubeServiceAccount(this, 'service-account', { metadata: metadata(this.name), automountServiceAccountToken: false });

    const storageBytes = parseQuantity(storageSize);
    const memLimit = parseQuantity(res.memoryLimit);
    const conf = [
      `# nats-server configuration of ${this.name} (written by cdk8s-agent-cluster)`,
      'server_name: $POD_NAME',
      `listen: 0.0.0.0:${CLIENT_PORT}`,
      `http: 0.0.0.0:${MONITOR_PORT}`,
      'lame_duck_duration: 30s',
      'lame_duck_grace_period: 10s',
      'jetstream {',
      '  store_dir: /data',
      '  max_memory_store: 67108864',
      // leave a tenth of the volume for the file store's own overhead
      `  max_file_store: ${storageBytes !== undefined ? Math.floor(storageBytes * 0.9) : 0}`,
      '}',
      ...(n > 1
        ? [
          'cluster {',
          `  name: ${this.name}`,
          `  listen: 0.0.0.0:${ROUTE_PORT}`,
          '  routes: [',
          ...Array.from({ length: n }, (_, i) => `    nats://${host(i)}:${ROUTE_PORT}`),
          '  ]',
          '}',
        ]
        : []),
      '',
    ].join('\n');
    new KubeConfigMap(this, 'config', { metadata: metadata(`${this.name}-config`), data: { 'nats.conf': conf } });

    new KubeService(this, 'headless', {
      metadata: metadata(headless),
      spec: {
        clusterIp: 'None',
        // routes must resolve before the peers are ready, or a cluster never forms
        publishNotReadyAddresses: true,
        selector,
        ports: [
          { name: 'client', port: CLIENT_PORT, targetPort: k8s.IntOrString.fromString('client'), protocol: 'TCP' },
          { name: 'cluster', port: ROUTE_PORT, targetPort: k8s.IntOrString.fromString('cluster'), protocol: 'TCP' },
          { name: 'monitor', port: MONITOR_PORT, targetPort: k8s.IntOrString.fromString('monitor'), protocol: 'TCP' },
        ],
      },
    });
    new KubeService(this, 'client', {
      metadata: metadata(this.name),
      spec: { type: 'ClusterIP', selector, ports: [{ name: 'client', port: CLIENT_PORT, targetPort: k8s.IntOrString.fromString('client'), protocol: 'TCP' }] },
    });

    const probe = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      httpGet: { path: '/healthz?js-enabled-only=true', port: k8s.IntOrString.fromString('monitor') },
      periodSeconds,
      timeoutSeconds: 5,
      failureThreshold,
    });
    this.statefulSet = new KubeStatefulSet(this, 'statefulset', {
      metadata: metadata(this.name),
      spec: {
        serviceName: headless,
        replicas: n,
        // all pods start together: a JetStream cluster needs its peers to elect a leader
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: this.name,
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            priorityClassName: props.priorityClassName ?? PriorityClass.HIGH_PRIORITY_AGENT,
            terminationGracePeriodSeconds: 60,
            securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
            topologySpreadConstraints: ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
              topologyKey,
              maxSkew: 1,
              whenUnsatisfiable: 'ScheduleAnyway',
              labelSelector: { matchLabels: selector },
            })),
            containers: [
              {
                name: 'nats',
                image,
                imagePullPolicy: 'IfNotPresent',
                command: ['nats-server', '--config', '/etc/nats/nats.conf'],
                ports: [
                  { name: 'client', containerPort: CLIENT_PORT, protocol: 'TCP' },
                  { name: 'cluster', containerPort: ROUTE_PORT, protocol: 'TCP' },
                  { name: 'monitor', containerPort: MONITOR_PORT, protocol: 'TCP' },
                ],
                env: [
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  // the Go runtime collects before the kernel's OOM killer acts
                  ...(memLimit !== undefined ? [{ name: 'GOMEMLIMIT', value: `${Math.floor((memLimit * 0.9) / 2 ** 20)}MiB` }] : []),
                ],
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(res.cpuRequest), memory: k8s.Quantity.fromString(res.memoryRequest) },
                  limits: { cpu: k8s.Quantity.fromString(res.cpuLimit), memory: k8s.Quantity.fromString(res.memoryLimit) },
                },
                securityContext: restrictedContainerSecurityContext(),
                // recovering a large store can take minutes
                startupProbe: probe(10, 90),
                livenessProbe: probe(30, 3),
                readinessProbe: probe(10, 3),
                volumeMounts: [
                  { name: 'config', mountPath: '/etc/nats', readOnly: true },
                  { name: 'data', mountPath: '/data' },
                ],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: `${this.name}-config` } }],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: selector },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: props.storageClassName,
              resources: { requests: { storage: k8s.Quantity.fromString(storageSize) } },
            },
          },
        ],
      },
    });

    // A quorum of the servers stays up through voluntary evictions; one
    // server has no quorum to keep, and a PDB of minAvailable 1 would block
    // every node drain, so it may be evicted.
    new KubePodDisruptionBudget(this, 'pdb', {
      metadata: metadata(this.name),
      spec: {
        selector: { matchLabels: selector },
        ...(n > 1 ? { minAvailable: k8s.IntOrString.fromNumber(Math.floor(n / 2) + 1) } : { maxUnavailable: k8s.IntOrString.fromNumber(1) }),
      },
    });

    const natsPods = { podSelector: { matchLabels: selector } };
    const agentPods = { podSelector: { matchLabels: { [LABEL_CLUSTER]: cluster } } };
    new KubeNetworkPolicy(this, 'clients-policy', {
      metadata: { name: `${this.name}-clients`, namespace: ns },
      spec: { podSelector: { matchLabels: selector }, policyTypes: ['Ingress'], ingress: [{ from: [agentPods], ports: [tcp(CLIENT_PORT)] }] },
    });
    const monitorFrom: k8s.NetworkPolicyPeer[] = [
      {
        namespaceSelector: { matchLabels: props.kedaNamespaceLabels ?? { 'kubernetes.io/metadata.name': 'keda' } },
        podSelector: { matchLabels: props.kedaPodLabels ?? { app: 'keda-operator' } },
      },
    ];
    if (props.scraperNamespaceLabels) {
      monitorFrom.push({
        namespaceSelector: { matchLabels: props.scraperNamespaceLabels },
        podSelector: props.scraperPodLabels ? { matchLabels: props.scraperPodLabels } : undefined,
      });
    }
    new KubeNetworkPolicy(this, 'monitoring-policy', {
      metadata: { name: `${this.name}-monitoring`, namespace: ns },
      spec: { podSelector: { matchLabels: selector }, policyTypes: ['Ingress'], ingress: [{ from: monitorFrom, ports: [tcp(MONITOR_PORT)] }] },
    });
    new KubeNetworkPolicy(this, 'routes-policy', {
      metadata: { name: `${this.name}-routes`, namespace: ns },
      spec: {
        podSelector: { matchLabels: selector },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [natsPods], ports: [tcp(ROUTE_PORT)] }],
        egress: [{ to: [natsPods], ports: [tcp(ROUTE_PORT)] }],
      },
    });
    new KubeNetworkPolicy(this, 'agent-egress', {
      metadata: { name: `${cluster}-job-store`, namespace: ns },
      spec: { podSelector: { matchLabels: { [LABEL_CLUSTER]: cluster } }, policyTypes: ['Egress'], egress: [{ to: [natsPods], ports: [tcp(CLIENT_PORT)] }] },
    });

    const names = jobNames(cluster);
    this.bound = {
      config: { url: this.url, ...names, replicas: streamReplicas },
      jobQueue: { monitoringEndpoint: this.monitoringEndpoint, account: GLOBAL_ACCOUNT, ...names },
    };

    Node.of(this).addValidation({
      validate: () => {
        const errors: string[] = [];
        if (![1, 3, 5].includes(n)) errors.push(problem('replicas', `${n} is not 1, 3 or 5`, 'use 3 (or 5 to survive two failures; 1 for a test cluster)'));
        errors.push(...streamReplicaProblems(streamReplicas, n));
        if (storageBytes === undefined) errors.push(problem('storageSize', `'${storageSize}' is not a Kubernetes quantity`, "write e.g. '10Gi'"));
        if (props.storageClassName !== undefined && !isDnsSubdomain(props.storageClassName)) {
          errors.push(problem('storageClassName', `'${props.storageClassName}' is not a valid StorageClass name`, 'use lower-case letters, digits, dashes and dots'));
        }
        errors.push(...imageProblems(image).map((p) => problem('image', p, `pin a release, e.g. '${DEFAULT_NATS_IMAGE}' or 'nats@sha256:<digest>'`)));
        for (const kind of ['cpu', 'memory'] as const) {
          const reqText = kind === 'cpu' ? res.cpuRequest : res.memoryRequest;
          const limText = kind === 'cpu' ? res.cpuLimit : res.memoryLimit;
          const req = parseQuantity(reqText);
          const lim = parseQuantity(limText);
          if (req === undefined) errors.push(problem(`resources.${kind}Request`, `'${reqText}' is not a Kubernetes quantity`, "write e.g. '250m' or '512Mi'"));
          if (lim === undefined) errors.push(problem(`resources.${kind}Limit`, `'${limText}' is not a Kubernetes quantity`, "write e.g. '1' or '1Gi'"));
          if (req !== undefined && lim !== undefined && req > lim) errors.push(problem(`resources.${kind}Request`, `request ${reqText} exceeds limit ${limText}`, `lower ${kind}Request or raise ${kind}Limit`));
        }
        if (!isDnsLabel(this.name) || !isDnsLabel(headless)) errors.push(problem('clusterName', `'${headless}' is not a DNS label`, 'use a cluster name of at most 50 characters'));
        const taken = (props.roles ?? []).filter((r) => r === this.name || r === headless);
        for (const r of taken) errors.push(problem('roles', `role '${r}' has the name of the job store's NATS objects`, 'rename the role'));
        return errors;
      },
    });
  }

  /** @internal */
  public _bound(): BoundJobStore {
    return this.bound;
  }
}
