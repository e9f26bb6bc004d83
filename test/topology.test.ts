import { Topology, TopologyKind } from '../src';

const role = (name: string) => ({ name });

describe('Topology edges and adjacency agree', () => {
  const topologies: Record<string, Topology> = {
    'hub-and-spoke': Topology.hubAndSpoke({ coordinator: role('hub'), workers: [role('w1'), role('w2')] }),
    'mesh': Topology.mesh({ peers: [role('a'), role('b'), role('c')] }),
    'hierarchical': Topology.hierarchical({
      coordinator: role('top'),
      supervisors: [{ name: 's1', reportsTo: 'top' }],
      workers: [
        { name: 'w1', reportsTo: 's1' },
        { name: 'w2', reportsTo: 's1' },
      ],
    }),
  };

  test.each(Object.keys(topologies))('%s: calleesOf / callersOf are exactly the edge list', (name) => {
    const t = topologies[name];
    const fromEdges = new Set(t.edges.map((e) => `${e.from}->${e.to}`));
    const fromAdjacency = new Set(t.roles.flatMap((r) => t.calleesOf(r.spec.name).map((c) => `${r.spec.name}->${c}`)));
    const fromCallers = new Set(t.roles.flatMap((r) => t.callersOf(r.spec.name).map((c) => `${c}->${r.spec.name}`)));
    expect(fromAdjacency).toEqual(fromEdges);
    expect(fromCallers).toEqual(fromEdges);
  });

  test('a mesh lists all n² edges (self-calls included) only when asked, and hands out copies', () => {
    const t = topologies.mesh;
    expect(t.kind).toBe(TopologyKind.MESH);
    expect(t.edges).toHaveLength(9);
    expect(t.edges).toContainEqual({ from: 'b', to: 'b' });
    const callees = t.calleesOf('a');
    callees.push('intruder');
    expect(t.calleesOf('a')).toEqual(['a', 'b', 'c']);
    expect(t.callersOf('c')).toEqual(['a', 'b', 'c']);
  });
});
