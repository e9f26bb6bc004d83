import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Testing } from 'cdk8s';
import { Construct } from 'constructs';
import * as fc from 'fast-check';
import { AgentCluster, AgentClusterProps, AgentRoleSpec, Autoscaling, DEFAULT_NATS_IMAGE, JobStore, KedaTrigger, Topology, WorkerKind } from '../src';
import { agentConfigErrors, K8sObject, restrictedViolations, validateAny, validateCrds, validateK8s } from './support/manifests';
import { reachableEdges } from './support/reachability';

const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };
const hub = (coordinator: AgentRoleSpec = { name: 'coordinator' }) =>
  Topology.hubAndSpoke({ coordinator, workers: [{ name: 'task-executor', workerKind: WorkerKind.TASK_EXECUTOR }, { name: 'validation', workerKind: WorkerKind.VALIDATION }] });

function synth(props: Partial<AgentClusterProps> = {}, id = 'agents'): K8sObject[] {
  const chart = Testing.chart();
  new AgentCluster(chart, id, { topology: hub(), upstream, ...props });
  return Testing.synth(chart) as K8sObject[];
}

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

const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
};
const configs = (objs: K8sObject[]) => objs.filter((o) => o.kind === 'ConfigMap' && o.data?.['agent-config.json']).map((o) => JSON.parse(o.data['agent-config.json']));

/** Runs `nats-server -t` on a config file; the Debian package must be installed (the test fails, never skips, without it). */
function natsConfigCheck(conf: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nats-conf-'));
  try {
    const file = path.join(dir, 'nats.conf');
    writeFileSync(file, conf);
    const r = spawnSync('nats-server', ['-c', file, '-t'], { env: { ...process.env, POD_NAME: 'agents-nats-0' }, encoding: 'utf8' });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error('nats-server is not installed: apt-get install -y nats-server');
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('JobStore.jetStream()', () => {
  const objs = synth({ jobStore: JobStore.jetStream(), monitoring: {} });
  const sts = find(objs, 'StatefulSet', 'agents-nats');
  const pod = sts.spec.template.spec;

  test('a StatefulSet of 3 pinned nats pods, file store on PVCs, the headless route Service and the client Service; all schema-valid', () => {
    expect(() => validateAny(objs)).not.toThrow();
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.serviceName).toBe('agents-nats-headless');
    expect(pod.containers[0].image).toBe(DEFAULT_NATS_IMAGE);
    expect(DEFAULT_NATS_IMAGE).toMatch(/^nats:\d+\.\d+\.\d+-alpine$/);
    expect(sts.spec.volumeClaimTemplates[0].spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'data', mountPath: '/data' });
    const headless = find(objs, 'Service', 'agents-nats-headless');
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    expect(headless.spec.ports.map((p: any) => p.port)).toEqual([4222, 6222, 8222]);
    expect(find(objs, 'Service', 'agents-nats').spec.ports).toEqual([{ name: 'client', port: 4222, targetPort: 'client', protocol: 'TCP' }]);
    for (const svc of [headless, find(objs, 'Service', 'agents-nats')]) {
      for (const [k, v] of Object.entries(svc.spec.selector)) expect(sts.spec.template.metadata.labels[k]).toBe(v);
    }
  });

  test('nats pods meet the agent baseline: restricted, own ServiceAccount without a token, PriorityClass, probes on /healthz?js-enabled-only=true, requests and limits', () => {
    expect(restrictedViolations(pod)).toEqual([]);
    expect(pod.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.serviceAccountName).toBe('agents-nats');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(find(objs, 'ServiceAccount', 'agents-nats').automountServiceAccountToken).toBe(false);
    expect(objs.some((o) => o.kind === 'PriorityClass' && o.metadata.name === pod.priorityClassName)).toBe(true);
    const c = pod.containers[0];
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) expect(probe.httpGet).toEqual({ path: '/healthz?js-enabled-only=true', port: 'monitor' });
    expect(c.ports.find((p: any) => p.name === 'monitor').containerPort).toBe(8222);
    expect(c.resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } });
  });

  test('the PDB keeps a quorum: minAvailable 2 of 3, 3 of 5', () => {
    expect(find(objs, 'PodDisruptionBudget', 'agents-nats').spec.minAvailable).toBe(2);
    const five = synth({ jobStore: JobStore.jetStream({ replicas: 5 }) });
    expect(find(five, 'PodDisruptionBudget', 'agents-nats').spec.minAvailable).toBe(3);
    expect(find(five, 'StatefulSet', 'agents-nats').spec.replicas).toBe(5);
  });

  test('the nats-server config passes `nats-server -t`, runs JetStream on the PVC and routes to every pod through the headless Service', () => {
    const conf: string = find(objs, 'ConfigMap', 'agents-nats-config').data['nats.conf'];
    expect(natsConfigCheck(conf)).toEqual({ status: 0, output: expect.stringContaining('is valid') });
    expect(conf).toMatch(/jetstream \{\n {2}store_dir: \/data\n/);
    expect(conf).toContain('server_name: $POD_NAME');
    for (let i = 0; i < 3; i++) expect(conf).toContain(`nats://agents-nats-${i}.agents-nats-headless.agents.svc.cluster.local:6222`);
    // the check is not a no-op
    expect(natsConfigCheck(conf.replace('store_dir', 'store_dirr')).status).not.toBe(0);
    // one server: no cluster block, and that config is valid too
    const single: string = find(synth({ jobStore: JobStore.jetStream({ replicas: 1 }) }), 'ConfigMap', 'agents-nats-config').data['nats.conf'];
    expect(single).not.toContain('cluster {');
    expect(natsConfigCheck(single).status).toBe(0);
  });

  test('every role gets the jobStore config (names from the cluster name, valid for JetStream) and egress to the client port', () => {
    const all = configs(objs);
    expect(all.map((c) => c.role).sort()).toEqual(['coordinator', 'task-executor', 'validation']);
    for (const c of all) {
      expect(c.jobStore).toEqual({ url: 'nats://agents-nats.agents.svc.cluster.local:4222', stream: 'agents-jobs', consumer: 'agents-job-runners', bucket: 'agents-jobs', replicas: 3 });
      expect(agentConfigErrors(c)).toEqual([]);
    }
  });

  test('NetworkPolicies: client port only from this cluster\'s agents, routes only between nats pods, monitoring only from KEDA and the scrapers', () => {
    // outsiders: the KEDA operator, Prometheus, another namespace's pod, a pod of this namespace that is no agent
    const outsider = (name: string, namespace: string, labels: Record<string, string>): K8sObject => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace }, spec: { template: { metadata: { labels } } } });
    const world = [
      ...objs,
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'monitoring' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } },
      outsider('keda-operator', 'keda', { app: 'keda-operator' }),
      outsider('prometheus', 'monitoring', { app: 'prometheus' }),
      outsider('intruder', 'other', { 'agents.cdk8s.io/cluster': 'agents' }),
      outsider('neighbour', 'agents', { app: 'neighbour' }),
    ] as K8sObject[];
    const into = (port: number, name: string) => [...reachableEdges(world, port, name)].filter((e) => e.endsWith('->agents-nats')).map((e) => e.split('->')[0]).sort();
    expect(into(4222, 'client')).toEqual(['coordinator', 'task-executor', 'validation']);
    expect(into(6222, 'cluster')).toEqual(['agents-nats']);
    expect(into(8222, 'monitor')).toEqual(['keda-operator', 'prometheus']);
    // and nats pods reach nothing but each other's route port
    expect([...reachableEdges(world, 4222, 'client')].filter((e) => e.startsWith('agents-nats->'))).toEqual([]);
  });

  test('without monitoring only KEDA may read the monitoring port', () => {
    const plain = synth({ jobStore: JobStore.jetStream() });
    const policy = find(plain, 'NetworkPolicy', 'agents-nats-monitoring');
    expect(policy.spec.ingress).toEqual([
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } }, podSelector: { matchLabels: { app: 'keda-operator' } } }], ports: [{ protocol: 'TCP', port: 8222 }] },
    ]);
  });

  test('storage size and class, image, resources and stream replicas follow the options', () => {
    const o = synth({ jobStore: JobStore.jetStream({ storageSize: '50Gi', storageClassName: 'fast-ssd', image: 'registry.example.com/nats@sha256:' + 'a'.repeat(64), streamReplicas: 1, resources: { memoryLimit: '2Gi', memoryRequest: '1Gi' } }) });
    const s = find(o, 'StatefulSet', 'agents-nats');
    expect(s.spec.volumeClaimTemplates[0].spec).toEqual({ accessModes: ['ReadWriteOnce'], storageClassName: 'fast-ssd', resources: { requests: { storage: '50Gi' } } });
    expect(s.spec.template.spec.containers[0].image).toBe(`registry.example.com/nats@sha256:${'a'.repeat(64)}`);
    expect(s.spec.template.spec.containers[0].env).toContainEqual({ name: 'GOMEMLIMIT', value: '1843MiB' });
    expect(find(o, 'ConfigMap', 'agents-nats-config').data['nats.conf']).toContain(`max_file_store: ${Math.floor(50 * 2 ** 30 * 0.9)}`);
    for (const c of configs(o)) expect(c.jobStore.replicas).toBe(1);
  });
});

describe('queue-driven scaling', () => {
  test('the entry role on KEDA scales on the job consumer\'s pending count (nats-jetstream) and CPU; workers keep task load; schema-valid', () => {
    const chart = Testing.chart();
    new AgentCluster(chart, 'agents', {
      topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator', autoscaling: Autoscaling.keda() }, workers: [{ name: 'w', autoscaling: Autoscaling.keda() }] }),
      upstream,
      jobStore: JobStore.jetStream(),
    });
    const objs = Testing.synth(chart) as K8sObject[];
    const entry = find(objs, 'ScaledObject', 'coordinator');
    expect(entry.spec.triggers).toEqual([
      {
        type: 'nats-jetstream',
        metadata: {
          natsServerMonitoringEndpoint: 'agents-nats-headless.agents.svc.cluster.local:8222',
          account: '$G',
          stream: 'agents-jobs',
          consumer: 'agents-job-runners',
          lagThreshold: '10',
        },
      },
      { type: 'cpu', metricType: 'Utilization', metadata: { value: '70' } },
    ]);
    expect(find(objs, 'ScaledObject', 'w').spec.triggers.map((t: any) => t.type)).toEqual(['prometheus', 'cpu']);
    const scaled = objs.filter((o) => o.kind === 'ScaledObject');
    expect(validateCrds(scaled)).toEqual(scaled.map((o) => ({ kind: 'ScaledObject', name: o.metadata.name, error: null })));
    // the schema check is not a no-op: a number where KEDA wants a string is refused
    const broken = JSON.parse(JSON.stringify(entry));
    broken.spec.triggers[0].metadata.lagThreshold = 10;
    expect(validateCrds([broken])[0].error).not.toBeNull();
    // the endpoint KEDA reads is the headless Service that publishes each pod (KEDA prefixes the server name = pod name)
    const conf: string = find(objs, 'ConfigMap', 'agents-nats-config').data['nats.conf'];
    expect(conf).toContain('server_name: $POD_NAME');
    expect(find(objs, 'Service', 'agents-nats-headless').spec.ports).toContainEqual({ name: 'monitor', port: 8222, targetPort: 'monitor', protocol: 'TCP' });
  });

  test('an explicit lagThreshold, and an external store with a monitoring endpoint', () => {
    const chart = Testing.chart();
    new AgentCluster(chart, 'agents', {
      topology: hub({ name: 'coordinator', autoscaling: Autoscaling.keda({ triggers: [KedaTrigger.jobQueue(25)] }) }),
      upstream,
      jobStore: JobStore.external({ url: 'nats://nats.nats.svc.cluster.local:4222', monitoringEndpoint: 'nats-headless.nats.svc.cluster.local:8222', monitoringAccount: 'AGENTS' }),
    });
    const objs = Testing.synth(chart) as K8sObject[];
    expect(find(objs, 'ScaledObject', 'coordinator').spec.triggers).toEqual([
      { type: 'nats-jetstream', metadata: { natsServerMonitoringEndpoint: 'nats-headless.nats.svc.cluster.local:8222', account: 'AGENTS', stream: 'agents-jobs', consumer: 'agents-job-runners', lagThreshold: '25' } },
    ]);
  });

  test('no job store: the entry\'s default KEDA triggers stay task load and CPU, and jobQueue is a synth error naming the fix', () => {
    const objs = synth({ topology: hub({ name: 'coordinator', autoscaling: Autoscaling.keda() }) });
    expect(find(objs, 'ScaledObject', 'coordinator').spec.triggers.map((t: any) => t.type)).toEqual(['prometheus', 'cpu']);
    const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: hub({ name: 'coordinator', autoscaling: Autoscaling.keda({ triggers: [KedaTrigger.jobQueue()] }) }), upstream }));
    expect(msg).toContain('[test/agents/coordinator-autoscaler] triggers[0]: jobQueue scales on the job consumer, and this role has no job store KEDA can read. Fix: give the AgentCluster jobStore: JobStore.jetStream()');
    expect(synthError((c) => new AgentCluster(c, 'agents', { topology: hub({ name: 'coordinator', autoscaling: Autoscaling.keda({ triggers: [KedaTrigger.jobQueue(0)] }) }), upstream, jobStore: JobStore.jetStream() })))
      .toContain('triggers[0]: jobQueue lagThreshold 0 is not a whole number >= 1');
  });
});

describe('JobStore.external()', () => {
  const objs = synth({ jobStore: JobStore.external({ url: 'tls://nats-a.example.net:7422,tls://nats-b.example.net:7422', credentialsSecret: { name: 'nats-creds', key: 'agents.creds' }, streamReplicas: 3 }) });

  test('no NATS objects; configs carry the URL and the credentials file; the Secret is mounted read-only, never inlined', () => {
    expect(objs.filter((o) => o.kind === 'StatefulSet')).toEqual([]);
    for (const o of objs) expect(() => validateK8s(o)).not.toThrow();
    for (const c of configs(objs)) {
      expect(c.jobStore).toEqual({ url: 'tls://nats-a.example.net:7422,tls://nats-b.example.net:7422', credentialsFile: '/etc/nats-credentials/nats.creds', stream: 'agents-jobs', consumer: 'agents-job-runners', bucket: 'agents-jobs', replicas: 3 });
      expect(agentConfigErrors(c)).toEqual([]);
    }
    for (const d of objs.filter((o) => o.kind === 'Deployment')) {
      const spec = d.spec.template.spec;
      expect(spec.volumes).toContainEqual({ name: 'nats-credentials', secret: { secretName: 'nats-creds', items: [{ key: 'agents.creds', path: 'nats.creds' }], defaultMode: 0o440 } });
      expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'nats-credentials', mountPath: '/etc/nats-credentials', readOnly: true });
      expect(restrictedViolations(spec)).toEqual([]);
    }
    expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  test('agents get egress to the URL\'s client ports', () => {
    expect(find(objs, 'NetworkPolicy', 'agents-job-store').spec).toEqual({
      podSelector: { matchLabels: { 'agents.cdk8s.io/cluster': 'agents' } },
      policyTypes: ['Egress'],
      egress: [{ ports: [{ protocol: 'TCP', port: 7422 }] }],
    });
  });
});

test('no jobStore: no NATS objects, no jobStore in any config, no egress to NATS', () => {
  const objs = synth();
  expect(objs.filter((o) => /nats|job-store/.test(o.metadata.name))).toEqual([]);
  for (const c of configs(objs)) expect(c).not.toHaveProperty('jobStore');
});

describe('synth errors name the path, the field and the fix', () => {
  const err = (jobStore: JobStore, extra: Partial<AgentClusterProps> = {}) => synthError((c) => new AgentCluster(c, 'agents', { topology: hub(), upstream, jobStore, ...extra }));

  test.each([
    ['http://nats:4222', "[test/agents/job-store] url: 'http://nats:4222' uses http: and NATS clients speak nats:// or tls://. Fix: write nats://<host>:4222 or tls://<host>:4222, several comma-separated."],
    ['nats-server:4222', "[test/agents/job-store] url: 'nats-server:4222' uses nats-server: and NATS clients speak nats:// or tls://"],
    ['not a url', "[test/agents/job-store] url: 'not a url' is not a URL"],
    ['nats://a:4222,nats://b:4222/x', "[test/agents/job-store] url: 'nats://b:4222/x' has a path, which NATS URLs do not have"],
  ])('external url %s', (url, expected) => {
    expect(err(JobStore.external({ url }))).toContain(expected);
  });

  test('replicas not 1/3/5, stream replicas above the NATS size, bad storage, unpinned image, bad secret name', () => {
    expect(err(JobStore.jetStream({ replicas: 4 }))).toContain('[test/agents/job-store] replicas: 4 is not 1, 3 or 5. Fix: use 3 (or 5 to survive two failures; 1 for a test cluster).');
    expect(err(JobStore.jetStream({ replicas: 3, streamReplicas: 5 }))).toContain('[test/agents/job-store] streamReplicas: 5 copies need 5 NATS servers and the cluster has 3. Fix: lower streamReplicas to 3 or raise replicas to 5.');
    expect(err(JobStore.jetStream({ replicas: 1 }))).toBe('');
    expect(err(JobStore.jetStream({ storageSize: 'ten gigs' }))).toContain("storageSize: 'ten gigs' is not a Kubernetes quantity. Fix: write e.g. '10Gi'.");
    expect(err(JobStore.jetStream({ image: 'nats:latest' }))).toContain("image: 'nats:latest' uses the mutable tag 'latest'. Fix: pin a release");
    expect(err(JobStore.jetStream({ resources: { cpuRequest: '2', cpuLimit: '1' } }))).toContain('resources.cpuRequest: request 2 exceeds limit 1');
    expect(err(JobStore.external({ url: 'nats://n:4222', streamReplicas: 2 }))).toContain('streamReplicas: 2 is not 1, 3 or 5');
    expect(err(JobStore.external({ url: 'nats://n:4222', credentialsSecret: { name: 'Bad_Name', key: 'k' } }))).toContain("credentialsSecret.name: 'Bad_Name' is not a valid Secret name");
    expect(err(JobStore.external({ url: 'nats://n:4222', monitoringEndpoint: 'http://n:8222' }))).toContain("monitoringEndpoint: 'http://n:8222' is not host:port");
    // the path is printed once per line
    const msg = err(JobStore.jetStream({ replicas: 4 }));
    expect(msg.match(/\[test\/agents\/job-store\]/g)).toHaveLength(1);
  });

  test('a role named like the NATS objects is refused', () => {
    const msg = synthError((c) => new AgentCluster(c, 'agents', { topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: [{ name: 'agents-nats' }] }), upstream, jobStore: JobStore.jetStream() }));
    expect(msg).toContain("[test/agents/job-store] roles: role 'agents-nats' has the name of the job store's NATS objects. Fix: rename the role.");
  });
});

test('property: every accepted JetStream option set yields schema-valid objects, restricted pods and valid runtime configs', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 3, 5).chain((replicas) => fc.record({
        replicas: fc.constant(replicas),
        streamReplicas: fc.option(fc.constantFrom(...[1, 3, 5].filter((r) => r <= replicas)), { nil: undefined }),
        storageSize: fc.option(fc.constantFrom('1Gi', '500Mi', '2Ti', '20G'), { nil: undefined }),
        storageClassName: fc.option(fc.constantFrom('standard', 'fast.ssd'), { nil: undefined }),
      })),
      fc.constantFrom('agents', 'research-team', 'a1'),
      (options, name) => {
        const chart = Testing.chart();
        new AgentCluster(chart, name, { topology: hub(), upstream, jobStore: JobStore.jetStream(options) });
        const objs = Testing.synth(chart) as K8sObject[];
        for (const o of objs) validateK8s(o);
        expect(restrictedViolations(find(objs, 'StatefulSet', `${name}-nats`).spec.template.spec)).toEqual([]);
        for (const c of configs(objs)) expect(agentConfigErrors(c)).toEqual([]);
      },
    ),
    { numRuns: 25 },
  );
});
