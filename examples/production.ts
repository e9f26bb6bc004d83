import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { AgentCluster, AgentMtls, AgentRoleSpec, Autoscaling, EnvValue, JobStore, KedaTrigger, OtlpProtocol, ScrapeWith, Topology, WorkerKind } from '../src';

// A hierarchical cluster as a platform team would run it: a dedicated,
// tainted node pool, images from a private registry, cloud workload identity
// on the ServiceAccounts, durable jobs on an in-namespace NATS JetStream
// cluster, KEDA scaling (the coordinator on its job queue, the others on the
// runtime's own load metric), Prometheus Operator scraping and alerts, a
// Grafana dashboard, a log shipper sidecar, and mTLS between the agents from
// a CA the cluster makes itself. Needs KEDA, the Prometheus Operator,
// cert-manager, Grafana's dashboard sidecar and a default StorageClass (see
// README, "Running it in production").

const REGISTRY = 'registry.example.com/platform';

/** The production example's chart. */
export function productionChart(app: App): Chart {
  const chart = new Chart(app, 'production');
  const scaled = (min: number, max: number) =>
    Autoscaling.keda({ minReplicas: min, maxReplicas: max, triggers: [KedaTrigger.taskLoad(0.7), KedaTrigger.cpu(75)] });
  const worker = (name: string, reportsTo: string, kind: WorkerKind, models?: string[]) =>
    ({ name, reportsTo, workerKind: kind, models, autoscaling: scaled(2, 30) });
  // the coordinator is the entry: it pulls jobs, so it scales on the jobs waiting
  const coordinator: AgentRoleSpec = {
    name: 'coordinator',
    autoscaling: Autoscaling.keda({ minReplicas: 3, maxReplicas: 20, triggers: [KedaTrigger.jobQueue(10), KedaTrigger.cpu(75)] }),
  };

  new AgentCluster(chart, 'agents-prod', {
    topology: Topology.hierarchical({
      coordinator,
      supervisors: [
        { name: 'execution-supervisor', reportsTo: 'coordinator', autoscaling: scaled(2, 10) },
        { name: 'quality-supervisor', reportsTo: 'coordinator', autoscaling: scaled(2, 10) },
      ],
      workers: [
        worker('task-executor-a', 'execution-supervisor', WorkerKind.TASK_EXECUTOR),
        worker('task-executor-b', 'execution-supervisor', WorkerKind.TASK_EXECUTOR),
        worker('data-retrieval', 'quality-supervisor', WorkerKind.DATA_RETRIEVAL, ['gemini-2.5-flash']),
        worker('validation', 'quality-supervisor', WorkerKind.VALIDATION, ['deepseek-v3.2']),
      ],
    }),
    upstream: { baseUrl: 'https://llm-gateway.example.com/v1', apiKeySecretName: 'upstream-api-key' },
    image: `${REGISTRY}/agent-runtime:0.1.0`,
    pods: {
      nodeSelector: { 'node-pool': 'agents' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'agents', effect: 'NoSchedule' }],
      imagePullSecrets: ['registry-credentials'],
      serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/agents-prod' },
      podAnnotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true' },
      env: {
        LOG_LEVEL: EnvValue.fromValue('info'),
        OTEL_RESOURCE_ATTRIBUTES: EnvValue.fromConfigMap('otel-settings', 'resource-attributes', true),
      },
      volumes: [{ name: 'ship-state', emptyDir: { sizeLimit: k8s.Quantity.fromString('32Mi') } }],
      sidecars: [
        {
          name: 'log-shipper',
          image: `${REGISTRY}/fluent-bit:3.2.4`,
          args: ['--config=/fluent-bit/etc/fluent-bit.yaml'],
          resources: {
            requests: { cpu: k8s.Quantity.fromString('50m'), memory: k8s.Quantity.fromString('64Mi') },
            limits: { cpu: k8s.Quantity.fromString('200m'), memory: k8s.Quantity.fromString('128Mi') },
          },
          volumeMounts: [{ name: 'ship-state', mountPath: '/var/lib/fluent-bit' }],
        },
      ],
    },
    jobStore: JobStore.jetStream({ storageSize: '20Gi' }),
    // traces to the in-cluster OpenTelemetry collector (egress opens to its pods only)
    tracing: {
      otlpEndpoint: 'http://otel-collector.observability.svc.cluster.local:4318',
      protocol: OtlpProtocol.HTTP_PROTOBUF,
      collectorPodLabels: { 'app.kubernetes.io/name': 'opentelemetry-collector' },
    },
    monitoring: {
      scrapeWith: ScrapeWith.SERVICE_MONITOR,
      resourceLabels: { release: 'kube-prometheus-stack' },
      minSuccessRate: 0.97,
      maxSpendUsdPerHour: 40,
    },
    mtls: AgentMtls.selfSigned(),
  });
  return chart;
}
