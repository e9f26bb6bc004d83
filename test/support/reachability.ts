import { BlockList, isIP } from 'node:net';
import { K8sObject } from './manifests';

type Labels = Record<string, string>;
interface Pod {
  role: string;
  namespace: string;
  labels: Labels;
}

const matches = (selector: { matchLabels?: Labels } | undefined, labels: Labels) =>
  Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

/** Does an ipBlock (cidr minus except) hold this address? */
function ipBlockHolds(block: { cidr: string; except?: string[] }, ip: string): boolean {
  const inBlock = (cidr: string) => {
    const [net, prefix] = cidr.split('/');
    if (isIP(net) !== isIP(ip)) return false;
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    const list = new BlockList();
    list.addSubnet(net, Number(prefix), family);
    return list.check(ip, family);
  };
  return inBlock(block.cidr) && !(block.except ?? []).some(inBlock);
}

/** Does a NetworkPolicy peer (`from`/`to` entry) select this pod? ipBlocks never match pods here. */
function peerSelects(peer: any, policyNs: string, pod: Pod, nsLabels: Record<string, Labels>): boolean {
  if (peer.ipBlock) return false;
  const nsOk = peer.namespaceSelector ? matches(peer.namespaceSelector, nsLabels[pod.namespace] ?? {}) : pod.namespace === policyNs;
  const podOk = peer.podSelector ? matches(peer.podSelector, pod.labels) : true;
  return nsOk && podOk;
}

function portAllowed(ports: any[] | undefined, port: number, portName: string): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port || p.port === portName));
}

/**
 * Computes from the NetworkPolicies alone which workload (Deployment or
 * StatefulSet, by name) may open TCP `port` to which, the way Kubernetes does: a direction is open when no policy
 * of that type selects the pod, or when some selecting policy has a rule
 * admitting the peer; a connection needs the caller's egress AND the
 * callee's ingress.
 */
export function reachableEdges(objs: K8sObject[], port = 50051, portName = 'grpc'): Set<string> {
  const nsLabels: Record<string, Labels> = {};
  for (const ns of objs.filter((o) => o.kind === 'Namespace')) nsLabels[ns.metadata.name] = { 'kubernetes.io/metadata.name': ns.metadata.name, ...(ns.metadata.labels ?? {}) };
  const pods: Pod[] = objs
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((d) => ({ role: d.metadata.name, namespace: d.metadata.namespace!, labels: d.spec.template.metadata.labels }));
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy');

  const allowed = (from: Pod, to: Pod, direction: 'Egress' | 'Ingress') => {
    const subject = direction === 'Egress' ? from : to;
    const other = direction === 'Egress' ? to : from;
    const selecting = policies.filter((p) => p.metadata.namespace === subject.namespace && matches(p.spec.podSelector, subject.labels) && (p.spec.policyTypes ?? ['Ingress']).includes(direction));
    if (selecting.length === 0) return true;
    return selecting.some((p) =>
      (direction === 'Egress' ? p.spec.egress : p.spec.ingress)?.some(
        (rule: any) => portAllowed(rule.ports, port, portName) && (rule[direction === 'Egress' ? 'to' : 'from'] ?? [{}]).some((peer: any) => peerSelects(peer, p.metadata.namespace, other, nsLabels)),
      ),
    );
  };

  const edges = new Set<string>();
  for (const a of pods) for (const b of pods) if (allowed(a, b, 'Egress') && allowed(a, b, 'Ingress')) edges.add(`${a.role}->${b.role}`);
  return edges;
}

/** A destination outside the synthesized pods: another namespace's pod, or an IP address off the cluster. */
export type Destination = { namespace: string; labels: Labels; namespaceLabels?: Labels } | { ip: string };

/**
 * Whether the pods of `fromRole` may open TCP `port` to `dest`, from the
 * NetworkPolicies alone: the caller's egress, and, for a pod in a namespace
 * these manifests define, that pod's ingress (a namespace they do not define
 * has no policies of ours, so its ingress is its owner's business). A rule
 * without `to`/`from` admits everything, as in Kubernetes.
 */
export function egressAllowed(objs: K8sObject[], fromRole: string, dest: Destination, port: number): boolean {
  const nsLabels: Record<string, Labels> = {};
  for (const ns of objs.filter((o) => o.kind === 'Namespace')) nsLabels[ns.metadata.name] = { 'kubernetes.io/metadata.name': ns.metadata.name, ...(ns.metadata.labels ?? {}) };
  if ('namespace' in dest) nsLabels[dest.namespace] ??= { 'kubernetes.io/metadata.name': dest.namespace, ...(dest.namespaceLabels ?? {}) };
  const d = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === fromRole);
  if (!d) throw new Error(`no Deployment '${fromRole}'`);
  const from: Pod = { role: fromRole, namespace: d.metadata.namespace!, labels: d.spec.template.metadata.labels };
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
  const selecting = policies.filter((p) => p.metadata.namespace === from.namespace && matches(p.spec.podSelector, from.labels) && (p.spec.policyTypes ?? ['Ingress']).includes('Egress'));
  const admits = (peer: any, policyNs: string) => {
    if ('ip' in dest) return !!peer.ipBlock && ipBlockHolds(peer.ipBlock, dest.ip);
    return peerSelects(peer, policyNs, { role: '', namespace: dest.namespace, labels: dest.labels }, nsLabels);
  };
  const egressOk = selecting.length === 0 || selecting.some((p) => p.spec.egress?.some((rule: any) => portAllowed(rule.ports, port, '') && (rule.to === undefined || rule.to.some((peer: any) => admits(peer, p.metadata.namespace)))));
  if (!egressOk || 'ip' in dest) return egressOk;
  const ingressPolicies = policies.filter((p) => p.metadata.namespace === dest.namespace && matches(p.spec.podSelector, dest.labels) && (p.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
  return (
    ingressPolicies.length === 0 ||
    ingressPolicies.some((p) => p.spec.ingress?.some((rule: any) => portAllowed(rule.ports, port, '') && (rule.from === undefined || rule.from.some((peer: any) => peerSelects(peer, p.metadata.namespace, from, nsLabels)))))
  );
}
