import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AgentHandle, startAgent } from '../src/agent';
import { AgentConfig, ConfigError, PeerEntry } from '../src/config';
import { AgentTls, roleOf } from '../src/grpc/mtls';
import { agentService, AgentServiceClient, ExecuteResponse, newClient } from '../src/grpc/service';
import { LocalCa, LocalTlsFiles } from '../src/local/tls';
import { RuntimeMetrics } from '../src/metrics';
import { startMockUpstream } from '../src/mock/upstream';
import { silentLogger, workerConfig } from './support/fixtures';

// mTLS between agents (grpc/mtls.ts) on a bare gRPC server with the real
// AgentService definition: who gets through the per-edge rule, who is
// refused at the handshake, what is counted, and rotation of the files.

const SERVICE_HOST = 'worker-grpc.test.svc.cluster.local';
const WORKER_PEER: PeerEntry = { role: 'worker', kind: 'worker', address: `${SERVICE_HOST}:50051`, maxInFlightTasks: 8 };

let dir: string;
let ca: LocalCa;
const opened: Array<{ close(): void }> = [];

function filesFor(role: string, authority = ca, cluster = 'test'): LocalTlsFiles {
  return authority.writeRole(path.join(dir, `${cluster}-${role}-${Math.random().toString(36).slice(2)}`), { cluster, namespace: 'test', role });
}

function tlsConfig(role: string, allowedCallers: string[], files = filesFor(role)): AgentConfig {
  return workerConfig({ role, tls: { ...files, allowedCallers } });
}

async function load(config: AgentConfig, metrics = new RuntimeMetrics({ role: config.role }), refreshMs?: number): Promise<AgentTls> {
  const t = await AgentTls.load(config, { metrics, logger: silentLogger, refreshMs });
  opened.push(t);
  return t;
}

/** A server of the real AgentService whose Execute answers no results. */
async function serve(t: AgentTls): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server({ interceptors: [t.authorize] });
  server.addService(agentService().service, {
    Execute: (_call: grpc.ServerUnaryCall<unknown, ExecuteResponse>, cb: grpc.sendUnaryData<ExecuteResponse>) => cb(null, { results: [] }),
    Session: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', t.serverCredentials, (e, p) => (e ? reject(e) : resolve(p))));
  opened.push({ close: () => server.forceShutdown() });
  return { port, server };
}

function execute(client: AgentServiceClient): Promise<{ code: grpc.status; details: string }> {
  opened.push(client);
  return new Promise((resolve) =>
    client.Execute({ job_id: 'j', tasks: [], deadline_unix_ms: Date.now() + 5000, hop: 1 }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    ),
  );
}

/** A client that presents `files` and trusts `caPem`, without checking who the server is. */
function rawClient(port: number, files: LocalTlsFiles, caPem = readFileSync(files.caFile), serviceHost = SERVICE_HOST): AgentServiceClient {
  const creds = grpc.credentials.createSsl(caPem, readFileSync(files.keyFile), readFileSync(files.certFile));
  return newClient(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': serviceHost });
}

async function refused(metrics: RuntimeMetrics, reason: string): Promise<number> {
  const line = (await metrics.text()).split('\n').find((l) => l.startsWith('agent_grpc_refused_total{') && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mtls-test-'));
  ca = new LocalCa();
});

afterEach(() => {
  for (const o of opened.splice(0)) o.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('roleOf', () => {
  test('reads the one role URI SAN of the trust domain', () => {
    expect(roleOf('DNS:w-grpc.ns.svc.cluster.local, URI:spiffe://c.ns/role/w, IP Address:127.0.0.1', 'c.ns')).toEqual({ role: 'w' });
  });
  test('another trust domain, no URI, two roles or a quoted entry name no role', () => {
    expect(roleOf('URI:spiffe://other.ns/role/w', 'c.ns')).toHaveProperty('problem', expect.stringMatching(/names no role of spiffe:\/\/c\.ns/));
    expect(roleOf(undefined, 'c.ns')).toHaveProperty('problem');
    expect(roleOf('URI:spiffe://c.ns/role/a, URI:spiffe://c.ns/role/b', 'c.ns')).toHaveProperty('problem', expect.stringMatching(/names 2 roles \(a, b\)/));
    expect(roleOf('"URI:spiffe://c.ns/role/a, b"', 'c.ns')).toHaveProperty('problem');
  });
});

describe('a TLS server authorized per edge', () => {
  test('an edge of the graph is accepted over mTLS, with the caller checking the callee is the role it dials', async () => {
    const metrics = new RuntimeMetrics({ role: 'worker' });
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor']), metrics));
    const caller = await load(tlsConfig('supervisor', []));
    expect(await execute(caller.dial(`127.0.0.1:${port}`, WORKER_PEER))).toEqual({ code: grpc.status.OK, details: '' });
    expect(await refused(metrics, 'caller_not_allowed')).toBe(0);
  });

  test('a caller outside the graph is refused with PERMISSION_DENIED naming its role, and counted', async () => {
    const metrics = new RuntimeMetrics({ role: 'worker' });
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor']), metrics));
    const rogue = await load(tlsConfig('rogue', []));
    const r = await execute(rogue.dial(`127.0.0.1:${port}`, WORKER_PEER));
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.details).toBe("role 'rogue' may not call role 'worker': the topology has no edge from 'rogue' to 'worker' (allowed callers: supervisor)");
    // the Session stream is refused the same way
    const session = await new Promise<grpc.status>((resolve) => {
      const client = rogue.dial(`127.0.0.1:${port}`, WORKER_PEER);
      opened.push(client);
      const call = client.Session(new grpc.Metadata(), {});
      call.on('error', (e: grpc.ServiceError) => resolve(e.code));
      call.on('data', () => undefined);
    });
    expect(session).toBe(grpc.status.PERMISSION_DENIED);
    expect(await refused(metrics, 'caller_not_allowed')).toBe(2);
  });

  test('in a mesh (peersMayCall) the roles of peers are admitted, others refused', async () => {
    const files = filesFor('peer-a');
    const config = workerConfig({ role: 'peer-a', kind: 'peer', peers: [{ ...WORKER_PEER, role: 'peer-b', kind: 'peer' }], tls: { ...files, allowedCallers: [], peersMayCall: true } });
    const { port } = await serve(await load(config));
    const asPeer = (role: string) => execute(rawClient(port, filesFor(role), undefined, 'peer-a-grpc.test.svc.cluster.local'));
    expect((await asPeer('peer-b')).code).toBe(grpc.status.OK);
    expect(await asPeer('peer-c')).toEqual({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/^role 'peer-c' may not call role 'peer-a'/) });
  });

  test("a certificate of the CA naming no role of this cluster is refused as no_role", async () => {
    const metrics = new RuntimeMetrics({ role: 'worker' });
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor']), metrics));
    // signed by the same CA, but for a cluster of another name: another trust domain
    const r = await execute(rawClient(port, filesFor('supervisor', ca, 'elsewhere')));
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.details).toMatch(/names no role of spiffe:\/\/test\.test/);
    expect(await refused(metrics, 'no_role')).toBe(1);
  });

  test('a plain-text client is refused, and so are clients without a certificate or with another CA; the server keeps serving', async () => {
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor'])));
    const plain = await execute(newClient(`127.0.0.1:${port}`));
    expect(plain.code).toBe(grpc.status.UNAVAILABLE);
    const supervisor = filesFor('supervisor');
    const noCert = await execute(newClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(readFileSync(supervisor.caFile)), { 'grpc.ssl_target_name_override': SERVICE_HOST }));
    expect(noCert.code).toBe(grpc.status.UNAVAILABLE);
    const otherCa = new LocalCa('another CA');
    const foreign = filesFor('supervisor', otherCa);
    // trusts our CA (so the server is accepted) but presents a certificate another CA signed
    expect((await execute(rawClient(port, foreign, readFileSync(supervisor.caFile)))).code).toBe(grpc.status.UNAVAILABLE);
    expect((await execute(rawClient(port, supervisor))).code).toBe(grpc.status.OK);
  });

  test('a caller refuses a callee whose certificate names another role', async () => {
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor'])));
    const caller = await load(tlsConfig('supervisor', []));
    // the address resolves to a pod of 'worker', but the config says the peer is 'reviewer'
    const r = await execute(caller.dial(`127.0.0.1:${port}`, { ...WORKER_PEER, role: 'reviewer' }));
    expect(r).toEqual({ code: grpc.status.UNAVAILABLE, details: expect.stringContaining(`callee at ${SERVICE_HOST} is not role 'reviewer' (spiffe://test.test/role/reviewer): it names role 'worker'`) });
  });

  test('rotated files are served to new connections without a restart', async () => {
    const files = filesFor('worker');
    const { port } = await serve(await load(tlsConfig('worker', ['supervisor'], files), undefined, 100));
    const client = filesFor('supervisor');
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(client.caFile), cert: readFileSync(client.certFile), key: readFileSync(client.keyFile), servername: SERVICE_HOST, ALPNProtocols: ['h2'] }, () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        });
        s.once('error', reject);
      });
    const before = await servedSerial();
    expect(before).toBe(new X509Certificate(readFileSync(files.certFile)).serialNumber);
    ca.writeRole(path.dirname(files.certFile), { cluster: 'test', namespace: 'test', role: 'worker' }); // what cert-manager's renewal does
    const renewed = new X509Certificate(readFileSync(files.certFile)).serialNumber as string;
    let seen = before;
    for (let i = 0; i < 100 && seen !== renewed; i++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = await servedSerial();
    }
    expect(seen).toBe(renewed);
  });
});

describe('files checked at boot', () => {
  test('a key that is not the certificate\'s, a certificate of another role, a CA that did not sign it: each names its field', async () => {
    const worker = filesFor('worker');
    const supervisor = filesFor('supervisor');
    const other = filesFor('worker', new LocalCa('another CA'));
    const attempt = (files: LocalTlsFiles) => load(workerConfig({ role: 'worker', tls: { ...files, allowedCallers: [] } }));
    await expect(attempt({ ...worker, keyFile: supervisor.keyFile })).rejects.toThrow(new ConfigError('tls.keyFile', `'${supervisor.keyFile}' is not the key of the certificate in '${worker.certFile}'`));
    await expect(attempt(supervisor)).rejects.toThrow(/^tls\.certFile: names role 'supervisor', not this agent's role 'worker'$/);
    await expect(attempt({ ...worker, caFile: other.caFile })).rejects.toThrow(/^tls\.caFile: no certificate in '.*' signed '.*'/);
    await expect(attempt({ ...worker, certFile: path.join(dir, 'missing.crt') })).rejects.toThrow(/^tls\.certFile: cannot read '.*missing\.crt'/);
  });
});

describe('agents over mTLS (startAgent)', () => {
  test("a supervisor with an edge gets its tasks answered; one without is refused at once with the callee's reason, not retried until the deadline", async () => {
    const KEY = 'sk-test-0123456789';
    const mock = await startMockUpstream({ apiKey: KEY });
    const agents: AgentHandle[] = [];
    try {
      const boot = (config: AgentConfig, peerEndpoints: Record<string, string[]> = {}) =>
        startAgent(config, { agentId: `${config.role}-0`, role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: mock.url, upstreamApiKey: KEY, peerEndpoints, logLevel: 'silent' }, { logger: silentLogger }).then((a) => {
          agents.push(a);
          return a;
        });
      const worker = await boot(tlsConfig('worker', ['sup-a']));
      const endpoints = { [SERVICE_HOST]: [`127.0.0.1:${worker.grpcPort}`] };
      const supervisor = (role: string) => boot(workerConfig({ role, kind: 'supervisor', peers: [WORKER_PEER], tls: { ...filesFor(role), allowedCallers: [] } }), endpoints);
      const job = async (a: AgentHandle) => {
        const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tasks: [{ id: 't', prompt: 'hello' }], deadline_ms: 20000 }) });
        return ((await res.json()) as { results: Array<{ ok: boolean; error: { code: string; message: string } | null; latency_ms: number }> }).results[0];
      };
      expect(await job(await supervisor('sup-a'))).toMatchObject({ ok: true, error: null });
      const denied = await job(await supervisor('sup-b'));
      expect(denied).toMatchObject({ ok: false, error: { code: 'unavailable', message: expect.stringContaining("PERMISSION_DENIED role 'sup-b' may not call role 'worker'") } });
      // ended by the refusal itself (code unavailable), not by the deadline passing (deadline_exceeded)
      expect(denied.error!.message).toMatch(/^refused by the callee: worker /);
      expect(await refused(worker.metrics, 'caller_not_allowed')).toBe(1);
    } finally {
      for (const a of agents) await a.shutdown();
      await mock.close();
    }
  });
});
