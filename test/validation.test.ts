import { Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import {
  AgentAutoscaler,
  AgentCluster,
  AgentClusterProps,
  AgentDeployment,
  AgentNamespace,
  AgentPodOptions,
  AgentRoleSpec,
  AgentScaledObject,
  Autoscaling,
  EnvValue,
  KedaTrigger,
  ModelCatalog,
  PriorityClass,
  ScrapeWith,
  Topology,
  WorkerKind,
} from '../src';

const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };

/** The synth-time error, or '' when synth succeeds. */
function synthError(build: (chart: Construct) => void): string {
  const chart = Testing.chart();
  build(chart);
  try {
    Testing.synth(chart);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

const hub = (workers: AgentRoleSpec[], coordinator: AgentRoleSpec = { name: 'coordinator' }) => Topology.hubAndSpoke({ coordinator, workers });

test('a valid cluster synthesizes without errors', () => {
  expect(synthError((c) => new AgentCluster(c, 'ok', { topology: hub([{ name: 'w' }]), upstream }))).toBe('');
});

test('HPA min > max names the path, the field and the fix', () => {
  const msg = synthError((c) => {
    const d = new AgentDeployment(c, 'worker', { agentConfigJson: '{}' });
    new AgentAutoscaler(c, 'hpa', { target: d, minReplicas: 8, maxReplicas: 4 });
  });
  expect(msg).toMatch(/\[test\/hpa\] minReplicas: minReplicas 8 exceeds maxReplicas 4\. Fix: lower minReplicas to at most 4 or raise maxReplicas/);
});

test('a config over the 1 MiB a ConfigMap may hold names the path, the size and the fix', () => {
  const big = JSON.stringify({ role: 'worker', note: 'x'.repeat(1024 * 1024) });
  const msg = synthError((c) => new AgentDeployment(c, 'worker', { agentConfigJson: big }));
  expect(msg).toContain(`[test/worker] agentConfigJson: ${Buffer.byteLength(big)} bytes, over the 1 MiB (1048576) a ConfigMap may hold`);
  expect(msg).toContain('split a very large mesh into a hierarchical topology');
  // multi-byte characters count as bytes, not as characters
  const wide = JSON.stringify({ note: 'é'.repeat(600 * 1024) });
  expect(wide.length).toBeLessThan(1024 * 1024);
  expect(synthError((c) => new AgentDeployment(c, 'worker', { agentConfigJson: wide }))).toContain('agentConfigJson: ');
  const fits = JSON.stringify({ note: 'x'.repeat(1000 * 1024) });
  expect(synthError((c) => new AgentDeployment(c, 'worker', { agentConfigJson: fits }))).toBe('');
});

test('an HPA target out of range is rejected', () => {
  const msg = synthError((c) => {
    const d = new AgentDeployment(c, 'worker', { agentConfigJson: '{}' });
    new AgentAutoscaler(c, 'hpa', { target: d, cpuUtilizationPercent: 150 });
  });
  expect(msg).toMatch(/\[test\/hpa\] cpuUtilizationPercent: 150 is out of range\. Fix: use a whole percentage from 1 to 100/);
});

test('a model missing from the catalog names the role and lists the known models', () => {
  const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w', models: ['gpt-5-ultra'] }]), upstream }));
  expect(msg).toMatch(/\[test\/agents\/w\] models: role 'w' uses model 'gpt-5-ultra', which is not in the catalog\. Fix: use one of gpt-4.1, claude-sonnet-4.5, gemini-2.5-flash, deepseek-v3.2 or add it/);
});

test('a fallback missing from the catalog is rejected', () => {
  const catalog = ModelCatalog.defaults().withModel({ id: 'local-llama', inputUsdPerMTok: 0, fallbacks: ['nowhere'] });
  const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w' }]), upstream, catalog }));
  expect(msg).toMatch(/\[test\/agents\] catalog: model 'local-llama' falls back to 'nowhere', which is not in the catalog/);
});

test('a hierarchy with a cycle is rejected', () => {
  const msg = synthError(
    (c) =>
      new AgentCluster(c, 'agents', {
        upstream,
        topology: Topology.hierarchical({
          coordinator: { name: 'coordinator' },
          supervisors: [
            { name: 'sup-a', reportsTo: 'sup-b' },
            { name: 'sup-b', reportsTo: 'sup-a' },
          ],
          workers: [{ name: 'w', reportsTo: 'sup-a' }],
        }),
      }),
  );
  expect(msg).toMatch(/\[test\/agents\] topology: supervisors form a cycle \(sup-a → sup-b → sup-a\): a hierarchy is a tree; make one of them report to 'coordinator'/);
});

test('a hierarchy with an orphan worker or supervisor is rejected', () => {
  const orphanWorker = synthError(
    (c) =>
      new AgentCluster(c, 'agents', {
        upstream,
        topology: Topology.hierarchical({
          coordinator: { name: 'coordinator' },
          supervisors: [{ name: 'sup', reportsTo: 'coordinator' }],
          workers: [
            { name: 'w', reportsTo: 'sup' },
            { name: 'lost', reportsTo: 'nobody' },
          ],
        }),
      }),
  );
  expect(orphanWorker).toMatch(/worker 'lost' reports to 'nobody', which is not a supervisor: set reportsTo to one of sup/);
  const idle = synthError(
    (c) =>
      new AgentCluster(c, 'agents', {
        upstream,
        topology: Topology.hierarchical({
          coordinator: { name: 'coordinator' },
          supervisors: [
            { name: 'sup', reportsTo: 'coordinator' },
            { name: 'idle', reportsTo: 'coordinator' },
          ],
          workers: [{ name: 'w', reportsTo: 'sup' }],
        }),
      }),
  );
  expect(idle).toMatch(/supervisor 'idle' has no workers \(orphan\)/);
});

test('zero replicas and no autoscaler is rejected', () => {
  const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w', replicas: 0 }]), upstream }));
  expect(msg).toMatch(/\[test\/agents\/w\] replicas: role 'w' has 0 replicas and no autoscaler.*Fix: set replicas >= 1 or give it autoscaling/);
});

test("a fan-out larger than the callees' capacity is rejected with the capacity", () => {
  const msg = synthError(
    (c) =>
      new AgentCluster(c, 'agents', {
        topology: hub([{ name: 'w', replicas: 2, maxInFlightTasks: 4 }], { name: 'coordinator', fanOutConcurrency: 20 }),
        upstream,
      }),
  );
  expect(msg).toMatch(/\[test\/agents\/coordinator\] fanOutConcurrency: 20 tasks in flight exceed the 8 its callees \(w\) can ever hold.*Fix: lower fanOutConcurrency to 8/);
});

test('requests above limits are rejected', () => {
  const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w', resources: { memoryRequest: '2Gi', memoryLimit: '1Gi' } }]), upstream }));
  expect(msg).toMatch(/\[test\/agents\/w\] resources\.memoryRequest: request 2Gi exceeds limit 1Gi\. Fix: lower memoryRequest or raise memoryLimit/);
});

test.each([
  ['registry.example.com/agent', /has no tag or digest/],
  ['registry.example.com:5000/agent', /has no tag or digest/],
  ['agent:latest', /uses the mutable tag 'latest'/],
])('image %s is rejected', (image, problem) => {
  const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w' }]), upstream, image }));
  expect(msg).toMatch(/\[test\/agents\/(coordinator|w)\] image: /);
  expect(msg).toMatch(problem);
  expect(msg).toMatch(/Fix: pin a version/);
});

test('an image pinned by digest is accepted', () => {
  expect(synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w' }]), upstream, image: `repo/agent@sha256:${'a'.repeat(64)}` }))).toBe('');
});

test('API access must be read-only and on named objects', () => {
  const msg = synthError(
    (c) =>
      new AgentCluster(c, 'agents', {
        topology: hub([{ name: 'w', apiAccess: [{ resource: 'services', resourceNames: [], verbs: ['create', 'delete'] }] }]),
        upstream,
      }),
  );
  expect(msg).toMatch(/apiAccess\[0\]\.verbs: create, delete not allowed\. Fix: agents get read-only access/);
  expect(msg).toMatch(/apiAccess\[0\]\.resourceNames: access must be to named objects/);
});

test('a role that needs the API gets a read-only Role on named objects and a mounted token', () => {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', {
    topology: hub([{ name: 'w' }, { name: 'reader', workerKind: WorkerKind.DATA_RETRIEVAL, apiAccess: [{ resource: 'configmaps', resourceNames: ['routing'], verbs: ['get', 'watch'] }] }]),
    upstream,
  });
  const objs = Testing.synth(chart);
  const role = objs.find((o: any) => o.kind === 'Role');
  expect(role.rules).toEqual([{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['routing'], verbs: ['get', 'watch'] }]);
  expect(objs.find((o: any) => o.kind === 'RoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'reader', namespace: 'agents' }]);
  const pods = objs.filter((o: any) => o.kind === 'Deployment');
  expect(pods.find((d: any) => d.metadata.name === 'reader').spec.template.spec.automountServiceAccountToken).toBe(true);
  expect(pods.find((d: any) => d.metadata.name === 'w').spec.template.spec.automountServiceAccountToken).toBe(false);
});

test('PriorityClass value out of range is rejected', () => {
  expect(synthError((c) => new PriorityClass(c, 'pc', { value: 2_000_000_000 }))).toMatch(/\[test\/pc\] value: 2000000000 is out of range/);
});

describe('synth refuses what the API server or the runtime would refuse (issue 10 list)', () => {
  const cluster = (extra: Partial<AgentClusterProps> = {}, workers: AgentRoleSpec[] = [{ name: 'w' }]) =>
    synthError((c) => new AgentCluster(c, 'agents', { topology: hub(workers), upstream, ...extra }));

  test.each<[string, () => string, RegExp]>([
    ['fanOutConcurrency 0', () => cluster({ fanOutConcurrency: 0 }), /^ {2}\[test\/agents\] fanOutConcurrency: 0 is not a whole number >= 1\. Fix: set 1 or more/m],
    ['a role with replicas -1', () => cluster({}, [{ name: 'w', replicas: -1 }]), /^ {2}\[test\/agents\/w\] replicas: -1 is not a whole number >= 0\. Fix: set replicas to 1 or more/m],
    ['Secret name Bad_Name', () => cluster({ upstream: { ...upstream, apiKeySecretName: 'Bad_Name' } }), /^ {2}\[test\/agents\] upstream\.apiKeySecretName: 'Bad_Name' is not a valid Secret name\. Fix: /m],
    [
      'CIDR 300.1.2.3/99',
      () => cluster({ upstreamEgress: [{ cidr: '300.1.2.3/99' }] }),
      /^ {2}\[test\/agents\] upstreamEgress\[0\]\.cidr: '300\.1\.2\.3' in '300\.1\.2\.3\/99' is not an IP address\. Fix: write an address and prefix/m,
    ],
    ['baseUrl not a url', () => cluster({ upstream: { ...upstream, baseUrl: 'not a url' } }), /^ {2}\[test\/agents\] upstream\.baseUrl: 'not a url' is not a URL\. Fix: /m],
    [
      'http:// upstream on a public host',
      () => cluster({ upstream: { ...upstream, baseUrl: 'http://api.openai.com/v1' } }),
      /^ {2}\[test\/agents\] upstream\.baseUrl: 'http:\/\/api\.openai\.com\/v1' is plain http to the public host api\.openai\.com, so the API key would travel in clear text\. Fix: use https:\/\//m,
    ],
    [
      'maxDeadlineMs below defaultDeadlineMs',
      () => cluster({ defaultDeadlineMs: 60000, maxDeadlineMs: 30000 }),
      /^ {2}\[test\/agents\] maxDeadlineMs: 30000 is below defaultDeadlineMs 60000, so the runtime refuses its config\. Fix: raise maxDeadlineMs to at least 60000/m,
    ],
    [
      'two workers with the same name',
      () => cluster({}, [{ name: 'w' }, { name: 'w' }]),
      /^ {2}\[test\/agents\] topology: role name 'w' is used twice: role names must be unique\.$/m,
    ],
  ])('%s fails synth with path, field and fix', (_name, run, expected) => {
    const msg = run();
    expect(msg).toMatch(expected);
    expect(msg).not.toMatch(/There is already a Construct/);
  });

  test('an http:// upstream inside the cluster is fine (the key never leaves it)', () => {
    expect(cluster({ upstream: { ...upstream, baseUrl: 'http://llm-gateway.ai.svc.cluster.local:8000/v1' } })).toBe('');
    expect(cluster({ upstream: { ...upstream, baseUrl: 'http://10.0.0.12:8000/v1' } })).toBe('');
  });

  test('every error line prints its construct path exactly once', () => {
    const msg = cluster({ fanOutConcurrency: 0, maxDeadlineMs: 10, upstreamEgress: [{ cidr: '1.2.3.4/40' }] }, [
      { name: 'w', replicas: -1, resources: { memoryRequest: '2Gi', memoryLimit: '1Gi' } },
      { name: 'v', models: ['nope'] },
    ]);
    const lines = msg.split('\n').slice(1);
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const line of lines) expect(line).toMatch(/^ {2}\[[^\]]+\] [A-Za-z][\w.[\]]*: [^[]*$/);
  });
});

describe('pod shaping is checked at synth', () => {
  const withPods = (pods: AgentPodOptions) => synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w', pods }]), upstream }));
  const res = { requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('16Mi') }, limits: { cpu: k8s.Quantity.fromString('50m'), memory: k8s.Quantity.fromString('32Mi') } };

  test.each<[string, AgentPodOptions, RegExp]>([
    ['a privileged sidecar', { sidecars: [{ name: 's', image: 'busybox:1.36', resources: res, securityContext: { privileged: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }] }, /\[test\/agents\/w\] pods\.sidecars\[0\]\.securityContext\.privileged: privileged containers break Pod Security restricted\. Fix: remove privileged/],
    ['a sidecar adding NET_ADMIN', { sidecars: [{ name: 's', image: 'busybox:1.36', resources: res, securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } } }] }, /pods\.sidecars\[0\]\.securityContext\.capabilities\.add: NET_ADMIN not allowed/],
    ['a sidecar without limits', { sidecars: [{ name: 's', image: 'busybox:1.36' }] }, /pods\.sidecars\[0\]\.resources\.requests\.cpu: missing: every container needs requests and limits/],
    ['a sidecar on latest', { sidecars: [{ name: 's', image: 'busybox:latest', resources: res }] }, /pods\.sidecars\[0\]\.image: 'busybox:latest' uses the mutable tag 'latest'/],
    ['a hostPath volume', { volumes: [{ name: 'host', hostPath: { path: '/var/run' } }] }, /pods\.volumes\[0\]: volume 'host' of type hostPath is not allowed by Pod Security restricted/],
    ['a mount over the config', { volumes: [{ name: 'x', emptyDir: {} }], volumeMounts: [{ name: 'x', mountPath: '/etc/agent-runtime' }] }, /pods\.volumeMounts\[0\]\.mountPath: \/etc\/agent-runtime is where the constructs mount/],
    ['a mount of an unknown volume', { volumeMounts: [{ name: 'nowhere', mountPath: '/data' }] }, /pods\.volumeMounts\[0\]\.name: mounts volume 'nowhere', which no volume defines/],
    ['an env var the runtime reads', { env: { UPSTREAM_API_KEY: EnvValue.fromValue('x') } }, /pods\.env\.UPSTREAM_API_KEY: is set by the constructs/],
    ['an env var from a badly named Secret', { env: { TOKEN: EnvValue.fromSecret('Bad_Name', 'k') } }, /pods\.env\.TOKEN: 'Bad_Name' is not a valid Secret\/ConfigMap name/],
    ['a bad toleration operator', { tolerations: [{ key: 'k', operator: 'Equals' }] }, /pods\.tolerations\[0\]\.operator: 'Equals' is unknown\. Fix: use 'Equal' or 'Exists'/],
    ['a bad imagePullSecret', { imagePullSecrets: ['Registry_Creds'] }, /pods\.imagePullSecrets\[0\]: 'Registry_Creds' is not a valid Secret name/],
    ['a pod label that would change the selector', { podLabels: { 'agents.cdk8s.io/role': 'other' } }, /pods\.podLabels: 'agents\.cdk8s\.io\/role' is set by the constructs/],
  ])('%s is refused', (_name, pods, expected) => {
    expect(withPods(pods)).toMatch(expected);
  });

  test('the cluster sets defaults, a role adds to them; objects stay reachable', () => {
    const chart = Testing.chart();
    const agents = new AgentCluster(chart, 'agents', {
      topology: hub([{ name: 'w', pods: { nodeSelector: { gpu: 'none' }, tolerations: [{ key: 'spot', operator: 'Exists' }], serviceAccountAnnotations: { 'iam.gke.io/gcp-service-account': 'w@p.iam.gserviceaccount.com' } } }]),
      upstream,
      pods: { nodeSelector: { pool: 'agents' }, tolerations: [{ key: 'dedicated', value: 'agents', effect: 'NoSchedule' }], imagePullSecrets: ['regcred'], podAnnotations: { team: 'ai' } },
    });
    const w = agents.agent('w');
    expect(w.serviceAccount.metadata.name).toBe('w');
    expect(w.podDisruptionBudget.kind).toBe('PodDisruptionBudget');
    const objs = Testing.synth(chart);
    const pod = (name: string) => objs.find((o: any) => o.kind === 'Deployment' && o.metadata.name === name).spec.template;
    expect(pod('w').spec.nodeSelector).toEqual({ pool: 'agents', gpu: 'none' });
    expect(pod('w').spec.tolerations).toEqual([{ key: 'dedicated', value: 'agents', effect: 'NoSchedule' }, { key: 'spot', operator: 'Exists' }]);
    expect(pod('coordinator').spec.tolerations).toEqual([{ key: 'dedicated', value: 'agents', effect: 'NoSchedule' }]);
    expect(pod('coordinator').spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(pod('coordinator').metadata.annotations).toEqual({ team: 'ai' });
    const sa = (name: string) => objs.find((o: any) => o.kind === 'ServiceAccount' && o.metadata.name === name);
    expect(sa('w').metadata.annotations).toEqual({ 'iam.gke.io/gcp-service-account': 'w@p.iam.gserviceaccount.com' });
    expect(sa('coordinator').metadata.annotations).toBeUndefined();
  });

  test('a sidecar without a securityContext gets the restricted one', () => {
    const chart = Testing.chart();
    new AgentDeployment(chart, 'w', { agentConfigJson: '{}', pods: { sidecars: [{ name: 'proxy', image: 'envoy:1.31.0', resources: res }] } });
    const d = Testing.synth(chart).find((o: any) => o.kind === 'Deployment');
    expect(d.spec.template.spec.containers[1].securityContext).toEqual({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });
});

describe('KEDA and monitoring options are checked at synth', () => {
  test('a taskLoad target above 1, no triggers, or a bad Prometheus URL is refused', () => {
    const msg = synthError((c) => {
      const d = new AgentDeployment(c, 'w', { agentConfigJson: '{}' });
      new AgentScaledObject(c, 'keda', { target: d, triggers: [KedaTrigger.taskLoad(1.5)], prometheusServerAddress: 'prometheus:9090' });
      const e = new AgentDeployment(c, 'e', { agentConfigJson: '{}' });
      new AgentScaledObject(c, 'keda-e', { target: e, triggers: [] });
    });
    expect(msg).toMatch(/\[test\/keda\] triggers\[0\]: taskLoad target 1\.5 is not a fraction of capacity in \(0, 1\]/);
    expect(msg).toMatch(/\[test\/keda\] prometheusServerAddress: 'prometheus:9090' is not an http\(s\) URL/);
    expect(msg).toMatch(/\[test\/keda-e\] triggers: no trigger to scale on/);
  });

  test('monitoring thresholds out of range are refused', () => {
    const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w' }]), upstream, monitoring: { minSuccessRate: 95, scrapeInterval: 'often', monitoringNamespaceLabels: {} } }));
    expect(msg).toMatch(/\[test\/agents\/monitoring\] monitoring\.minSuccessRate: 95 is not a fraction in \(0, 1\]/);
    expect(msg).toMatch(/monitoring\.scrapeInterval: 'often' is not a Prometheus duration/);
    expect(msg).toMatch(/monitoring\.monitoringNamespaceLabels: empty labels would admit every namespace/);
  });

  test('a role on Autoscaling.keda gets a ScaledObject, no HPA, and its Deployment no replicas; PodMonitor when asked', () => {
    const chart = Testing.chart();
    new AgentCluster(chart, 'agents', {
      topology: hub([{ name: 'w', autoscaling: Autoscaling.keda({ minReplicas: 2, maxReplicas: 9 }) }, { name: 'fixed', replicas: 2 }]),
      upstream,
      monitoring: { scrapeWith: ScrapeWith.POD_MONITOR, dashboard: false, alerts: false },
    });
    const objs = Testing.synth(chart);
    const so = objs.find((o: any) => o.kind === 'ScaledObject');
    expect([so.metadata.name, so.spec.minReplicaCount, so.spec.maxReplicaCount]).toEqual(['w', 2, 9]);
    expect(so.spec.triggers.map((t: any) => t.type)).toEqual(['prometheus', 'cpu']);
    expect(objs.filter((o: any) => o.kind === 'HorizontalPodAutoscaler').map((o: any) => o.metadata.name)).toEqual(['coordinator']);
    const dep = (n: string) => objs.find((o: any) => o.kind === 'Deployment' && o.metadata.name === n).spec;
    expect(dep('w')).not.toHaveProperty('replicas');
    expect(dep('coordinator')).not.toHaveProperty('replicas');
    expect(dep('fixed').replicas).toBe(2);
    expect(objs.filter((o: any) => o.kind === 'PodMonitor').map((o: any) => o.metadata.name).sort()).toEqual(['coordinator', 'fixed', 'w']);
    expect(objs.filter((o: any) => o.kind === 'PrometheusRule' || o.kind === 'ServiceMonitor')).toEqual([]);
    expect(objs.filter((o: any) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard)).toEqual([]);
  });
});

test('AgentNamespace and PriorityClass print their path once too', () => {
  const msg = synthError((c) => {
    new AgentNamespace(c, 'ns', { name: 'Bad_Ns' });
    new PriorityClass(c, 'pc', { value: 2_000_000_000, preemptionPolicy: 'Sometimes' });
  });
  const lines = msg.split('\n').slice(1);
  expect(lines).toHaveLength(3);
  for (const line of lines) expect(line.match(/\[test\//g)).toHaveLength(1);
  expect(msg).toMatch(/^ {2}\[test\/ns\] name: 'Bad_Ns' is not a DNS label\./m);
});
