import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AgentServiceClient, newClient } from '../../src/grpc/service';
import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { localTls, LocalTlsFiles } from '../../src/local/tls';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { expectExactlyOnce, postJob, synthesizedManifests, tasks } from '../support/cluster';

// Local mode runs every agent-to-agent call over mTLS (a throwaway CA, one
// certificate per role, allowedCallers from the manifests' edges): a job
// crosses coordinator → supervisor → worker over TLS, while a role with no
// edge to a worker, or a plain-text client, is refused by that worker.

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let cluster: LocalCluster;
const clients: AgentServiceClient[] = [];

beforeAll(async () => {
  const manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 5 });
  cluster = await startLocalCluster({ manifests: manifests.hierarchical, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  await mock?.close();
});

function execute(client: AgentServiceClient): Promise<{ code: grpc.status; details: string }> {
  clients.push(client);
  const task = { id: 'x', messages: [{ role: 'user', content: 'hi' }], role: '', model: '' };
  return new Promise((resolve) =>
    client.Execute({ job_id: 'j', tasks: [task], deadline_unix_ms: Date.now() + 10000, hop: 1 }, new grpc.Metadata(), { deadline: Date.now() + 10000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    ),
  );
}

/** A client of one agent presenting `files` (a role's certificate from local mode's CA). */
function clientAs(files: LocalTlsFiles, address: string, serviceHost: string): AgentServiceClient {
  const creds = grpc.credentials.createSsl(readFileSync(files.caFile), readFileSync(files.keyFile), readFileSync(files.certFile));
  return newClient(address, creds, { 'grpc.ssl_target_name_override': serviceHost });
}

async function refusedCount(httpUrl: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('agent_grpc_refused_total{') && l.includes('reason="caller_not_allowed"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a job crosses every hop of the hierarchy over mTLS', async () => {
  const sent = tasks(12);
  const res = await postJob(cluster.entryUrl, { tasks: sent, deadline_ms: 20000 });
  expect(res.status).toBe(200);
  expectExactlyOnce(sent, res.body.results);
  expect(res.body.success_rate).toBe(1);
  // every config carries tls, with allowedCallers = the roles that list it as a peer
  // each process's config is written to <temp dir>/<role>-<replica>/, the role's certificate to <temp dir>/<role>/tls/
  const config = (role: string) => JSON.parse(readFileSync(path.join(`${path.dirname(path.dirname(cluster.tlsFiles(role)!.certFile))}-0`, 'agent-config.json'), 'utf8'));
  expect(config('task-executor-a').tls.allowedCallers).toEqual(['execution-supervisor']);
  expect(config('execution-supervisor').tls.allowedCallers).toEqual(['coordinator']);
  expect(config('coordinator').tls.allowedCallers).toEqual([]);
});

test('the coordinator, which has no edge to a worker, is refused by it with PERMISSION_DENIED, and counted', async () => {
  const worker = cluster.agent('task-executor-a');
  const before = await refusedCount(worker.httpUrl);
  const r = await execute(clientAs(cluster.tlsFiles('coordinator')!, worker.grpcAddress, `task-executor-a-grpc.${cluster.roles[0].namespace}.svc.cluster.local`));
  expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
  expect(r.details).toMatch(/^role 'coordinator' may not call role 'task-executor-a': the topology has no edge from 'coordinator' to 'task-executor-a' \(allowed callers: execution-supervisor\)$/);
  expect(await refusedCount(worker.httpUrl)).toBe(before + 1);
  // the worker's own caller gets through on the same port
  const ok = await execute(clientAs(cluster.tlsFiles('execution-supervisor')!, worker.grpcAddress, `task-executor-a-grpc.${cluster.roles[0].namespace}.svc.cluster.local`));
  expect(ok.code).toBe(grpc.status.OK);
});

test('a plain-text client is refused by a TLS agent, which keeps serving', async () => {
  const worker = cluster.agent('task-executor-a');
  expect((await execute(newClient(worker.grpcAddress))).code).toBe(grpc.status.UNAVAILABLE);
  const res = await postJob(cluster.entryUrl, { tasks: tasks(3), deadline_ms: 20000 });
  expect(res.body.success_rate).toBe(1);
});

test('with mTLS off, local mode drops a tls block the manifests carry', () => {
  const off = localTls('/nonexistent', [], false);
  const json = JSON.stringify({ role: 'w', tls: { certFile: '/etc/agent-tls/tls.crt', keyFile: 'k', caFile: 'c', allowedCallers: ['a'] } });
  expect(JSON.parse(off.configure('w', json))).toEqual({ role: 'w' });
});
