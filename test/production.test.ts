import { App, Testing } from 'cdk8s';
import { productionChart } from '../examples/production';
import { agentConfigErrors, isCrdObject, K8sObject, podTemplates, restrictedViolations, validateCrds, validateK8s } from './support/manifests';

function synthProduction(): K8sObject[] {
  const app: App = Testing.app();
  return Testing.synth(productionChart(app)) as K8sObject[];
}

const objs = synthProduction();
const ROLES = ['coordinator', 'execution-supervisor', 'quality-supervisor', 'task-executor-a', 'task-executor-b', 'data-retrieval', 'validation'];

test('every built-in object validates against the Kubernetes schemas and every CRD object against its CRD schema', () => {
  for (const o of objs.filter((x) => !isCrdObject(x))) expect(() => validateK8s(o)).not.toThrow();
  const crds = objs.filter(isCrdObject);
  expect(new Set(crds.map((o) => o.kind))).toEqual(new Set(['ScaledObject', 'ServiceMonitor', 'PrometheusRule', 'Certificate', 'Issuer']));
  expect(validateCrds(crds).filter((r) => r.error !== null)).toEqual([]);
});

test('the CRD check is not a no-op: a broken ScaledObject and a broken ServiceMonitor are refused', () => {
  const so = JSON.parse(JSON.stringify(objs.find((o) => o.kind === 'ScaledObject')!));
  so.spec.triggers[0].metadata.threshold = 0.7; // KEDA trigger metadata values are strings
  const sm = JSON.parse(JSON.stringify(objs.find((o) => o.kind === 'ServiceMonitor')!));
  sm.spec.endpoints = 'http';
  const results = validateCrds([so, sm]);
  expect(results.map((r) => r.error === null)).toEqual([false, false]);
});

test('KEDA scales the coordinator (the entry) on its job queue and the others on task load, all on CPU; no HPA of ours, and no Deployment carries spec.replicas', () => {
  const scaled = objs.filter((o) => o.kind === 'ScaledObject');
  expect(scaled.map((o) => o.metadata.name).sort()).toEqual([...ROLES].sort());
  expect(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
  for (const d of objs.filter((o) => o.kind === 'Deployment')) expect(d.spec).not.toHaveProperty('replicas');
  const coord = scaled.find((o) => o.metadata.name === 'coordinator')!.spec;
  expect([coord.minReplicaCount, coord.maxReplicaCount]).toEqual([3, 20]);
  expect(coord.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'coordinator' });
  expect(coord.triggers).toEqual([
    {
      type: 'nats-jetstream',
      metadata: {
        natsServerMonitoringEndpoint: 'agents-prod-nats-headless.agents-prod.svc.cluster.local:8222',
        account: '$G',
        stream: 'agents-prod-jobs',
        consumer: 'agents-prod-job-runners',
        lagThreshold: '10',
      },
    },
    { type: 'cpu', metricType: 'Utilization', metadata: { value: '75' } },
  ]);
  const supervisor = scaled.find((o) => o.metadata.name === 'execution-supervisor')!.spec;
  expect(supervisor.triggers).toEqual([
    {
      type: 'prometheus',
      metricType: 'AverageValue',
      metadata: {
        serverAddress: 'http://prometheus-operated.monitoring.svc:9090',
        query: 'sum(agent_tasks_held{namespace="agents-prod",role="execution-supervisor"}) / max(agent_task_capacity{namespace="agents-prod",role="execution-supervisor"})',
        threshold: '0.7',
      },
    },
    { type: 'cpu', metricType: 'Utilization', metadata: { value: '75' } },
  ]);
});

test('pods: dedicated pool, private registry, workload identity, extra env, a sidecar; all pass Pod Security restricted', () => {
  const pods = podTemplates(objs);
  expect(pods).toHaveLength(7);
  for (const p of pods) {
    expect({ owner: p.owner, violations: restrictedViolations(p.spec) }).toEqual({ owner: p.owner, violations: [] });
    expect(p.spec.nodeSelector).toEqual({ 'node-pool': 'agents' });
    expect(p.spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'agents', effect: 'NoSchedule' }]);
    expect(p.spec.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
    expect(p.spec.containers.map((c: any) => c.name)).toEqual(['agent', 'log-shipper']);
    const sidecar = p.spec.containers[1];
    expect(sidecar.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, readOnlyRootFilesystem: true });
    expect(sidecar.resources.limits).toEqual({ cpu: '200m', memory: '128Mi' });
    const env = Object.fromEntries(p.spec.containers[0].env.map((e: any) => [e.name, e]));
    expect(env.LOG_LEVEL).toEqual({ name: 'LOG_LEVEL', value: 'info' });
    expect(env.OTEL_RESOURCE_ATTRIBUTES.valueFrom).toEqual({ configMapKeyRef: { name: 'otel-settings', key: 'resource-attributes', optional: true } });
    // the tracing prop: the collector's endpoint and protocol on every agent
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toEqual({ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability.svc.cluster.local:4318' });
    expect(env.OTEL_EXPORTER_OTLP_PROTOCOL).toEqual({ name: 'OTEL_EXPORTER_OTLP_PROTOCOL', value: 'http/protobuf' });
  }
  // the agents' ServiceAccounts (the job store's NATS has its own, without cloud identity)
  for (const sa of objs.filter((o) => o.kind === 'ServiceAccount' && ROLES.includes(o.metadata.name))) {
    expect(sa.metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/agents-prod' });
  }
});

test('monitoring: a ServiceMonitor per role on the http port, Prometheus admitted to 8080 only, alerts and a dashboard', () => {
  const monitors = objs.filter((o) => o.kind === 'ServiceMonitor');
  expect(monitors.map((m) => m.metadata.name).sort()).toEqual([...ROLES].sort());
  for (const m of monitors) {
    expect(m.metadata.labels!.release).toBe('kube-prometheus-stack');
    expect(m.spec.endpoints).toEqual([{ port: 'http', path: '/metrics', interval: '30s' }]);
    // the selector picks the role's HTTP Service, which has the 'http' port
    const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === m.metadata.name)!;
    for (const [k, v] of Object.entries(m.spec.selector.matchLabels)) expect(svc.metadata.labels![k]).toBe(v);
    expect(svc.spec.ports.map((p: any) => p.name)).toContain('http');
  }
  const policy = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'agents-prod-metrics')!;
  expect(policy.spec.ingress).toEqual([{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }]);
  const rule = objs.find((o) => o.kind === 'PrometheusRule')!;
  expect(rule.spec.groups[0].rules.map((r: any) => r.alert)).toEqual([
    'AgentModelCircuitOpen',
    'AgentTaskSuccessRateLow',
    'AgentDeadlineMisses',
    'AgentRetryStorm',
    'AgentSpendRateHigh',
    'AgentBudgetNearlySpent',
    'AgentPodsNotReady',
  ]);
  expect(rule.spec.groups[0].rules[1].expr).toMatch(/< 0\.97$/);
  expect(rule.spec.groups[0].rules[4].expr).toMatch(/> 40$/);
  const dashboard = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'agents-prod-dashboard')!;
  expect(dashboard.metadata.labels!.grafana_dashboard).toBe('1');
  expect(JSON.parse(dashboard.data['agents-prod.json']).panels.length).toBeGreaterThan(5);
});

test("every role's config validates against the runtime's schema", () => {
  for (const cm of objs.filter((o) => o.kind === 'ConfigMap' && o.data['agent-config.json'])) {
    expect({ cm: cm.metadata.name, errors: agentConfigErrors(JSON.parse(cm.data['agent-config.json'])) }).toEqual({ cm: cm.metadata.name, errors: [] });
  }
});

test('durable jobs on the synthesized JetStream cluster: 3 restricted nats pods on 20Gi claims, every role pointed at it', () => {
  const sts = objs.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'agents-prod-nats')!;
  expect(sts.spec.replicas).toBe(3);
  expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('20Gi');
  expect(restrictedViolations(sts.spec.template.spec)).toEqual([]);
  for (const cm of objs.filter((o) => o.kind === 'ConfigMap' && o.data['agent-config.json'])) {
    expect(JSON.parse(cm.data['agent-config.json']).jobStore.url).toBe('nats://agents-prod-nats.agents-prod.svc.cluster.local:4222');
  }
});
