import { isIP } from 'node:net';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { cidrContains, cidrProblem } from './cidr';
import { KubeNetworkPolicy } from './l1';
import { isDnsLabel, LABEL_CLUSTER } from './labels';
import { AgentPodOptions, EnvValue } from './pod-options';
import { problem } from './problems';

/** How the agents send spans to the collector (OTEL_EXPORTER_OTLP_PROTOCOL). */
export enum OtlpProtocol {
  /** OTLP over HTTP, protobuf bodies (the OpenTelemetry default; collector port 4318). */
  HTTP_PROTOBUF = 'http/protobuf',
  /** OTLP over HTTP, JSON bodies (collector port 4318). */
  HTTP_JSON = 'http/json',
  /** OTLP over gRPC (collector port 4317). */
  GRPC = 'grpc',
}

/**
 * Where every agent sends its OpenTelemetry traces. The collector's address
 * decides how egress to it is opened: a Service in the cluster by namespace
 * and pod labels, anything else by CIDR block (NetworkPolicies cannot name a
 * host).
 */
export interface AgentTracingOptions {
  /** OTLP endpoint, set as OTEL_EXPORTER_OTLP_ENDPOINT on every agent, e.g. `http://otel-collector.observability.svc.cluster.local:4318`; never with credentials in it. */
  readonly otlpEndpoint: string;
  /** OTLP protocol, set as OTEL_EXPORTER_OTLP_PROTOCOL. @default OtlpProtocol.HTTP_PROTOBUF */
  readonly protocol?: OtlpProtocol;
  /** Labels of the collector's pods, for an endpoint that is a Service in the cluster: egress opens to exactly these pods. @default - none; required for an in-cluster endpoint */
  readonly collectorPodLabels?: { [key: string]: string };
  /** The port the collector's pods listen on (NetworkPolicies match the pod's port, not the Service's). @default - the endpoint's port */
  readonly collectorPort?: number;
  /** The addresses of a collector outside the cluster, as one CIDR block. @default - the endpoint's IP address when its host is one; required for an external host name */
  readonly collectorCidr?: string;
}

/** Where the endpoint points, as far as egress is concerned. */
type Destination = { inCluster: true; namespace: string; port: number } | { inCluster: false; cidr: string; port: number };

/** A Service name: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. */
function serviceNamespace(host: string, clusterNamespace: string): string | undefined {
  const labels = host.split('.');
  if (labels.length === 1) return clusterNamespace;
  if (labels.length === 2 || labels[2] === 'svc') return labels[1];
  return undefined;
}

/** The endpoint parsed, or the problems with the options (fields relative to `tracing`). */
function destination(o: AgentTracingOptions, clusterNamespace: string, out: Array<[string, string, string]>): Destination | undefined {
  let url: URL;
  try {
    url = new URL(o.otlpEndpoint);
  } catch {
    out.push(['otlpEndpoint', `'${o.otlpEndpoint}' is not a URL`, 'write the collector\'s base URL, e.g. http://otel-collector.observability.svc.cluster.local:4318']);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    out.push(['otlpEndpoint', `scheme '${url.protocol}' is not http or https`, 'write an http:// or https:// URL (gRPC too: http://<host>:4317)']);
    return undefined;
  }
  if (url.username || url.password) {
    out.push(['otlpEndpoint', 'has credentials in it, which would be a literal in every pod spec', 'give the collector\'s address only (put a header secret in pods.env as OTEL_EXPORTER_OTLP_HEADERS from a Secret)']);
  }
  if (url.port === '0') out.push(['otlpEndpoint', 'has port 0, which nothing listens on', 'give the collector\'s port, e.g. :4318 (OTLP/HTTP) or :4317 (gRPC)']);
  const port = o.collectorPort ?? (Number(url.port) || (url.protocol === 'https:' ? 443 : 80));
  if (o.collectorPort !== undefined && !(Number.isInteger(o.collectorPort) && o.collectorPort >= 1 && o.collectorPort <= 65535)) {
    out.push(['collectorPort', `${o.collectorPort} is not a port`, 'use 1..65535']);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (o.collectorCidr !== undefined) {
    const bad = cidrProblem(o.collectorCidr);
    if (bad) out.push(['collectorCidr', bad, "write an address and prefix, e.g. '203.0.113.0/24'"]);
  }
  const labels = Object.keys(o.collectorPodLabels ?? {});
  if (isIP(host) !== 0) {
    const cidr = o.collectorCidr ?? `${host}/${isIP(host) === 4 ? 32 : 128}`;
    if (o.collectorCidr !== undefined && !cidrProblem(o.collectorCidr) && !cidrContains(o.collectorCidr, host)) {
      out.push(['collectorCidr', `${o.collectorCidr} does not contain the endpoint's address ${host}`, `use a block that holds ${host}, or leave collectorCidr out to open ${host} alone`]);
    }
    if (labels.length > 0) out.push(['collectorPodLabels', 'apply to an in-cluster Service endpoint, but the endpoint is an IP address', 'remove collectorPodLabels, or use the collector Service\'s DNS name']);
    return { inCluster: false, cidr, port };
  }
  const namespace = serviceNamespace(host, clusterNamespace);
  if (namespace !== undefined) {
    if (!isDnsLabel(namespace)) out.push(['otlpEndpoint', `host '${host}' names namespace '${namespace}', which is not a namespace name`, 'write <service>.<namespace>.svc.cluster.local']);
    if (labels.length === 0) {
      out.push(['collectorPodLabels', `is not set, and the endpoint '${host}' is a Service in namespace '${namespace}'`, "give the labels of the collector's pods, e.g. { 'app.kubernetes.io/name': 'opentelemetry-collector' }"]);
    }
    if (o.collectorCidr !== undefined) out.push(['collectorCidr', `applies to a collector outside the cluster, but '${host}' is a Service in it`, 'remove collectorCidr and give collectorPodLabels']);
    return { inCluster: true, namespace, port };
  }
  if (o.collectorCidr === undefined) {
    out.push(['collectorCidr', `is not set, and the endpoint's host '${host}' is outside the cluster`, `give the CIDR block '${host}' resolves to, e.g. '203.0.113.10/32'`]);
  }
  if (labels.length > 0) out.push(['collectorPodLabels', `apply to an in-cluster Service endpoint, but '${host}' is outside the cluster`, 'remove collectorPodLabels and give collectorCidr']);
  return { inCluster: false, cidr: o.collectorCidr ?? '', port };
}

/**
 * What is wrong with the tracing options, one line each (field, problem, fix).
 * @internal
 */
export function tracingProblems(o: AgentTracingOptions | undefined, clusterNamespace: string): string[] {
  if (!o) return [];
  const out: Array<[string, string, string]> = [];
  destination(o, clusterNamespace, out);
  return out.map(([field, what, fix]) => problem(`tracing.${field}`, what, fix));
}

/**
 * The OTEL_* environment every agent gets, as pod options (a role's or the
 * cluster's own `pods.env` wins over it).
 * @internal
 */
export function tracingPodOptions(o: AgentTracingOptions | undefined): AgentPodOptions | undefined {
  if (!o) return undefined;
  return {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: EnvValue.fromValue(o.otlpEndpoint),
      OTEL_EXPORTER_OTLP_PROTOCOL: EnvValue.fromValue(o.protocol ?? OtlpProtocol.HTTP_PROTOBUF),
    },
  };
}

/**
 * One NetworkPolicy `<cluster>-otlp` that lets every pod of the cluster reach
 * the collector (the namespace's default-deny keeps everything else shut).
 * Nothing is made when the options have problems: synth fails on those.
 * @internal
 */
export function addTracingEgress(scope: Construct, o: AgentTracingOptions | undefined, cluster: { name: string; namespace: string }): void {
  if (!o) return;
  const out: Array<[string, string, string]> = [];
  const d = destination(o, cluster.namespace, out);
  if (!d || out.length > 0) return;
  const to: k8s.NetworkPolicyPeer[] = d.inCluster
    ? [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': d.namespace } }, podSelector: { matchLabels: { ...o.collectorPodLabels } } }]
    : [{ ipBlock: { cidr: d.cidr } }];
  new KubeNetworkPolicy(scope, 'otlp-policy', {
    metadata: { name: `${cluster.name}-otlp`, namespace: cluster.namespace },
    spec: {
      podSelector: { matchLabels: { [LABEL_CLUSTER]: cluster.name } },
      policyTypes: ['Egress'],
      egress: [{ to, ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(d.port) }] }],
    },
  });
}
