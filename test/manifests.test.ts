import { agentConfigErrors, podTemplates, resolvePeers, restrictedViolations, synthTopology, TOPOLOGY_CHARTS, validateK8s } from './support/manifests';

describe.each(Object.keys(TOPOLOGY_CHARTS))('%s manifests', (topology) => {
  const objs = synthTopology(topology);

  test('every object validates against the Kubernetes schemas', () => {
    expect(objs.length).toBeGreaterThan(20);
    for (const o of objs) {
      expect(() => validateK8s(o)).not.toThrow();
    }
  });

  test('the schema validator really rejects a broken object (guard against a no-op check)', () => {
    const deployment = objs.find((o) => o.kind === 'Deployment')!;
    const broken = JSON.parse(JSON.stringify(deployment));
    broken.spec.replicas = 'three';
    expect(() => validateK8s(broken)).toThrow();
  });

  test('every pod passes Pod Security Standard restricted', () => {
    const pods = podTemplates(objs);
    expect(pods).toHaveLength(topology === 'hierarchical' ? 7 : 5);
    for (const p of pods) expect({ owner: p.owner, violations: restrictedViolations(p.spec) }).toEqual({ owner: p.owner, violations: [] });
  });

  test('every container has requests and limits, a pinned image, a read-only root and /tmp', () => {
    for (const p of podTemplates(objs)) {
      for (const c of p.spec.containers) {
        expect(c.resources.requests.cpu).toBeDefined();
        expect(c.resources.requests.memory).toBeDefined();
        expect(c.resources.limits.cpu).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
        expect(c.image).toMatch(/(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/);
        expect(c.image).not.toMatch(/:latest$/);
        expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
      }
      expect(p.spec.automountServiceAccountToken).toBe(false);
    }
  });

  test('probes: gRPC liveness on 50051, /readyz readiness, startup probe', () => {
    for (const p of podTemplates(objs)) {
      const c = p.spec.containers[0];
      expect(c.livenessProbe.grpc.port).toBe(50051);
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.startupProbe.httpGet.path).toBe('/healthz');
      expect(p.spec.terminationGracePeriodSeconds).toBeGreaterThan(25);
    }
  });

  test('no ConfigMap or env var holds a secret value; the API key is only a secretKeyRef', () => {
    const secretish = /(KEY|TOKEN|SECRET|PASSWORD)/i;
    for (const p of podTemplates(objs)) {
      for (const e of p.spec.containers[0].env) {
        if (secretish.test(e.name)) {
          expect(e.value).toBeUndefined();
          expect(e.valueFrom.secretKeyRef).toEqual({ name: 'upstream-api-key', key: 'api-key' });
        }
      }
    }
    expect(objs.filter((o) => o.kind === 'Secret')).toHaveLength(0);
    for (const cm of objs.filter((o) => o.kind === 'ConfigMap')) {
      const text = JSON.stringify(cm.data);
      expect(text).not.toMatch(/api[_-]?key"\s*:/i);
      expect(text).not.toMatch(/\bsk-[A-Za-z0-9]{16,}|Bearer /);
    }
  });

  test('RBAC: no Role at all by default, and never a wildcard or write verb', () => {
    const roles = objs.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole');
    expect(roles).toHaveLength(0);
  });

  test('the namespace enforces restricted PSA and has default-deny', () => {
    const ns = objs.find((o) => o.kind === 'Namespace')!;
    for (const mode of ['enforce', 'audit', 'warn']) expect(ns.metadata.labels![`pod-security.kubernetes.io/${mode}`]).toBe('restricted');
    const deny = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'default-deny')!;
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    expect(deny.metadata.namespace).toBe(ns.metadata.name);
  });

  test('each role has a PDB, a headless gRPC Service and an HTTP Service', () => {
    for (const p of podTemplates(objs)) {
      expect(objs.find((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === p.owner)).toBeDefined();
      const grpc = objs.find((o) => o.kind === 'Service' && o.metadata.name === `${p.owner}-grpc`)!;
      expect(grpc.spec.clusterIP).toBe('None');
      expect(grpc.spec.ports[0].port).toBe(50051);
      expect(objs.find((o) => o.kind === 'Service' && o.metadata.name === p.owner)!.spec.ports[0].port).toBe(8080);
    }
  });

  test("every role's agent config validates against the runtime's schema", () => {
    const cms = objs.filter((o) => o.kind === 'ConfigMap' && o.data['agent-config.json']);
    expect(cms.length).toBe(podTemplates(objs).length);
    for (const cm of cms) {
      const written = JSON.parse(cm.data['agent-config.json']);
      expect({ cm: cm.metadata.name, errors: agentConfigErrors(written) }).toEqual({ cm: cm.metadata.name, errors: [] });
      // with the shared peer list in place, as the runtime reads it
      const config = resolvePeers(written, objs);
      expect({ cm: cm.metadata.name, errors: agentConfigErrors(config) }).toEqual({ cm: cm.metadata.name, errors: [] });
      expect(config.topology).toBe(topology);
      // the catalog slice covers every allowed model and its fallbacks
      for (const m of config.models.allowed) {
        expect(config.catalog[m]).toBeDefined();
        for (const f of config.catalog[m].fallbacks) expect(config.catalog[f]).toBeDefined();
      }
    }
  });

  test('priority: coordinators and supervisors outrank workers', () => {
    const classes = Object.fromEntries(objs.filter((o) => o.kind === 'PriorityClass').map((o) => [o.metadata.name, o.value]));
    expect(classes['high-priority-agent']).toBe(100000);
    for (const p of podTemplates(objs)) {
      const kind = p.labels['app.kubernetes.io/component'];
      const cls = classes[p.spec.priorityClassName];
      if (kind === 'coordinator' || kind === 'supervisor') expect(cls).toBe(100000);
      if (kind === 'worker') expect(cls).toBeLessThan(100000);
    }
  });
});

test('hierarchical: each supervisor advertises the models of its own workers', () => {
  const objs = synthTopology('hierarchical');
  const coord = JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'coordinator-config')!.data['agent-config.json']);
  expect(coord.peers.map((p: { role: string; models: string[] }) => [p.role, p.models])).toEqual([
    ['execution-supervisor', ['gpt-4.1']],
    ['quality-supervisor', ['gemini-2.5-flash', 'deepseek-v3.2']],
  ]);
});

test('hierarchical: a supervisor advertises the roles below it (peers[].roles); a worker callee advertises none (its own role)', () => {
  const objs = synthTopology('hierarchical');
  const config = (name: string) => JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${name}-config`)!.data['agent-config.json']);
  expect(config('coordinator').peers.map((p: { role: string; roles?: string[] }) => [p.role, p.roles])).toEqual([
    ['execution-supervisor', ['execution-supervisor', 'task-executor-a', 'task-executor-b']],
    ['quality-supervisor', ['quality-supervisor', 'data-retrieval', 'validation']],
  ]);
  for (const p of config('quality-supervisor').peers) expect(p.roles).toBeUndefined();
});

test.each(Object.keys(TOPOLOGY_CHARTS))("%s: every role's config carries the cluster's default model as models.clusterDefault", (topology) => {
  const objs = synthTopology(topology);
  const configs = objs.filter((o) => o.kind === 'ConfigMap' && o.data?.['agent-config.json']).map((o) => JSON.parse(o.data['agent-config.json']));
  expect(configs.length).toBeGreaterThan(1);
  // data-retrieval's own default is gemini; the cluster's stays gpt-4.1 everywhere
  expect(configs.find((c) => c.role === 'data-retrieval').models.default).toBe('gemini-2.5-flash');
  for (const c of configs) expect([c.role, c.models.clusterDefault]).toEqual([c.role, 'gpt-4.1']);
});

test('default autoscalers use Resource metrics only (metrics-server): the coordinator 3..20, task executors 5..50', () => {
  const objs = synthTopology('hub-and-spoke');
  const hpa = (name: string) => objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === name)!;
  const coord = hpa('coordinator').spec;
  expect([coord.minReplicas, coord.maxReplicas]).toEqual([3, 20]);
  expect(coord.metrics).toEqual([
    { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
    { type: 'Resource', resource: { name: 'memory', target: { type: 'Utilization', averageUtilization: 80 } } },
  ]);
  expect(coord.behavior).toEqual({
    scaleDown: { stabilizationWindowSeconds: 300, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 10, periodSeconds: 60 }] },
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: 'Max',
      policies: [
        { type: 'Percent', value: 100, periodSeconds: 15 },
        { type: 'Pods', value: 4, periodSeconds: 15 },
      ],
    },
  });
  const task = hpa('task-executor-a').spec;
  expect([task.minReplicas, task.maxReplicas]).toEqual([5, 50]);
  expect(task.metrics).toEqual(coord.metrics);
  expect(objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === 'validation')).toBeUndefined();
  for (const o of objs.filter((x) => x.kind === 'HorizontalPodAutoscaler')) {
    for (const m of o.spec.metrics) expect(m.type).toBe('Resource');
  }
});

test.each(Object.keys(TOPOLOGY_CHARTS))('%s: a Deployment an autoscaler owns has no spec.replicas; the others keep theirs', (topology) => {
  const objs = synthTopology(topology);
  const scaled = new Set(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler').map((o) => o.spec.scaleTargetRef.name));
  expect(scaled.size).toBeGreaterThan(0);
  for (const d of objs.filter((o) => o.kind === 'Deployment')) {
    if (scaled.has(d.metadata.name)) expect(d.spec).not.toHaveProperty('replicas');
    else expect(d.spec.replicas).toBeGreaterThanOrEqual(1);
  }
});

test('the three topology examples are vanilla: no CRD-based object', () => {
  for (const topology of Object.keys(TOPOLOGY_CHARTS)) {
    const groups = new Set(synthTopology(topology).map((o) => o.apiVersion.split('/')[0]));
    for (const g of groups) expect(['v1', 'apps', 'policy', 'networking.k8s.io', 'autoscaling', 'scheduling.k8s.io']).toContain(g);
  }
});
