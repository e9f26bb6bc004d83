import { Testing } from 'cdk8s';
import { AgentCluster, Topology } from '../src';
import { K8sObject, resolvePeers } from './support/manifests';

// A mesh's roles all call every role: written per role, the peer lists grew
// with the square of the size (about 230 MB of YAML at 1,000 roles). One
// shared list per cluster keeps the manifests linear.

function mesh(n: number): K8sObject[] {
  const chart = Testing.chart();
  const peers = Array.from({ length: n }, (_, i) => ({ name: `peer-${i}`, replicas: 1 }));
  new AgentCluster(chart, 'm', { topology: Topology.mesh({ peers }), upstream: { baseUrl: 'https://x.example.com/v1', apiKeySecretName: 'k' } });
  return Testing.synth(chart) as K8sObject[];
}

// JSON bytes of the objects: proportional to the YAML, and quick to count (bench/synth.ts reports the YAML itself).
const bytes = (objs: K8sObject[]) => Buffer.byteLength(JSON.stringify(objs), 'utf8');

test('manifest bytes grow linearly with the mesh size (doubling the roles at most 2.2x the bytes)', () => {
  const [b40, b80, b160] = [bytes(mesh(40)), bytes(mesh(80)), bytes(mesh(160))];
  expect(b80 / b40).toBeLessThanOrEqual(2.2);
  expect(b160 / b80).toBeLessThanOrEqual(2.2);
});

test('one peers ConfigMap per mesh, projected into every pod beside its own config; every role sees every peer', () => {
  const objs = mesh(20);
  const shared = objs.filter((o) => o.kind === 'ConfigMap' && o.data['peers.json']);
  expect(shared.map((o) => o.metadata.name)).toEqual(['m-peers']);
  expect(JSON.parse(shared[0].data['peers.json'])).toHaveLength(20);
  for (const d of objs.filter((o) => o.kind === 'Deployment')) {
    const config = d.spec.template.spec.volumes.find((v: any) => v.name === 'config');
    expect(config.projected.sources).toEqual([{ configMap: { name: `${d.metadata.name}-config` } }, { configMap: { name: 'm-peers' } }]);
  }
  for (const cm of objs.filter((o) => o.kind === 'ConfigMap' && o.data['agent-config.json'])) {
    const written = JSON.parse(cm.data['agent-config.json']);
    expect([written.peers, written.peersFile]).toEqual([[], 'peers.json']);
    expect(resolvePeers(written, objs).peers).toHaveLength(20);
  }
});
