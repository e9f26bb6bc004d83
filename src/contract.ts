// Internal: the construct side of the config contract (agent-runtime/CONTRACT.md).
// Not exported from index.ts, so jsii never sees these TypeScript-only types.
import { AgentKind } from './agent-role';
import { GRPC_PORT } from './labels';

export type { AgentConfig, ApiAuthConfig, McpServerEntry, ModelEntry, PeerEntry, RoleBehavior, RoleTools } from './generated/agent-config';

/** Whether a role of this kind makes upstream model calls: it gets the upstream env, egress, behaviour and tools. */
export function callsUpstream(kind: AgentKind): boolean {
  return kind === AgentKind.WORKER || kind === AgentKind.PEER;
}

/** A peer's `address` in the config: the role's headless gRPC Service, `R-grpc.N.svc.cluster.local:50051`. */
export function peerAddress(role: string, namespace: string): string {
  return `${role}-grpc.${namespace}.svc.cluster.local:${GRPC_PORT}`;
}
