import { Chart, Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { buildExampleApp } from '../examples/topologies';
import { AgentCluster, AgentDeployment, AgentAutoscaler, AgentNamespace, Topology, WorkerKind } from '../src';
import { _directL1, KubeDeployment, KubeService } from '../src/l1';

// The constructs write their objects' props straight to JSON instead of
// through the cdk8s-plus L1 conversion (src/l1.ts); these tests build the
// same charts both ways and require the same manifests.

function bothWays(build: () => Chart[]): { direct: unknown[]; viaL1: unknown[] } {
  const synth = (direct: boolean) => {
    _directL1(direct);
    try {
      return build().map((c) => Testing.synth(c));
    } finally {
      _directL1(true);
    }
  };
  return { direct: synth(true), viaL1: synth(false) };
}

test('the example app (three topologies and the production example): written directly = written through the L1 classes', () => {
  const { direct, viaL1 } = bothWays(() => buildExampleApp(Testing.app().outdir).charts);
  expect(direct).toHaveLength(4);
  expect(direct).toEqual(viaL1);
});

test('quota, limit range, autoscaler metrics, API access and priority classes: written directly = through the L1 classes', () => {
  const { direct, viaL1 } = bothWays(() => {
    const chart = Testing.chart();
    new AgentNamespace(chart, 'ns', {
      name: 'extra',
      quota: { requestsCpu: '20', requestsMemory: '32Gi', limitsCpu: '40', limitsMemory: '64Gi', pods: 100 },
      limitRange: { maxCpu: '4', maxMemory: '4Gi' },
    });
    const d = new AgentDeployment(chart, 'reader', { agentConfigJson: '{}', namespace: 'extra', apiAccess: [{ resource: 'configmaps', resourceNames: ['routing'], verbs: ['get', 'watch'] }] });
    new AgentAutoscaler(chart, 'hpa', {
      target: d,
      maxReplicas: 9,
      podsMetrics: [{ name: 'agent_queue_depth', averageValue: '500m' }],
      // a label whose name looks like an L1 property must stay as written
      externalMetrics: [{ name: 'queue_messages', matchLabels: { clusterIp: 'a', queue: 'jobs' }, averageValue: '30' }],
      scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] },
    });
    new AgentCluster(chart, 'agents', {
      topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: [{ name: 'w', workerKind: WorkerKind.DATA_RETRIEVAL }] }),
      upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'k' },
    });
    return [chart];
  });
  expect(direct).toEqual(viaL1);
  const objects = direct[0] as Array<{ kind: string; spec?: any }>;
  const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
  expect(hpa.spec.metrics.find((m: any) => m.type === 'External').external.metric.selector.matchLabels).toEqual({ clusterIp: 'a', queue: 'jobs' });
  // L1 names that are not Kubernetes names are renamed: clusterIp -> clusterIP
  const headless = objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === 'None');
  expect(headless).toBeDefined();
  expect(objects.some((o) => o.kind === 'Service' && 'clusterIp' in o.spec)).toBe(false);
});

test('keys of label maps and selectors stay as written, whatever they look like', () => {
  const labels = { ref: 'a', clusterIp: 'b', hostPid: 'c' };
  const { direct, viaL1 } = bothWays(() => {
    const chart = Testing.chart();
    new KubeService(chart, 'svc', { metadata: { name: 's', labels }, spec: { clusterIp: 'None', selector: labels, ports: [{ port: 80, targetPort: k8s.IntOrString.fromString('http') }] } });
    new KubeDeployment(chart, 'dep', {
      metadata: { name: 'd', annotations: labels },
      spec: {
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { hostPid: false, nodeSelector: labels, containers: [{ name: 'c', image: 'busybox:1.36', ports: [{ containerPort: 80, hostIp: '127.0.0.1' }] }] } },
      },
    });
    return [chart];
  });
  expect(direct).toEqual(viaL1);
  const [svc, dep] = direct[0] as any[];
  expect(svc.spec).toMatchObject({ clusterIP: 'None', selector: labels, ports: [{ port: 80, targetPort: 'http' }] });
  expect(dep.spec.template.spec).toMatchObject({ hostPID: false, nodeSelector: labels });
  expect(dep.spec.template.spec.containers[0].ports[0]).toEqual({ containerPort: 80, hostIP: '127.0.0.1' });
});
