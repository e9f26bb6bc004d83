import { Testing } from 'cdk8s';
import { Construct } from 'constructs';
import { AgentAutoscaler, AgentCluster, AgentDeployment, AgentRoleSpec, ModelCatalog, PriorityClass, Topology, WorkerKind } from '../src';

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
