import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { KvLedger } from '../../src/budget/kv-ledger';
import { keyDigest } from '../../src/http/auth';
import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { useNatsServer } from '../support/nats';
import { expectExactlyOnce, JobResult, synthesizedManifests } from '../support/cluster';

// API keys and budgets end to end through `local` mode: the synthesized
// hub-and-spoke (entry with API keys on, as the constructs default to it),
// three replicas of the worker the tasks name, and a real nats-server whose
// JetStream KV bucket holds the budgets every replica reserves against.

const API_KEY = 'sk-upstream-e2e-123456';
const KEY_A = 'sk-tenant-a-e2e-0123456789';
const KEY_B = 'sk-tenant-b-e2e-9876543210';
const TENANT_B_DAILY = 0.02;
const BUCKET = 'tenants-e2e';

const nats = useNatsServer();
let mock: MockUpstream;
let cluster: LocalCluster;
let logs = '';
const restore: Array<() => void> = [];

/** The synthesized manifests with every role's config pointed at the test's NATS (what the job store construct renders). */
function withJobStore(file: string, natsUrl: string): string {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as { kind?: string; data?: Record<string, string> });
  for (const d of docs) {
    if (d?.kind !== 'ConfigMap' || !d.data?.['agent-config.json']) continue;
    const config = JSON.parse(d.data['agent-config.json']) as Record<string, unknown>;
    config.jobStore = { url: natsUrl, stream: 'tenants-e2e-jobs', consumer: 'runners', bucket: BUCKET, replicas: 1 };
    d.data['agent-config.json'] = JSON.stringify(config);
  }
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'tenants-e2e-')), 'hub-and-spoke.k8s.yaml');
  writeFileSync(out, docs.map((d) => stringify(d)).join('---\n'));
  return out;
}

beforeAll(async () => {
  // every line the agents log comes through our stderr: kept to prove no key is in it
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    void rest;
    logs += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  restore.push(() => (process.stderr.write = write));

  mock = await startMockUpstream({ apiKey: API_KEY });
  const manifests = withJobStore(synthesizedManifests({ fanOutConcurrency: 64 })['hub-and-spoke'], nats.url);
  const keysFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'keys-')), 'keys.json');
  writeFileSync(
    keysFile,
    JSON.stringify([
      { tenant: 'team-a', key_sha256: keyDigest(KEY_A) },
      { tenant: 'team-b', key_sha256: keyDigest(KEY_B), daily_budget_usd: TENANT_B_DAILY },
    ]),
  );
  cluster = await startLocalCluster({
    manifests,
    upstreamUrl: mock.url,
    apiKey: API_KEY,
    apiKeysFile: keysFile,
    natsUrl: nats.url,
    roleReplicas: { 'task-executor-a': 3 },
    env: { LOG_LEVEL: 'debug' },
    readyTimeoutMs: 120_000,
  });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await mock?.close();
  for (const r of restore) r();
});

interface Answer {
  job_id: string;
  results: JobResult[];
  budgets?: Array<{ budget: string; limit_usd: number; spent_usd: number; scope: string; tenant?: string }>;
  error?: { code?: string; message: string };
}
async function post(body: unknown, key?: string): Promise<{ status: number; headers: Headers; body: Answer }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', connection: 'close' };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${cluster.entryUrl}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(body) });
  const answer = (await res.json()) as Answer;
  logs += JSON.stringify(answer);
  return { status: res.status, headers: res.headers, body: answer };
}
const tasks = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ id: `${tag}${i}`, prompt: `${tag} task number ${i} for the budget`, role: 'task-executor-a', max_tokens: 16 }));

test('without a key, with a malformed or an unknown one: 401 naming the scheme; probes stay open', async () => {
  expect((await post({ tasks: tasks(1, 'x') })).status).toBe(401);
  expect((await post({ tasks: tasks(1, 'x') }, 'sk-not-a-tenant-key-42')).status).toBe(401);
  const res = await fetch(`${cluster.entryUrl}/v1/jobs`, { method: 'POST', headers: { authorization: `Token ${KEY_A}` }, body: '{}' });
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  expect((await fetch(`${cluster.entryUrl}/readyz`)).status).toBe(200);
});

test('a job budget stops a 1,000-task job at concurrency 64 across 3 replicas: settled spend within the budget, on the shared ledger', async () => {
  const budget = 0.05;
  const sent = tasks(1000, 'big');
  const r = await post({ tasks: sent, budget_usd: budget }, KEY_A);
  expect(r.status).toBe(200);
  expectExactlyOnce(sent, r.body.results);
  const ok = r.body.results.filter((x) => x.ok);
  const refused = r.body.results.filter((x) => x.error?.code === 'budget_exceeded');
  expect(ok.length).toBeGreaterThan(0);
  expect(refused.length).toBeGreaterThan(0);
  expect(ok.length + refused.length).toBe(1000);
  expect(refused[0].error!.message).toMatch(/^job budget_usd 0\.05 would be exceeded/);
  // the calls were spread over the three replicas, each reserving against the same budget
  expect(new Set(ok.map((x) => x.agent_id)).size).toBe(3);
  const spent = r.body.results.reduce((s, x) => s + x.cost_usd, 0);
  expect(spent).toBeLessThanOrEqual(budget);
  expect(r.body.budgets?.[0]).toMatchObject({ budget: 'job', limit_usd: budget, scope: 'shared' });
  // the ledger agrees: everything settled, nothing left held, within the limit
  const ledger = await KvLedger.open({ url: nats.url, stream: 's', consumer: 'c', bucket: BUCKET, replicas: 1 });
  try {
    const state = await ledger.read(`budget.job.${r.body.job_id}`);
    expect(state.reservedNano).toBe(0);
    expect(state.spentNano).toBeLessThanOrEqual(budget * 1e9);
    expect(state.spentNano / 1e9).toBeCloseTo(spent, 6);
  } finally {
    await ledger.close();
  }
});

test("a tenant's daily budget holds across two jobs on three replicas; then its jobs are 429 naming it", async () => {
  // about 0.0001 USD a task: the first job fits, the second runs into the day's limit
  const one = await post({ tasks: tasks(50, 'b1') }, KEY_B);
  const two = await post({ tasks: tasks(400, 'b2') }, KEY_B);
  expect([one.status, two.status]).toEqual([200, 200]);
  expect(one.body.results.every((x) => x.ok)).toBe(true);
  const all = [...one.body.results, ...two.body.results];
  expect(all.reduce((s, x) => s + x.cost_usd, 0)).toBeLessThanOrEqual(TENANT_B_DAILY);
  expect(all.some((x) => x.error?.code === 'budget_exceeded' && x.error.message.startsWith(`tenant 'team-b' daily budget of ${TENANT_B_DAILY} USD`))).toBe(true);
  expect(two.body.budgets?.find((b) => b.budget === 'tenant_daily')).toMatchObject({ tenant: 'team-b', limit_usd: TENANT_B_DAILY, scope: 'shared' });
  let refused;
  for (let i = 0; i < 20 && !refused; i++) {
    const r = await post({ tasks: tasks(1, `b3-${i}-`) }, KEY_B);
    if (r.status !== 200) refused = r;
  }
  expect(refused?.status).toBe(429);
  expect(refused?.body.error?.code).toBe('budget_exceeded');
  expect(refused?.body.error?.message).toMatch(/^tenant 'team-b' daily budget of 0\.02 USD \(\d{4}-\d\d-\d\d UTC\) is spent/);
  // team-a has no daily budget: unaffected
  const a = await post({ tasks: tasks(3, 'a') }, KEY_A);
  expect(a.body.results.every((x) => x.ok)).toBe(true);
});

test("another tenant's job is a 404 on every replica-facing route; its owner reads it with its spend", async () => {
  const res = await fetch(`${cluster.entryUrl}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, prefer: 'respond-async' }, body: JSON.stringify({ tasks: tasks(3, 'iso'), budget_usd: 1 }) });
  expect(res.status).toBe(202);
  const { job_id: id } = (await res.json()) as { job_id: string };
  for (const [method, suffix] of [['GET', ''], ['GET', '/events'], ['DELETE', '']]) {
    const r = await fetch(`${cluster.entryUrl}/v1/jobs/${id}${suffix}`, { method, headers: { authorization: `Bearer ${KEY_B}` } });
    expect(r.status).toBe(404);
    logs += await r.text();
  }
  let view: { status: string; budgets?: Answer['budgets'] } = { status: 'queued' };
  for (let i = 0; i < 200 && !['succeeded', 'failed'].includes(view.status); i++) {
    const r = await fetch(`${cluster.entryUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${KEY_A}` } });
    view = (await r.json()) as typeof view;
    if (!['succeeded', 'failed'].includes(view.status)) await new Promise((r2) => setTimeout(r2, 50));
  }
  expect(view.status).toBe('succeeded');
  expect(view.budgets?.[0]).toMatchObject({ budget: 'job', limit_usd: 1, scope: 'shared' });
});

test('no key, digest or upstream key appears in any agent log line or answer; metrics name tenants only', async () => {
  let metrics = '';
  for (const agent of cluster.agents) metrics += await (await fetch(`${agent.httpUrl}/metrics`)).text();
  expect(metrics).toMatch(/agent_tenant_spend_usd_total\{tenant="team-b",role="task-executor-a"\} /);
  expect(logs.length).toBeGreaterThan(1000);
  for (const secret of [KEY_A, KEY_B, keyDigest(KEY_A), keyDigest(KEY_B), 'sk-not-a-tenant-key-42', API_KEY]) {
    expect(logs).not.toContain(secret);
    expect(metrics).not.toContain(secret);
  }
});
