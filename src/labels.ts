/** Label keys shared by every object we synthesize (see agent-runtime/CONTRACT.md). */
export const LABEL_ROLE = 'agents.cdk8s.io/role';
export const LABEL_CLUSTER = 'agents.cdk8s.io/cluster';
export const LABEL_MESH = 'agents.cdk8s.io/mesh';
export const LABEL_API_CLIENT = 'agents.cdk8s.io/api-client';

export const GRPC_PORT = 50051;
export const HTTP_PORT = 8080;

/** Labels that select the pods of one role. */
export function selectorLabels(cluster: string, role: string): Record<string, string> {
  return { [LABEL_CLUSTER]: cluster, [LABEL_ROLE]: role };
}

/** Full recommended label set for a role's objects. */
export function roleLabels(cluster: string, role: string, kind: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': role,
    'app.kubernetes.io/part-of': cluster,
    'app.kubernetes.io/component': kind,
    'app.kubernetes.io/managed-by': 'cdk8s-agent-cluster',
    ...selectorLabels(cluster, role),
  };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** True for a valid RFC 1123 label. */
export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}
