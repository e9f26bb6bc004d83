import { Testing } from 'cdk8s';
import { AgentCluster, McpServer, Topology } from '../src';
import { synthTopology, K8sObject } from './support/manifests';
import { egressAllowed, reachableEdges } from './support/reachability';

const WORKERS = ['task-executor-a', 'task-executor-b', 'data-retrieval', 'validation'];
const ALL = ['coordinator', ...WORKERS];
const edges = (pairs: Array<[string, string]>) => new Set(pairs.map(([a, b]) => `${a}->${b}`));

// The graphs of the example topologies, written out by hand so the test does
// not trust the construct's own edge list.
const EXPECTED: Record<string, Set<string>> = {
  'hub-and-spoke': edges(WORKERS.map((w) => ['coordinator', w])),
  'mesh': edges(ALL.flatMap((a) => ALL.map((b) => [a, b] as [string, string]))),
  'hierarchical': edges([
    ['coordinator', 'execution-supervisor'],
    ['coordinator', 'quality-supervisor'],
    ['execution-supervisor', 'task-executor-a'],
    ['execution-supervisor', 'task-executor-b'],
    ['quality-supervisor', 'data-retrieval'],
    ['quality-supervisor', 'validation'],
  ]),
};

test.each(Object.keys(EXPECTED))('%s: the NetworkPolicies admit exactly the edges of the graph on 50051', (topology) => {
  const objs = synthTopology(topology);
  expect([...reachableEdges(objs)].sort()).toEqual([...EXPECTED[topology]].sort());
});

test.each(Object.keys(EXPECTED))('%s: nobody reaches any pod on 8080 except the entry from API clients', (topology) => {
  const objs = synthTopology(topology);
  // agent-to-agent HTTP is closed everywhere
  expect([...reachableEdges(objs, 8080, 'http')]).toEqual([]);
  const entryPolicy = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'coordinator-api')!;
  expect(entryPolicy.spec.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { 'agents.cdk8s.io/api-client': 'true' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }]);
});

test('only roles that call models get upstream egress on 443, never to cluster ranges', () => {
  const objs = synthTopology('hub-and-spoke');
  const withUpstream = objs
    .filter((o) => o.kind === 'NetworkPolicy')
    .filter((p) => (p.spec.egress ?? []).some((r: any) => r.to?.some((t: any) => t.ipBlock)))
    .map((p) => p.metadata.name)
    .sort();
  expect(withUpstream).toEqual(WORKERS.map((w) => `${w}-peers`).sort());
  const rule = objs.find((o) => o.metadata.name === 'validation-peers')!.spec.egress.find((r: any) => r.to[0].ipBlock);
  expect(rule).toEqual({ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] } }], ports: [{ protocol: 'TCP', port: 443 }] });
});

test('the reachability evaluator is not vacuous: removing a rule removes its edge', () => {
  const objs = synthTopology('hub-and-spoke');
  const trimmed = objs.map((o) => (o.kind === 'NetworkPolicy' && o.metadata.name === 'validation-peers' ? { ...o, spec: { ...o.spec, ingress: [] } } : o)) as K8sObject[];
  expect(reachableEdges(trimmed).has('coordinator->validation')).toBe(false);
  expect(reachableEdges(trimmed).has('coordinator->data-retrieval')).toBe(true);
});

function meshPolicies(n: number): number {
  const chart = Testing.chart();
  const peers = Array.from({ length: n }, (_, i) => ({ name: `peer-${i}`, replicas: 1 }));
  new AgentCluster(chart, 'm', { topology: Topology.mesh({ peers }), upstream: { baseUrl: 'https://x.example.com/v1', apiKeySecretName: 'k' } });
  return Testing.synth(chart).filter((o: any) => o.kind === 'NetworkPolicy').length;
}

test('mesh NetworkPolicy count does not grow with the square of the members', () => {
  const [p10, p50, p100] = [meshPolicies(10), meshPolicies(50), meshPolicies(100)];
  // at most linear: doubling the members at most doubles the policies
  expect(p100).toBeLessThanOrEqual(2 * p50);
  expect(p50).toBeLessThanOrEqual(5 * p10);
  expect(p100).toBeLessThan(100 * 100);
});

describe('MCP tool servers: a role reaches its servers and nothing else new', () => {
  const DOCS_POD = { namespace: 'agents-tools', labels: { 'app.kubernetes.io/name': 'docs-mcp' } };

  test.each(Object.keys(EXPECTED))('%s example: only data-retrieval reaches the docs MCP pods, and only on 8000', (topology) => {
    const objs = synthTopology(topology);
    const roles = objs.filter((o) => o.kind === 'Deployment').map((d) => d.metadata.name);
    expect(roles.filter((r) => egressAllowed(objs, r, DOCS_POD, 8000))).toEqual(['data-retrieval']);
    expect(egressAllowed(objs, 'data-retrieval', DOCS_POD, 8001)).toBe(false);
    // another pod in the tools namespace, and the same labels in another namespace
    expect(egressAllowed(objs, 'data-retrieval', { namespace: 'agents-tools', labels: { 'app.kubernetes.io/name': 'other-tool' } }, 8000)).toBe(false);
    expect(egressAllowed(objs, 'data-retrieval', { ...DOCS_POD, namespace: 'default' }, 8000)).toBe(false);
  });

  // Every destination a policy could plausibly open, and the ports that matter.
  const PODS = [
    DOCS_POD,
    { namespace: 'agents-tools', labels: { 'app.kubernetes.io/name': 'other-tool' } },
    { namespace: 'default', labels: { 'app.kubernetes.io/name': 'docs-mcp' } },
    { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
  ];
  const IPS = ['203.0.113.7', '203.0.114.1', '8.8.8.8', '10.1.2.3', '172.16.0.9', '192.168.1.1'];
  const PORTS = [53, 80, 443, 8000, 8080, 8443, 50051];

  /** Every (role, destination, port) the policies open, with the role's own pods among the destinations. */
  function reach(objs: K8sObject[]): Set<string> {
    const deployments = objs.filter((o) => o.kind === 'Deployment');
    const own = deployments.map((d) => ({ namespace: d.metadata.namespace!, labels: d.spec.template.metadata.labels as Record<string, string> }));
    const out = new Set<string>();
    for (const d of deployments) {
      for (const port of PORTS) {
        for (const pod of [...PODS, ...own]) if (egressAllowed(objs, d.metadata.name, pod, port)) out.add(`${d.metadata.name} -> ${pod.namespace}/${Object.values(pod.labels).join(',')}:${port}`);
        for (const ip of IPS) if (egressAllowed(objs, d.metadata.name, { ip }, port)) out.add(`${d.metadata.name} -> ${ip}:${port}`);
      }
    }
    return out;
  }

  const servers = () => [
    McpServer.inCluster({ name: 'docs', url: 'http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp', namespace: 'agents-tools', podLabels: { 'app.kubernetes.io/name': 'docs-mcp' }, port: 8000 }),
    McpServer.external({ name: 'search', url: 'https://search.example.com:8443/mcp', cidr: '203.0.113.0/24' }),
  ];
  const TOPOLOGIES: Record<string, (tools: boolean) => Topology> = {
    'hub-and-spoke': (tools) => Topology.hubAndSpoke({ coordinator: { name: 'hub' }, workers: [{ name: 'w', mcpServers: tools ? servers() : undefined }, { name: 'x' }] }),
    'mesh': (tools) => Topology.mesh({ peers: [{ name: 'w', mcpServers: tools ? servers() : undefined }, { name: 'x' }] }),
    'hierarchical': (tools) =>
      Topology.hierarchical({
        coordinator: { name: 'hub' },
        supervisors: [{ name: 'sup', reportsTo: 'hub' }],
        workers: [
          { name: 'w', reportsTo: 'sup', mcpServers: tools ? servers() : undefined },
          { name: 'x', reportsTo: 'sup' },
        ],
      }),
  };
  const synthWith = (topology: string, tools: boolean) => {
    const chart = Testing.chart();
    new AgentCluster(chart, 't', { topology: TOPOLOGIES[topology](tools), upstream: { baseUrl: 'https://x.example.com/v1', apiKeySecretName: 'k' } });
    return Testing.synth(chart) as K8sObject[];
  };

  test.each(Object.keys(TOPOLOGIES))('%s: listing two servers opens exactly those two (pod selector + port, CIDR + port) for that role', (topology) => {
    const before = reach(synthWith(topology, false));
    const after = reach(synthWith(topology, true));
    expect([...before].filter((e) => !after.has(e))).toEqual([]);
    expect([...after].filter((e) => !before.has(e)).sort()).toEqual(['w -> 203.0.113.7:8443', 'w -> agents-tools/docs-mcp:8000']);
  });

  test('the evaluator is not vacuous: ipBlock except and namespace selectors are honoured', () => {
    const objs = synthWith('hub-and-spoke', true);
    // upstream egress: 443 to the internet, never to the cluster ranges it excepts
    expect(egressAllowed(objs, 'w', { ip: '8.8.8.8' }, 443)).toBe(true);
    expect(egressAllowed(objs, 'w', { ip: '10.1.2.3' }, 443)).toBe(false);
    expect(egressAllowed(objs, 'hub', { ip: '8.8.8.8' }, 443)).toBe(false);
    expect(egressAllowed(objs, 'w', { ip: '203.0.114.1' }, 8443)).toBe(false);
    const withoutMcp = objs.filter((o) => !(o.kind === 'NetworkPolicy' && o.metadata.name === 'w-mcp'));
    expect(egressAllowed(withoutMcp, 'w', DOCS_POD, 8000)).toBe(false);
  });
});
