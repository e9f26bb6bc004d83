import { Testing } from 'cdk8s';
import * as fc from 'fast-check';
import { AgentCluster, AgentRoleSpec, McpServer, ResponseSchema, Topology } from '../src';
import { agentConfigErrors, K8sObject, validateK8s } from './support/manifests';

// Random behaviour and tool props on a worker (or, sometimes, on the
// coordinator, where they are not allowed): whatever synth accepts must be a
// config the runtime's schema accepts and Kubernetes objects that validate;
// whatever it rejects, it rejects with lines that name path, field and fix.

/** Mostly good values, sometimes bad ones, so both outcomes are explored. */
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 8 }, { arbitrary: bad, weight: 1 });

const name = mostly(fc.constantFrom('docs', 'search', 'a-b', 'x'.repeat(63)), fc.constantFrom('Bad_Name', '', 'x'.repeat(64)));
const inClusterUrl = mostly(
  fc.constantFrom('http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp', 'https://docs-mcp.agents-tools.svc:8443/mcp'),
  fc.constantFrom('http://docs-mcp:8000/mcp', 'http://10.0.0.7:8000/mcp', 'http://u:p@docs-mcp.agents-tools.svc/mcp', 'not a url', 'http://docs.example.com/mcp'),
);
const externalUrl = mostly(
  fc.oneof(fc.constantFrom('https://search.example.com/mcp', 'https://search.example.com:8443/mcp', 'https://203.0.113.9/mcp', 'https://[2001:db8::1]:9000/mcp'), fc.webUrl({ validSchemes: ['https'] })),
  fc.oneof(fc.constantFrom('http://search.example.com/mcp', 'https://u:p@search.example.com/mcp', 'ftp://search.example.com/mcp', 'https://docs.agents.svc/mcp'), fc.webUrl()),
);
const port = fc.option(mostly(fc.constantFrom(443, 8000, 8443, 9000), fc.integer({ min: -1, max: 70000 })), { nil: undefined });
const extras = fc.record(
  {
    allowedTools: mostly(fc.array(fc.constantFrom('search_docs', 'get_doc'), { maxLength: 2 }).map((a) => [...new Set(a)]), fc.constant(['a', 'a', ''])),
    bearerTokenSecretName: mostly(fc.constantFrom('mcp-token', 'search.token'), fc.constant('Bad_Name')),
  },
  { requiredKeys: [] },
);
const server = fc.oneof(
  fc
    .tuple(name, inClusterUrl, extras, mostly(fc.constant('agents-tools'), fc.constantFrom('agents', 'Bad NS')), mostly(fc.constant({ app: 'docs-mcp' }), fc.constant({})), port)
    .map(([n, u, x, namespace, podLabels, p]) => McpServer.inCluster({ name: n, url: u, ...x, namespace, podLabels, port: p ?? 8000 })),
  fc
    .tuple(name, externalUrl, extras, mostly(fc.constantFrom('203.0.113.0/24', '0.0.0.0/0', '2001:db8::/32'), fc.constantFrom('300.1.2.3/99', '1.2.3.4', '10.0.0.0/33')), port)
    .map(([n, u, x, cidr, p]) => McpServer.external({ name: n, url: u, ...x, cidr, port: p })),
);
const schema = mostly(
  fc.constantFrom(
    ResponseSchema.fromObject('verdict', { type: 'object', properties: { pass: { type: 'boolean' } }, required: ['pass'] }),
    ResponseSchema.fromJson('list_2020', '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"}]}'),
  ),
  fc.constantFrom(ResponseSchema.fromObject('bad', { type: 'object', required: 'pass' }), ResponseSchema.fromJson('text', '{"type":"object"'), ResponseSchema.fromJson('in valid', '{}')),
);
const behaviour = fc.record(
  {
    instructions: mostly(
      fc.oneof(fc.string({ minLength: 1, maxLength: 40 }).filter((t) => t.trim() !== ''), fc.constantFrom('x'.repeat(32768), '😀'.repeat(32768))),
      fc.constantFrom('', '  ', 'x'.repeat(32769), '😀'.repeat(32769)),
    ),
    temperature: mostly(fc.double({ min: 0, max: 2, noNaN: true }), fc.constantFrom(-0.5, 2.01, NaN)),
    maxTokens: mostly(fc.integer({ min: 1, max: 128000 }), fc.constantFrom(0, 1.5, 128001)),
    responseSchema: schema,
    mcpServers: fc.array(server, { maxLength: 3 }),
    maxToolRounds: mostly(fc.integer({ min: 1, max: 50 }), fc.constantFrom(0, 51)),
    toolCallTimeoutMs: mostly(fc.integer({ min: 1, max: 60000 }), fc.constantFrom(0, 0.5)),
  },
  { requiredKeys: ['instructions'] },
) as fc.Arbitrary<Partial<AgentRoleSpec>>;

const LINE = /^(\[[^\]]+\] )+[A-Za-z][\w.[\]]*: .+ Fix: .+\.$/;

test('accepted behaviour props render schema-valid configs and objects; rejected ones name path, field and fix', () => {
  let accepted = 0;
  let rejected = 0;
  fc.assert(
    fc.property(behaviour, mostly(fc.constant(false), fc.constant(true)), (spec, onCoordinator) => {
      const chart = Testing.chart();
      const worker: AgentRoleSpec = { name: 'w', ...(onCoordinator ? {} : spec) };
      new AgentCluster(chart, 'agents', {
        topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator', ...(onCoordinator ? spec : {}) }, workers: [worker] }),
        upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' },
      });
      let objs: K8sObject[];
      try {
        objs = Testing.synth(chart) as K8sObject[];
      } catch (e) {
        rejected++;
        const lines = (e as Error).message.split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
        expect(lines.length).toBeGreaterThan(0);
        for (const l of lines) expect(l).toMatch(LINE);
        return;
      }
      accepted++;
      for (const cm of objs.filter((o) => o.kind === 'ConfigMap')) expect(agentConfigErrors(JSON.parse(cm.data['agent-config.json']))).toEqual([]);
      for (const o of objs.filter((x) => x.kind === 'NetworkPolicy' || x.kind === 'Deployment')) validateK8s(o);
      const servers = onCoordinator ? [] : spec.mcpServers ?? [];
      const policy = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'w-mcp');
      expect(policy?.spec.egress.length ?? 0).toBe(servers.length);
    }),
    { numRuns: 100 },
  );
  // the generators reach both outcomes
  expect(accepted).toBeGreaterThan(5);
  expect(rejected).toBeGreaterThan(5);
});
