// The runtime is this repository's own workspace package (agent-runtime/), built before the tests run.
// The module itself, not the package index (which loads the A2A SDK, an ES module root jest cannot require).
// eslint-disable-next-line import/no-extraneous-dependencies
import { roleIdentity as runtimeRoleIdentity } from '@cdk8s-agent-cluster/agent-runtime/dist/grpc/mtls';
import { Duration, Testing } from 'cdk8s';
import * as fc from 'fast-check';
import { AgentCluster, AgentMtls, IssuerKind, Topology } from '../src';
import { roleIdentity } from '../src/agent-mtls';
import { agentConfigErrors, K8sObject, podTemplates, resolvePeers, restrictedViolations, validateAny, validateCrds } from './support/manifests';

// mTLS in the constructs (src/agent-mtls.ts): cert-manager objects valid
// against cert-manager's CRD schema, one Certificate per role naming it,
// its Secret mounted read-only, and each role's config admitting exactly
// the roles with an edge to it.

const UPSTREAM = { baseUrl: 'https://api.example.com/v1', apiKeySecretName: 'upstream' };

function hierarchy(mtls?: AgentMtls): { objs: K8sObject[]; cluster: AgentCluster } {
  const chart = Testing.chart();
  const cluster = new AgentCluster(chart, 'agents', {
    namespace: 'team',
    upstream: UPSTREAM,
    mtls,
    topology: Topology.hierarchical({
      coordinator: { name: 'coordinator' },
      supervisors: [
        { name: 'sup-a', reportsTo: 'coordinator' },
        { name: 'sup-b', reportsTo: 'coordinator' },
      ],
      workers: [
        { name: 'w-1', reportsTo: 'sup-a' },
        { name: 'w-2', reportsTo: 'sup-a' },
        { name: 'w-3', reportsTo: 'sup-b' },
      ],
    }),
  });
  return { objs: Testing.synth(chart) as K8sObject[], cluster };
}

const ROLES = ['coordinator', 'sup-a', 'sup-b', 'w-1', 'w-2', 'w-3'];
const configOf = (objs: K8sObject[], role: string) => resolvePeers(JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${role}-config`)!.data['agent-config.json']), objs);

describe('AgentMtls.selfSigned()', () => {
  const { objs } = hierarchy(AgentMtls.selfSigned());
  const certs = objs.filter((o) => o.kind === 'Certificate');

  test('a self-signed Issuer signs a CA Certificate; a CA Issuer on its Secret signs one Certificate per role', () => {
    const issuers = objs.filter((o) => o.kind === 'Issuer');
    expect(issuers.map((o) => [o.metadata.name, o.spec])).toEqual([
      ['agents-selfsigned', { selfSigned: {} }],
      ['agents-ca', { ca: { secretName: 'agents-ca' } }],
    ]);
    const ca = certs.find((o) => o.metadata.name === 'agents-ca')!;
    expect(ca.spec).toMatchObject({ isCA: true, secretName: 'agents-ca', issuerRef: { name: 'agents-selfsigned', kind: 'Issuer' } });
    const roleCerts = certs.filter((o) => o !== ca);
    expect(roleCerts.map((o) => o.metadata.name).sort()).toEqual(ROLES.map((r) => `${r}-tls`).sort());
    for (const c of roleCerts) expect(c.spec.issuerRef).toEqual({ name: 'agents-ca', kind: 'Issuer', group: 'cert-manager.io' });
  });

  test("each role's certificate names the role (URI SAN) and its headless gRPC Service (DNS SAN), for server and client auth, renewed before expiry", () => {
    for (const role of ROLES) {
      const c = certs.find((o) => o.metadata.name === `${role}-tls`)!;
      expect(c.metadata.namespace).toBe('team');
      expect(c.spec).toMatchObject({
        secretName: `${role}-tls`,
        uris: [`spiffe://agents.team/role/${role}`],
        dnsNames: [`${role}-grpc.team.svc.cluster.local`],
        usages: ['digital signature', 'server auth', 'client auth'],
        duration: '2160h',
        renewBefore: '720h',
      });
    }
  });

  test('the URI SAN is the identity the runtime checks (same form on both sides of the contract)', () => {
    expect(roleIdentity('agents', 'team', 'w-1')).toBe(runtimeRoleIdentity('agents', 'team', 'w-1'));
  });

  test("every role mounts its certificate Secret read-only at /etc/agent-tls, its config points there, and liveness probes HTTP (the kubelet's gRPC probe has no client certificate)", () => {
    for (const { owner, spec } of podTemplates(objs)) {
      expect(spec.volumes).toContainEqual({ name: 'tls', secret: { secretName: `${owner}-tls`, defaultMode: 0o440 } });
      const agent = spec.containers.find((c: any) => c.name === 'agent');
      expect(agent.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/agent-tls', readOnly: true });
      expect(agent.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(agent.livenessProbe.grpc).toBeUndefined();
      expect(restrictedViolations(spec)).toEqual([]);
      const tls = configOf(objs, owner).tls;
      expect([tls.certFile, tls.keyFile, tls.caFile]).toEqual(['/etc/agent-tls/tls.crt', '/etc/agent-tls/tls.key', '/etc/agent-tls/ca.crt']);
    }
  });

  test('allowedCallers of each role are exactly the roles with an edge to it in the topology', () => {
    const allowed = Object.fromEntries(ROLES.map((r) => [r, configOf(objs, r).tls.allowedCallers]));
    expect(allowed).toEqual({ 'coordinator': [], 'sup-a': ['coordinator'], 'sup-b': ['coordinator'], 'w-1': ['sup-a'], 'w-2': ['sup-a'], 'w-3': ['sup-b'] });
    for (const r of ROLES) expect(agentConfigErrors(configOf(objs, r))).toEqual([]);
  });

  test('every object validates: built-in kinds against Kubernetes, Certificates and Issuers against the cert-manager CRD schema', () => {
    expect(() => validateAny(objs)).not.toThrow();
  });

  test('the cert-manager check is not a no-op: a Certificate with a misspelt field or a wrong type is refused', () => {
    const c = JSON.parse(JSON.stringify(certs[1]));
    c.spec.dnsNames = 'w-1-grpc';
    const d = JSON.parse(JSON.stringify(certs[1]));
    d.spec.issuer = d.spec.issuerRef;
    delete d.spec.issuerRef;
    expect(validateCrds([c, d]).map((r) => r.error === null)).toEqual([false, false]);
  });
});

describe('AgentMtls.certManager()', () => {
  test("uses the user's ClusterIssuer and synthesizes no issuer of its own", () => {
    const { objs } = hierarchy(AgentMtls.certManager({ issuerName: 'corp-ca', issuerKind: IssuerKind.CLUSTER_ISSUER, duration: Duration.hours(24), renewBefore: Duration.hours(8) }));
    expect(objs.filter((o) => o.kind === 'Issuer')).toEqual([]);
    const certs = objs.filter((o) => o.kind === 'Certificate');
    expect(certs).toHaveLength(ROLES.length);
    for (const c of certs) expect(c.spec).toMatchObject({ issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' }, duration: '24h', renewBefore: '8h' });
    expect(() => validateAny(objs)).not.toThrow();
  });

  test('bad names and lifetimes fail synth with one line each naming the field and the fix', () => {
    const bad = () => {
      const chart = Testing.chart();
      new AgentCluster(chart, 'agents', {
        upstream: UPSTREAM,
        topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: [{ name: 'w' }] }),
        mtls: AgentMtls.certManager({ issuerName: 'Corp CA', duration: Duration.minutes(30), renewBefore: Duration.hours(2) }),
      });
      Testing.synth(chart);
    };
    expect(bad).toThrow(/\[test\/agents\/mtls\] mtls\.issuerName: 'Corp CA' is not a valid issuer name\. Fix: /);
    expect(bad).toThrow(/mtls\.duration: 30m is shorter than the 1h cert-manager accepts\. Fix: /);
    expect(bad).toThrow(/mtls\.renewBefore: 2h is not shorter than duration 30m/);
  });
});

describe('a mesh', () => {
  const mesh = (n: number) => {
    const chart = Testing.chart();
    const peers = Array.from({ length: n }, (_, i) => ({ name: `peer-${i}`, replicas: 1 }));
    new AgentCluster(chart, 'm', { topology: Topology.mesh({ peers }), upstream: UPSTREAM, mtls: AgentMtls.selfSigned() });
    return Testing.synth(chart) as K8sObject[];
  };

  test('members admit their peers (every member) without listing them again, so the manifests stay linear in the mesh size', () => {
    const objs = mesh(6);
    for (let i = 0; i < 6; i++) {
      const config = configOf(objs, `peer-${i}`);
      expect(config.tls).toMatchObject({ allowedCallers: [], peersMayCall: true });
      expect(config.peers.map((p: { role: string }) => p.role)).toHaveLength(6);
      expect(agentConfigErrors(config)).toEqual([]);
    }
    const bytes = (n: number) => Buffer.byteLength(JSON.stringify(mesh(n)), 'utf8');
    const [b40, b80] = [bytes(40), bytes(80)];
    expect(b80 / b40).toBeLessThanOrEqual(2.2);
  });
});

test("with mTLS on, a pod option that mounts over /etc/agent-tls or reuses the volume name 'tls' fails synth", () => {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', {
    upstream: UPSTREAM,
    topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: [{ name: 'w' }] }),
    mtls: AgentMtls.selfSigned(),
    pods: { volumes: [{ name: 'tls', emptyDir: {} }], volumeMounts: [{ name: 'tls', mountPath: '/etc/agent-tls' }] },
  });
  expect(() => Testing.synth(chart)).toThrow(/\[test\/agents\/w\] pods\.volumes\[0\]\.name: 'tls' is used twice or by the constructs\./);
  expect(() => Testing.synth(chart)).toThrow(/\[test\/agents\/w\] pods\.volumeMounts\[0\]\.mountPath: \/etc\/agent-tls is where the constructs mount the config, \/tmp or the mTLS certificate\./);
});

describe('defaults', () => {
  test('without mtls: no cert-manager object (a vanilla cluster has no CRDs), no tls in configs, gRPC liveness probe', () => {
    const { objs } = hierarchy();
    expect(objs.filter((o) => o.apiVersion.startsWith('cert-manager.io/'))).toEqual([]);
    for (const r of ROLES) expect(configOf(objs, r).tls).toBeUndefined();
    for (const { spec } of podTemplates(objs)) expect(spec.containers[0].livenessProbe.grpc).toEqual({ port: 50051 });
  });
});

test('property: for any hub-and-spoke with mTLS, every object is schema-valid and each worker admits only the coordinator', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), { minLength: 1, maxLength: 4 }), fc.boolean(), (names, selfSigned) => {
      const workers = names.filter((n) => n !== 'coordinator' && n !== 'mtls');
      fc.pre(workers.length > 0);
      const chart = Testing.chart();
      new AgentCluster(chart, 'c', {
        upstream: UPSTREAM,
        topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: workers.map((name) => ({ name })) }),
        mtls: selfSigned ? AgentMtls.selfSigned() : AgentMtls.certManager({ issuerName: 'ca' }),
      });
      const objs = Testing.synth(chart) as K8sObject[];
      for (const w of workers) {
        const config = configOf(objs, w);
        expect(config.tls.allowedCallers).toEqual(['coordinator']);
        expect(agentConfigErrors(config)).toEqual([]);
      }
      expect(configOf(objs, 'coordinator').tls.allowedCallers).toEqual([]);
      expect(() => validateAny(objs)).not.toThrow();
    }),
    { numRuns: 8 },
  );
});
