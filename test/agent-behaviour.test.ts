import { Testing } from 'cdk8s';
import { Construct } from 'constructs';
import { AgentCluster, AgentClusterProps, AgentRoleSpec, McpServer, ModelCatalog, ResponseSchema, Topology } from '../src';
import { agentConfigErrors, K8sObject } from './support/manifests';

const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };
const hub = (workers: AgentRoleSpec[], coordinator: AgentRoleSpec = { name: 'coordinator' }) => Topology.hubAndSpoke({ coordinator, workers });

const docs = (over: Partial<Parameters<typeof McpServer.inCluster>[0]> = {}) =>
  McpServer.inCluster({
    name: 'docs',
    url: 'http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp',
    namespace: 'agents-tools',
    podLabels: { 'app.kubernetes.io/name': 'docs-mcp' },
    port: 8000,
    ...over,
  });
const search = (over: Partial<Parameters<typeof McpServer.external>[0]> = {}) =>
  McpServer.external({ name: 'search', url: 'https://search.example.com/mcp', cidr: '203.0.113.0/24', ...over });

function synth(props: Partial<AgentClusterProps> & Pick<AgentClusterProps, 'topology'>): K8sObject[] {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', { upstream, ...props });
  return Testing.synth(chart) as K8sObject[];
}
const configOf = (objs: K8sObject[], role: string) => JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${role}-config`)!.data['agent-config.json']);

/** Error lines of a synth (without cdk8s's header), or [] when it succeeds. */
function synthErrors(build: (chart: Construct) => void): string[] {
  const chart = Testing.chart();
  build(chart);
  try {
    Testing.synth(chart);
    return [];
  } catch (e) {
    return (e as Error).message.split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  }
}
/** Errors of a hub whose single worker 'w' has this spec. */
const workerErrors = (spec: Partial<AgentRoleSpec>, props: Partial<AgentClusterProps> = {}) =>
  synthErrors((c) => new AgentCluster(c, 'agents', { topology: hub([{ name: 'w', ...spec }]), upstream, ...props }));

describe('rendering', () => {
  const verdict = { type: 'object', properties: { pass: { type: 'boolean' }, feedback: { type: 'string' } }, required: ['pass', 'feedback'], additionalProperties: false };

  test('behaviour and tools land in the worker config, valid against the runtime schema', () => {
    const objs = synth({
      topology: hub([
        {
          name: 'w',
          instructions: 'You check drafts.',
          temperature: 0,
          maxTokens: 800,
          responseSchema: ResponseSchema.fromObject('verdict', verdict),
          mcpServers: [docs({ allowedTools: ['search_docs'] }), search({ bearerTokenSecretName: 'search-token' })],
        },
      ]),
    });
    const config = configOf(objs, 'w');
    expect(agentConfigErrors(config)).toEqual([]);
    expect(config.behavior).toEqual({ instructions: 'You check drafts.', temperature: 0, maxTokens: 800, responseSchema: { name: 'verdict', schema: verdict } });
    expect(config.tools).toEqual({
      mcpServers: [
        { name: 'docs', url: 'http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp', allowedTools: ['search_docs'] },
        { name: 'search', url: 'https://search.example.com/mcp', bearerTokenEnv: 'MCP_SEARCH_TOKEN' },
      ],
      maxRounds: 8,
      callTimeoutMs: 10000,
    });
    // the coordinator calls no model: no behaviour, no tools
    expect(configOf(objs, 'coordinator').behavior).toBeUndefined();
    expect(configOf(objs, 'coordinator').tools).toBeUndefined();
  });

  test('the bearer token reaches the container only as a secretKeyRef, named as the config says', () => {
    const objs = synth({ topology: hub([{ name: 'w', mcpServers: [search({ bearerTokenSecretName: 'search-token', bearerTokenSecretKey: 'bearer' }), docs()] }]) });
    const env = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'w')!.spec.template.spec.containers[0].env;
    const tokenEnv = configOf(objs, 'w').tools.mcpServers[0].bearerTokenEnv;
    expect(env.filter((e: any) => e.name.startsWith('MCP_'))).toEqual([{ name: tokenEnv, valueFrom: { secretKeyRef: { name: 'search-token', key: 'bearer' } } }]);
    // a server without a token gets no env and no bearerTokenEnv
    expect(configOf(objs, 'w').tools.mcpServers[1].bearerTokenEnv).toBeUndefined();
    expect(McpServer.inCluster({ name: 'my-docs', url: 'http://d.ns.svc:80/mcp', namespace: 'ns', podLabels: { a: 'b' }, port: 80, bearerTokenSecretName: 's' }).bearerTokenEnv).toBe('MCP_MY_DOCS_TOKEN');
  });

  test('tool rounds and call timeout: role over cluster over default', () => {
    const objs = synth({
      maxToolRounds: 3,
      toolCallTimeoutMs: 2000,
      topology: hub([
        { name: 'a', mcpServers: [docs()] },
        { name: 'b', mcpServers: [docs()], maxToolRounds: 5, toolCallTimeoutMs: 500 },
      ]),
    });
    expect(configOf(objs, 'a').tools).toMatchObject({ maxRounds: 3, callTimeoutMs: 2000 });
    expect(configOf(objs, 'b').tools).toMatchObject({ maxRounds: 5, callTimeoutMs: 500 });
  });

  test('a role without behaviour renders no behavior or tools keys', () => {
    const config = configOf(synth({ topology: hub([{ name: 'w' }]) }), 'w');
    expect(Object.keys(config)).not.toContain('behavior');
    expect(Object.keys(config)).not.toContain('tools');
  });

  test('mesh peers (the entry included) carry their own instructions; a 2020-12 schema from JSON text passes', () => {
    const schema2020 = JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'string' }], properties: { a: { type: 'string' } } });
    const objs = synth({
      topology: Topology.mesh({
        peers: [
          { name: 'entry', instructions: 'Split the job.' },
          { name: 'p', instructions: 'Answer.', responseSchema: ResponseSchema.fromJson('answer', schema2020) },
        ],
        entry: 'entry',
      }),
    });
    expect(configOf(objs, 'entry').behavior).toEqual({ instructions: 'Split the job.' });
    expect(configOf(objs, 'p').behavior.responseSchema).toEqual({ name: 'answer', schema: JSON.parse(schema2020) });
    for (const r of ['entry', 'p']) expect(agentConfigErrors(configOf(objs, r))).toEqual([]);
  });

  test('instructions keep their text exactly, quotes and a literal "peers": [] included', () => {
    const text = 'Say "peers": [] when asked.\nLine two: \\ and "quotes".';
    const config = configOf(synth({ topology: hub([{ name: 'w', instructions: text }]) }), 'w');
    expect(config.behavior.instructions).toBe(text);
    expect(config.peers).toEqual([]);
  });
});

describe('synth validation: one line per problem, with path, field and fix', () => {
  test.each<[string, Partial<AgentRoleSpec>, RegExp]>([
    ['empty instructions', { instructions: '' }, /\[test\/agents\/w\] instructions: is empty\. Fix: write the role's system prompt/],
    ['blank instructions', { instructions: ' \n ' }, /\[test\/agents\/w\] instructions: is empty\./],
    ['oversized instructions', { instructions: 'x'.repeat(32769) }, /\[test\/agents\/w\] instructions: 32769 characters, over the 32768 the runtime accepts\. Fix: shorten them to at most 32768 characters/],
    ['temperature below 0', { instructions: 'i', temperature: -0.1 }, /\[test\/agents\/w\] temperature: -0\.1 is out of range\. Fix: use a number from 0 to 2/],
    ['temperature above 2', { instructions: 'i', temperature: 2.5 }, /temperature: 2\.5 is out of range/],
    ['temperature NaN', { instructions: 'i', temperature: NaN }, /temperature: NaN is out of range/],
    ['maxTokens 0', { instructions: 'i', maxTokens: 0 }, /\[test\/agents\/w\] maxTokens: 0 is not a whole number >= 1\. Fix: use 1 or more tokens/],
    ['maxTokens fractional', { instructions: 'i', maxTokens: 1.5 }, /maxTokens: 1\.5 is not a whole number >= 1/],
    ['maxTokens over the window', { instructions: 'i', maxTokens: 200000 }, /\[test\/agents\/w\] maxTokens: 200000 exceeds the 128000-token context window of model 'gpt-4\.1'\. Fix: use at most 128000/],
    ['temperature without instructions', { temperature: 1 }, /\[test\/agents\/w\] temperature: role 'w' sets temperature but no instructions.*Fix: add instructions to role 'w'/],
    ['schema name', { instructions: 'i', responseSchema: ResponseSchema.fromObject('has space', { type: 'object' }) }, /responseSchema\.name: 'has space' is not a schema name\. Fix: use 1 to 64 letters/],
    ['schema not JSON', { instructions: 'i', responseSchema: ResponseSchema.fromJson('s', '{ type: object }') }, /responseSchema\.schema: is not JSON \(.*\)\. Fix: pass the schema as valid JSON text/],
    ['schema not an object', { instructions: 'i', responseSchema: ResponseSchema.fromJson('s', '[1]') }, /responseSchema\.schema: is not a JSON object/],
    ['schema against the meta-schema', { instructions: 'i', responseSchema: ResponseSchema.fromObject('s', { type: 'object', properties: { a: { type: 'strin' } } }) }, /responseSchema\.schema: is not a valid JSON Schema: \/properties\/a\/type must be equal to one of the allowed values/],
    ['schema required not a list', { instructions: 'i', responseSchema: ResponseSchema.fromObject('s', { type: 'object', required: 'a' }) }, /responseSchema\.schema: is not a valid JSON Schema: \/required must be array/],
    ['schema with a dangling $ref', { instructions: 'i', responseSchema: ResponseSchema.fromObject('s', { $ref: '#/definitions/missing' }) }, /responseSchema\.schema: does not compile \(can't resolve reference #\/definitions\/missing/],
    ['schema of another draft', { instructions: 'i', responseSchema: ResponseSchema.fromObject('s', { $schema: 'http://json-schema.org/draft-04/schema#' }) }, /responseSchema\.schema: declares \$schema "http:\/\/json-schema\.org\/draft-04\/schema#"\. Fix: write it as draft-07 or 2020-12/],
    ['2020-12 schema against its meta-schema', { instructions: 'i', responseSchema: ResponseSchema.fromObject('s', { $schema: 'https://json-schema.org/draft/2020-12/schema', prefixItems: [] }) }, /responseSchema\.schema: is not a valid JSON Schema: \/prefixItems must NOT have fewer than 1 items/],
    ['unparseable MCP URL', { mcpServers: [docs({ url: 'http://exa mple/mcp' })] }, /\[test\/agents\/w\] mcpServers\[0\]\.url: 'http:\/\/exa mple\/mcp' is not an http:\/\/ or https:\/\/ URL/],
    ['MCP URL with a bad host', { mcpServers: [search({ url: 'https://[::1/mcp' })] }, /mcpServers\[0\]\.url: 'https:\/\/\[::1\/mcp' is not a URL\. Fix: write an http\(s\) URL/],
    ['MCP URL not http(s)', { mcpServers: [search({ url: 'ftp://search.example.com/mcp' })] }, /mcpServers\[0\]\.url: 'ftp:\/\/search\.example\.com\/mcp' is not an http:\/\/ or https:\/\/ URL/],
    ['external http://', { mcpServers: [search({ url: 'http://search.example.com/mcp', port: 80 })] }, /mcpServers\[0\]\.url: 'http:\/\/search\.example\.com\/mcp' is http:\/\/ to a host outside the cluster.*Fix: use https:\/\//],
    ['external to a cluster host', { mcpServers: [search({ url: 'https://docs.agents-tools.svc.cluster.local/mcp' })] }, /mcpServers\[0\]\.url: host 'docs\.agents-tools\.svc\.cluster\.local' is a cluster Service.*Fix: use McpServer\.inCluster/],
    ['bad CIDR', { mcpServers: [search({ cidr: '300.1.2.3/99' })] }, /\[test\/agents\/w\] mcpServers\[0\]\.cidr: '300\.1\.2\.3' in '300\.1\.2\.3\/99' is not an IP address\. Fix: write the server's address range/],
    ['CIDR prefix too long', { mcpServers: [search({ cidr: '203.0.113.0/33' })] }, /mcpServers\[0\]\.cidr: prefix \/33 of '203\.0\.113\.0\/33' is longer than \/32/],
    ['CIDR without the URL address', { mcpServers: [search({ url: 'https://198.51.100.7/mcp' })] }, /mcpServers\[0\]\.cidr: 203\.0\.113\.0\/24 does not contain the URL's address 198\.51\.100\.7\. Fix: use a block that contains 198\.51\.100\.7, e\.g\. '198\.51\.100\.7\/32'/],
    ['external port out of range', { mcpServers: [search({ port: 70000 })] }, /mcpServers\[0\]\.port: 70000 is not a TCP port\. Fix: use a whole number from 1 to 65535/],
    ['external port not the URL port', { mcpServers: [search({ url: 'https://search.example.com:8443/mcp', port: 443 })] }, /mcpServers\[0\]\.port: 443 differs from the URL's port 8443.*Fix: set port: 8443/],
    ['in-cluster port 0', { mcpServers: [docs({ port: 0 })] }, /mcpServers\[0\]\.port: 0 is not a TCP port/],
    ['in-cluster host in another namespace', { mcpServers: [docs({ namespace: 'tools' })] }, /\[test\/agents\/w\] mcpServers\[0\]\.url: host 'docs-mcp\.agents-tools\.svc\.cluster\.local' is in namespace 'agents-tools' but the server's namespace is 'tools'\. Fix: set namespace: 'agents-tools' or correct the URL's host/],
    ['in-cluster short host, other namespace', { mcpServers: [docs({ url: 'http://docs-mcp:8000/mcp' })] }, /mcpServers\[0\]\.url: host 'docs-mcp' is in namespace 'agents' but the server's namespace is 'agents-tools'/],
    ['in-cluster host that is no Service', { mcpServers: [docs({ url: 'http://docs.example.com/mcp' })] }, /mcpServers\[0\]\.url: host 'docs\.example\.com' is not a Service name.*McpServer\.external/],
    ['in-cluster IP host', { mcpServers: [docs({ url: 'http://10.0.0.7:8000/mcp' })] }, /mcpServers\[0\]\.url: host 10\.0\.0\.7 is an IP address; pod and Service IPs change/],
    ['in-cluster without pod labels', { mcpServers: [docs({ podLabels: {} })] }, /mcpServers\[0\]\.podLabels: is empty, which would open egress to every pod in namespace 'agents-tools'/],
    ['server name', { mcpServers: [docs({ name: 'Docs_1' })] }, /mcpServers\[0\]\.name: 'Docs_1' is not a DNS label/],
    ['duplicate server names', { mcpServers: [docs(), search({ name: 'docs' })] }, /\[test\/agents\/w\] mcpServers\[1\]\.name: 'docs' is also the name of mcpServers\[0\]\. Fix: give each server of a role its own name/],
    ['allowedTools duplicate', { mcpServers: [docs({ allowedTools: ['a', 'a'] })] }, /mcpServers\[0\]\.allowedTools\[1\]: 'a' is listed twice/],
    ['bearer Secret name', { mcpServers: [docs({ bearerTokenSecretName: 'Bad_Name' })] }, /mcpServers\[0\]\.bearerTokenSecretName: 'Bad_Name' is not a Secret name/],
    ['maxToolRounds over 50', { mcpServers: [docs()], maxToolRounds: 51 }, /\[test\/agents\/w\] maxToolRounds: 51 is out of range\. Fix: use a whole number of rounds from 1 to 50/],
    ['toolCallTimeoutMs 0', { mcpServers: [docs()], toolCallTimeoutMs: 0 }, /\[test\/agents\/w\] toolCallTimeoutMs: 0 is not a whole number of ms >= 1/],
  ])('%s', (_name, spec, pattern) => {
    const errors = workerErrors(spec);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(pattern);
    expect(errors[0]).toMatch(/ Fix: .+\.$/);
  });

  test("a host that merely starts with 'svc.' is external; one ending in .svc is not", () => {
    expect(workerErrors({ mcpServers: [search({ url: 'https://svc.example.com/mcp' })] })).toEqual([]);
    expect(workerErrors({ mcpServers: [search({ url: 'https://docs.tools.svc/mcp' })] })).toEqual([expect.stringMatching(/mcpServers\[0\]\.url: host 'docs\.tools\.svc' is a cluster Service/)]);
  });

  test('a server keeps the settings it was made with', () => {
    const labels: Record<string, string> = { 'app.kubernetes.io/name': 'docs-mcp' };
    const tools = ['search_docs'];
    const server = docs({ podLabels: labels, allowedTools: tools });
    labels['app.kubernetes.io/name'] = 'changed';
    tools.push('get_doc');
    const objs = synth({ topology: hub([{ name: 'w', mcpServers: [server] }]) });
    expect(configOf(objs, 'w').tools.mcpServers[0].allowedTools).toEqual(['search_docs']);
    expect(objs.find((o) => o.metadata.name === 'w-mcp')!.spec.egress[0].to[0].podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'docs-mcp' });
  });

  test('credentials in an MCP URL are refused without printing them', () => {
    const errors = workerErrors({ mcpServers: [search({ url: 'https://alice:s3cret@search.example.com/mcp' })] });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/mcpServers\[0\]\.url: carries credentials \(user:password@\).*Fix: remove them from the URL and reference a Secret with bearerTokenSecretName/);
    expect(errors.join('\n')).not.toContain('s3cret');
    expect(workerErrors({ mcpServers: [search({ url: 'ftp://alice:s3cret@x/mcp' })] }).join('\n')).not.toContain('s3cret');
  });

  test('maxTokens is checked against every model the role may call', () => {
    const catalog = ModelCatalog.defaults().withModel({ id: 'small', inputUsdPerMTok: 1, contextWindowTokens: 8000, reserveTokens: 1000 });
    const errors = workerErrors({ instructions: 'i', maxTokens: 16000, models: ['gpt-4.1', 'small'] }, { catalog });
    expect(errors).toEqual([expect.stringMatching(/maxTokens: 16000 exceeds the 8000-token context window of model 'small'/)]);
  });

  test('cluster-wide tool settings are checked at the cluster path', () => {
    expect(workerErrors({}, { maxToolRounds: 0 })).toEqual([expect.stringMatching(/^\[test\/agents\] (\[test\/agents\] )?maxToolRounds: 0 is out of range\./)]);
    expect(workerErrors({}, { toolCallTimeoutMs: 1.5 })).toEqual([expect.stringMatching(/toolCallTimeoutMs: 1\.5 is not a whole number of ms >= 1/)]);
  });

  test('behaviour on a role that makes no model calls is an error, for each field', () => {
    const errors = synthErrors(
      (c) =>
        new AgentCluster(c, 'agents', {
          topology: Topology.hierarchical({
            coordinator: { name: 'coordinator', instructions: 'Plan.' },
            supervisors: [{ name: 'sup', reportsTo: 'coordinator', mcpServers: [docs()], temperature: 1 }],
            workers: [{ name: 'w', reportsTo: 'sup' }],
          }),
          upstream,
        }),
    );
    expect(errors).toEqual([
      expect.stringMatching(/\[test\/agents\/coordinator\] instructions: role 'coordinator' is a coordinator: it dispatches tasks and makes no model calls.*Fix: set it on the workers \(or mesh peers\)/),
      expect.stringMatching(/\[test\/agents\/sup\] temperature: role 'sup' is a supervisor/),
      expect.stringMatching(/\[test\/agents\/sup\] mcpServers: role 'sup' is a supervisor/),
    ]);
  });

  test('every problem is reported at once', () => {
    const errors = workerErrors({ instructions: '', temperature: 9, mcpServers: [docs({ port: -1 }), search({ cidr: 'nope', url: 'http://x.example.com/mcp', port: 80 })] });
    expect(errors.map((e) => e.replace(/^(\[[^\]]+\] )+/, '').split(':')[0])).toEqual(['instructions', 'temperature', 'mcpServers[0].port', 'mcpServers[1].cidr', 'mcpServers[1].url']);
  });
});

test('the same schema (with an $id) on several roles, twice, is checked each time', () => {
  const withId = () => ResponseSchema.fromObject('s', { $id: 'https://example.com/answer.json', type: 'object' });
  const bad = () => ResponseSchema.fromObject('s', { $id: 'https://example.com/answer.json', $ref: '#/definitions/nope' });
  expect(workerErrors({ instructions: 'i', responseSchema: withId() })).toEqual([]);
  const errors = synthErrors(
    (c) =>
      new AgentCluster(c, 'agents', {
        topology: hub([
          { name: 'a', instructions: 'i', responseSchema: withId() },
          { name: 'b', instructions: 'i', responseSchema: withId() },
          { name: 'c', instructions: 'i', responseSchema: bad() },
          { name: 'd', instructions: 'i', responseSchema: bad() },
        ]),
        upstream,
      }),
  );
  expect(errors).toEqual([expect.stringMatching(/\[test\/agents\/c\] responseSchema\.schema: does not compile/), expect.stringMatching(/\[test\/agents\/d\] responseSchema\.schema: does not compile/)]);
});
