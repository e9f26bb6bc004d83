import { Testing } from 'cdk8s';
import { Construct } from 'constructs';
import * as fc from 'fast-check';
import { AgentCluster, AgentClusterProps, AgentTracingOptions, EnvValue, OtlpProtocol, Topology } from '../src';
import { K8sObject, podTemplates, validateK8s } from './support/manifests';
import { egressAllowed } from './support/reachability';

// AgentCluster's `tracing`: OTEL_* on every agent and egress to the collector
// (a Service by namespace and pod labels, anything else by CIDR), and a synth
// error naming the field for what cannot work.

const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };
const topology = Topology.hierarchical({
  coordinator: { name: 'coordinator' },
  supervisors: [{ name: 'sup', reportsTo: 'coordinator' }],
  workers: [{ name: 'w', reportsTo: 'sup' }],
});
const COLLECTOR_LABELS = { 'app.kubernetes.io/name': 'opentelemetry-collector' };

function synth(tracing?: AgentTracingOptions, extra: Partial<AgentClusterProps> = {}): K8sObject[] {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', { topology, upstream, tracing, ...extra });
  return Testing.synth(chart) as K8sObject[];
}

function synthError(tracing: AgentTracingOptions): string {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', { topology, upstream, tracing });
  try {
    Testing.synth(chart);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

const envOf = (objs: K8sObject[]) =>
  podTemplates(objs).map((p) => ({ role: p.owner, env: Object.fromEntries((p.spec.containers[0].env as Array<{ name: string; value?: string }>).filter((e) => e.name.startsWith('OTEL_')).map((e) => [e.name, e.value])) }));

test('off by default: no OTEL_* variable and no collector policy', () => {
  const objs = synth();
  for (const p of envOf(objs)) expect(p.env).toEqual({});
  expect(objs.filter((o) => o.kind === 'NetworkPolicy' && o.metadata.name.endsWith('-otlp'))).toEqual([]);
});

test('an in-cluster collector: every agent gets the endpoint and protocol, and egress to the collector pods on its port only', () => {
  const objs = synth({ otlpEndpoint: 'http://otel-collector.observability.svc.cluster.local:4318', protocol: OtlpProtocol.HTTP_JSON, collectorPodLabels: COLLECTOR_LABELS });
  expect(envOf(objs)).toEqual(
    ['coordinator', 'sup', 'w'].map((role) => ({ role, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability.svc.cluster.local:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } })),
  );
  const policy = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'agents-otlp')!;
  validateK8s(policy);
  for (const role of ['coordinator', 'sup', 'w']) {
    expect(egressAllowed(objs, role, { namespace: 'observability', labels: COLLECTOR_LABELS }, 4318)).toBe(true);
    expect(egressAllowed(objs, role, { namespace: 'observability', labels: COLLECTOR_LABELS }, 4317)).toBe(false);
    expect(egressAllowed(objs, role, { namespace: 'observability', labels: { 'app.kubernetes.io/name': 'grafana' } }, 4318)).toBe(false);
  }
});

test('the protocol defaults to http/protobuf; a collector port other than the Service port is the one opened', () => {
  const objs = synth({ otlpEndpoint: 'http://otel-collector.observability:4317', protocol: OtlpProtocol.GRPC, collectorPodLabels: COLLECTOR_LABELS, collectorPort: 14317 });
  expect(envOf(objs)[0].env.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('grpc');
  expect(egressAllowed(objs, 'w', { namespace: 'observability', labels: COLLECTOR_LABELS }, 14317)).toBe(true);
  expect(egressAllowed(objs, 'w', { namespace: 'observability', labels: COLLECTOR_LABELS }, 4317)).toBe(false);
  expect(envOf(synth({ otlpEndpoint: 'http://otel-collector:4318', collectorPodLabels: COLLECTOR_LABELS }))[0].env.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('http/protobuf');
});

test('a collector outside the cluster: egress to its CIDR block, or to the endpoint\'s own address when it is an IP', () => {
  const external = synth({ otlpEndpoint: 'https://otlp.example.com', collectorCidr: '203.0.113.0/28' });
  expect(egressAllowed(external, 'coordinator', { ip: '203.0.113.5' }, 443)).toBe(true);
  expect(egressAllowed(external, 'coordinator', { ip: '203.0.113.50' }, 443)).toBe(false);
  const byIp = synth({ otlpEndpoint: 'http://10.1.2.3:4318' });
  expect(egressAllowed(byIp, 'sup', { ip: '10.1.2.3' }, 4318)).toBe(true);
  expect(egressAllowed(byIp, 'sup', { ip: '10.1.2.4' }, 4318)).toBe(false);
  for (const o of [...external, ...byIp].filter((x) => x.kind === 'NetworkPolicy')) validateK8s(o);
});

test("the cluster's or a role's own pods.env wins over the tracing env", () => {
  const objs = synth(
    { otlpEndpoint: 'http://otel-collector.observability:4318', collectorPodLabels: COLLECTOR_LABELS },
    { pods: { env: { OTEL_EXPORTER_OTLP_PROTOCOL: EnvValue.fromValue('http/json') } } },
  );
  for (const p of podTemplates(objs)) {
    const env = p.spec.containers[0].env as Array<{ name: string; value?: string }>;
    expect(env.filter((e) => e.name === 'OTEL_EXPORTER_OTLP_PROTOCOL')).toEqual([{ name: 'OTEL_EXPORTER_OTLP_PROTOCOL', value: 'http/json' }]);
  }
});

describe('what cannot work fails synth with the field and the fix, path printed once', () => {
  test.each<[string, AgentTracingOptions, string]>([
    ['not a URL', { otlpEndpoint: 'otel-collector:4318' }, "tracing.otlpEndpoint: scheme 'otel-collector:' is not http or https. Fix: write an http:// or https:// URL (gRPC too: http://<host>:4317)."],
    ['garbage', { otlpEndpoint: 'no url' }, "tracing.otlpEndpoint: 'no url' is not a URL. Fix: write the collector's base URL, e.g. http://otel-collector.observability.svc.cluster.local:4318."],
    [
      'in-cluster without pod labels',
      { otlpEndpoint: 'http://otel-collector.observability.svc:4318' },
      "tracing.collectorPodLabels: is not set, and the endpoint 'otel-collector.observability.svc' is a Service in namespace 'observability'. Fix: give the labels of the collector's pods, e.g. { 'app.kubernetes.io/name': 'opentelemetry-collector' }.",
    ],
    ['external host without a CIDR', { otlpEndpoint: 'https://otlp.example.com' }, "tracing.collectorCidr: is not set, and the endpoint's host 'otlp.example.com' is outside the cluster. Fix: give the CIDR block 'otlp.example.com' resolves to, e.g. '203.0.113.10/32'."],
    [
      'a CIDR that misses the IP',
      { otlpEndpoint: 'http://10.1.2.3:4318', collectorCidr: '10.9.0.0/16' },
      "tracing.collectorCidr: 10.9.0.0/16 does not contain the endpoint's address 10.1.2.3. Fix: use a block that holds 10.1.2.3, or leave collectorCidr out to open 10.1.2.3 alone.",
    ],
    ['a bad CIDR', { otlpEndpoint: 'https://otlp.example.com', collectorCidr: '203.0.113.0' }, "tracing.collectorCidr: '203.0.113.0' is not a CIDR block (address/prefix). Fix: write an address and prefix, e.g. '203.0.113.0/24'."],
    ['a bad port', { otlpEndpoint: 'http://otel-collector:4318', collectorPodLabels: COLLECTOR_LABELS, collectorPort: 70000 }, 'tracing.collectorPort: 70000 is not a port. Fix: use 1..65535.'],
    ['port 0', { otlpEndpoint: 'http://otel-collector:0', collectorPodLabels: COLLECTOR_LABELS }, "tracing.otlpEndpoint: has port 0, which nothing listens on. Fix: give the collector's port, e.g. :4318 (OTLP/HTTP) or :4317 (gRPC)."],
    [
      'credentials in the URL',
      { otlpEndpoint: 'https://user:secret@otlp.example.com', collectorCidr: '203.0.113.0/28' },
      'tracing.otlpEndpoint: has credentials in it, which would be a literal in every pod spec. Fix: give the collector\'s address only (put a header secret in pods.env as OTEL_EXPORTER_OTLP_HEADERS from a Secret).',
    ],
    [
      'pod labels for an external collector',
      { otlpEndpoint: 'https://otlp.example.com', collectorCidr: '203.0.113.0/28', collectorPodLabels: COLLECTOR_LABELS },
      "tracing.collectorPodLabels: apply to an in-cluster Service endpoint, but 'otlp.example.com' is outside the cluster. Fix: remove collectorPodLabels and give collectorCidr.",
    ],
  ])('%s', (_what, tracing, line) => {
    const message = synthError(tracing);
    expect(message).toBe(`Validation failed with the following errors:\n  [test/agents] ${line}`);
    // nothing half-made: no policy toward a destination that is not right
    const chart = Testing.chart();
    const cluster = new AgentCluster(chart as Construct, 'agents', { topology, upstream, tracing });
    expect(cluster.node.tryFindChild('otlp-policy')).toBeUndefined();
  });
});

test('property: any endpoint, protocol and port either synthesizes schema-valid objects with the env and a policy to that port, or fails synth naming a tracing field', () => {
  const host = fc.oneof(
    fc.constantFrom('otel-collector', 'otel-collector.observability', 'otel.observability.svc', 'otel.observability.svc.cluster.local', 'otlp.example.com', '10.1.2.3', '[fd00::1]', 'Bad_Host'),
    fc.domain(),
    fc.ipV4(),
  );
  const options = fc.record({
    scheme: fc.constantFrom('http', 'https', 'grpc', 'ftp'),
    host,
    port: fc.option(fc.integer({ min: 0, max: 70000 }), { nil: undefined }),
    protocol: fc.option(fc.constantFrom(OtlpProtocol.HTTP_JSON, OtlpProtocol.HTTP_PROTOBUF, OtlpProtocol.GRPC), { nil: undefined }),
    labels: fc.option(fc.constant(COLLECTOR_LABELS), { nil: undefined }),
    cidr: fc.option(fc.constantFrom('203.0.113.0/24', '10.0.0.0/8', '0.0.0.0/0', 'nope'), { nil: undefined }),
    collectorPort: fc.option(fc.integer({ min: -1, max: 70000 }), { nil: undefined }),
  });
  fc.assert(
    fc.property(options, (o) => {
      const tracing: AgentTracingOptions = {
        otlpEndpoint: `${o.scheme}://${o.host}${o.port === undefined ? '' : `:${o.port}`}`,
        protocol: o.protocol,
        collectorPodLabels: o.labels,
        collectorCidr: o.cidr,
        collectorPort: o.collectorPort,
      };
      const error = synthError(tracing);
      if (error !== '') {
        expect(error).toMatch(/^Validation failed with the following errors:\n {2}\[test\/agents\] tracing\.(otlpEndpoint|collectorPodLabels|collectorCidr|collectorPort): /);
        return;
      }
      const objs = synth(tracing);
      for (const p of envOf(objs)) expect(p.env).toEqual({ OTEL_EXPORTER_OTLP_ENDPOINT: tracing.otlpEndpoint, OTEL_EXPORTER_OTLP_PROTOCOL: tracing.protocol ?? 'http/protobuf' });
      const policy = objs.find((x) => x.kind === 'NetworkPolicy' && x.metadata.name === 'agents-otlp')!;
      validateK8s(policy);
      const port = policy.spec.egress[0].ports[0].port;
      expect(port).toBeGreaterThanOrEqual(1);
      expect(port).toBeLessThanOrEqual(65535);
    }),
    { numRuns: 150 },
  );
});
