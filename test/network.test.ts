import { Testing } from 'cdk8s';
import { AgentCluster, Topology } from '../src';
import { synthTopology, K8sObject } from './support/manifests';
import { reachableEdges } from './support/reachability';

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
