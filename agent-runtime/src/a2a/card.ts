import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { A2A_PROTOCOL_VERSION, AgentCard, AgentSkill } from '@a2a-js/sdk';
import { duplicateInterfacesForLegacy } from '@a2a-js/sdk/compat/v0_3';
import { AgentConfig } from '../config';
import { reachableRoles } from '../http/jobs';

/** Where the entry serves A2A JSON-RPC (both protocol versions). */
export const A2A_RPC_PATH = '/a2a';
/** Where the agent card is served (A2A's well-known path). */
export const AGENT_CARD_PATH = '/.well-known/agent-card.json';
/** The card's name for the bearer scheme: the entry's API keys (issue 12). */
export const BEARER_SCHEME = 'bearer';

const runtimeVersion = (() => {
  try {
    return (JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** What a skill says about a role the entry can reach. */
function skillOf(config: AgentConfig, role: string): AgentSkill {
  const direct = config.peers.find((p) => p.role === role);
  const via = config.peers.filter((p) => p.role !== role && (p.roles ?? []).includes(role)).map((p) => p.role);
  const kind = direct?.kind ?? (role === config.role ? config.kind : undefined);
  const where = direct || role === config.role ? `a ${kind} of cluster '${config.cluster}'` : `reached through ${via.join(', ')} in cluster '${config.cluster}'`;
  const models = direct?.models ?? (role === config.role ? config.models.allowed : undefined);
  return {
    id: role,
    name: role,
    description: `Role '${role}', ${where}${models ? `; models: ${models.join(', ')}` : ''}. Name it as a step's "role" in a data part with "steps".`,
    tags: [config.topology, ...(kind ? [kind] : [])],
    examples: [],
    inputModes: [],
    outputModes: [],
    securityRequirements: [],
  };
}

/**
 * The entry's A2A agent card (protocol 1.0, with a 0.3 mirror of the
 * JSON-RPC interface): the cluster's reachable roles as skills, streaming,
 * and the bearer scheme when the API takes API keys. `baseUrl` is how the
 * caller reached this pod (scheme and Host of its request), so the card's
 * URL works from wherever it was fetched (in the cluster, through an
 * ingress, or on loopback in local mode).
 */
export function agentCard(config: AgentConfig, baseUrl: string): AgentCard {
  const keys = config.auth?.mode === 'api-keys';
  return {
    name: `${config.cluster}/${config.role}`,
    description:
      `Entry '${config.role}' of the ${config.topology} agent cluster '${config.cluster}' (namespace ${config.namespace}). ` +
      'A message is a job: its text parts are one task; a data part with "steps" (as POST /v1/jobs takes) is a workflow. ' +
      'The task id is the job id; each finished task or step is an artifact.',
    supportedInterfaces: duplicateInterfacesForLegacy(
      [{ url: new URL(A2A_RPC_PATH, baseUrl).toString(), protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_PROTOCOL_VERSION }],
      ['JSONRPC'],
    ),
    provider: undefined,
    version: runtimeVersion,
    capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: keys
      ? { [BEARER_SCHEME]: { scheme: { $case: 'httpAuthSecurityScheme', value: { scheme: 'Bearer', bearerFormat: 'API key', description: 'An API key of the cluster as Authorization: Bearer <key>' } } } }
      : {},
    securityRequirements: keys ? [{ schemes: { [BEARER_SCHEME]: { list: [] } } }] : [],
    defaultInputModes: ['text/plain', 'application/json'],
    defaultOutputModes: ['text/plain', 'application/json'],
    skills: reachableRoles(config).map((r) => skillOf(config, r)),
    signatures: [],
  };
}

/**
 * The same card in the A2A 0.3 JSON shape, for clients that send no
 * `A2A-Version` header (0.3 by the spec). The SDK has this translation but
 * exports it only inside its Express router, so it is written here; the
 * card also carries the 1.0 `supportedInterfaces`, as the SDK's does, so a
 * 1.0 client that reads it still finds the 1.0 interface.
 */
export function legacyAgentCard(card: AgentCard): Record<string, unknown> {
  const legacy = card.supportedInterfaces.filter((i) => i.protocolVersion.startsWith('0.'));
  const primary = legacy[0];
  const schemes = Object.entries(card.securitySchemes);
  return {
    name: card.name,
    description: card.description,
    version: card.version,
    url: primary.url,
    preferredTransport: primary.protocolBinding,
    protocolVersion: primary.protocolVersion,
    capabilities: { streaming: card.capabilities?.streaming ?? false, pushNotifications: card.capabilities?.pushNotifications ?? false },
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    skills: card.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: s.tags })),
    ...(schemes.length > 0
      ? {
        securitySchemes: Object.fromEntries(
          schemes.map(([name, s]) => {
            const http = s.scheme?.$case === 'httpAuthSecurityScheme' ? s.scheme.value : undefined;
            if (!http) throw new Error(`agent card: security scheme '${name}' has no 0.3 form here`);
            return [name, { type: 'http', scheme: http.scheme, bearerFormat: http.bearerFormat, description: http.description }];
          }),
        ),
        security: card.securityRequirements.map((r) => Object.fromEntries(Object.entries(r.schemes).map(([k, v]) => [k, v.list]))),
      }
      : {}),
    supportedInterfaces: card.supportedInterfaces,
  };
}
