import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { AgentHandle, startAgent } from '../src/agent';
import { Budgets, worstCaseNano } from '../src/budget/budgets';
import { BudgetLine, isSpent, MemoryLedger } from '../src/budget/ledger';
import { AgentConfig } from '../src/config';
import { agentService, fromWireTask, toWireTask } from '../src/grpc/service';
import { InferenceExecutor } from '../src/inference/executor';
import { RuntimeMetrics } from '../src/metrics';
import { UpstreamClient } from '../src/upstream/client';
import { keyDigest } from '../src/http/auth';
import { parseJob } from '../src/http/jobs';
import { MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { silentLogger, workerConfig } from './support/fixtures';

const line = (limitNano: number, key = 'budget.job.j'): BudgetLine => ({ key, kind: 'job', limitNano, label: 'job budget_usd test' });

describe('MemoryLedger', () => {
  test('a reservation that does not fit is refused and holds nothing on any line', async () => {
    const l = new MemoryLedger();
    const a = line(100, 'a');
    const b = line(50, 'b');
    expect((await l.reserve([a, b], 40)).ok).toBe(true);
    const r = await l.reserve([a, b], 20);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.line.key).toBe('b');
    expect(await l.read('a')).toEqual({ spentNano: 0, reservedNano: 40 });
    expect(await l.read('b')).toMatchObject({ spentNano: 0, reservedNano: 40, refusedNano: 20 });
  });

  test('settling replaces the held worst case with the real cost', async () => {
    const l = new MemoryLedger();
    const r = await l.reserve([line(100)], 60);
    if (!r.ok) throw new Error('refused');
    await l.settle(r.reservation, 15);
    expect(await l.read('budget.job.j')).toEqual({ spentNano: 15, reservedNano: 0 });
    // the room the settle gave back is usable again
    expect((await l.reserve([line(100)], 85)).ok).toBe(true);
  });

  test('property: whatever the interleaving, spent + held never passes the limit and settled never does', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 10_000 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.double({ min: 0, max: 1, noNaN: true })), { maxLength: 60 }), async (limit, calls) => {
        const l = new MemoryLedger();
        const ln = line(limit);
        await Promise.all(
          calls.map(async ([worst, used]) => {
            const r = await l.reserve([ln], worst);
            const s = await l.read(ln.key);
            expect(s.spentNano + s.reservedNano).toBeLessThanOrEqual(limit);
            if (r.ok) await l.settle(r.reservation, Math.floor(worst * used));
          }),
        );
        expect((await l.read(ln.key)).spentNano).toBeLessThanOrEqual(limit);
      }),
    );
  });

  test('a budget counts as spent when less is left than its last refusal needed', async () => {
    const l = new MemoryLedger();
    const ln = line(100);
    const r = await l.reserve([ln], 70);
    if (!r.ok) throw new Error('refused');
    await l.settle(r.reservation, 70);
    expect(isSpent(ln, await l.read(ln.key))).toBe(false);
    expect((await l.reserve([ln], 40)).ok).toBe(false);
    expect(isSpent(ln, await l.read(ln.key))).toBe(true);
  });
});

test('worst case: prompt tokens at the input price plus max_tokens at the output price, in nano-USD', () => {
  // 1,000 prompt tokens at 2 USD/MTok + 500 completion tokens at 8 USD/MTok = 0.002 + 0.004 USD
  expect(worstCaseNano({ inputUsdPerMTok: 2, outputUsdPerMTok: 8 }, 1000, 500)).toBe(6_000_000);
});

test('Budgets.lines: the job, the tenant per UTC day, the cluster per UTC hour', () => {
  const at = Date.parse('2026-11-27T10:31:00Z');
  const b = new Budgets({ ledger: new MemoryLedger(), clusterHourlyUsd: 10, now: () => at });
  expect(b.lines({ jobId: 'j1', jobBudgetUsd: 0.5, tenant: 'team-a', tenantDailyBudgetUsd: 25 }).map((l) => [l.key, l.limitNano, l.label])).toEqual([
    ['budget.job.j1', 500_000_000, 'job budget_usd 0.5'],
    ['budget.tenant.team-a.2026-11-27', 25_000_000_000, "tenant 'team-a' daily budget of 25 USD (2026-11-27 UTC)"],
    ['budget.cluster.2026-11-27T10', 10_000_000_000, 'cluster hourly budget of 10 USD (2026-11-27T10:00 UTC)'],
  ]);
  // a tenant without a daily budget and a job without budget_usd add no line
  expect(b.lines({ jobId: 'j1', tenant: 'team-b' }).map((l) => l.kind)).toEqual(['cluster_hourly']);
});

describe('budget_usd in the job body', () => {
  const config = workerConfig();
  test('tasks and steps jobs carry it', () => {
    expect(parseJob(JSON.stringify({ tasks: [{ prompt: 'a' }], budget_usd: 0.25 }), config).budgetUsd).toBe(0.25);
    expect(parseJob(JSON.stringify({ steps: [{ id: 'a', prompt: 'a' }], budget_usd: 1 }), config).budgetUsd).toBe(1);
    expect(parseJob(JSON.stringify({ tasks: [{ prompt: 'a' }] }), config).budgetUsd).toBeUndefined();
  });
  test.each([0, -1, '1', null])('budget_usd %j is a 400 naming the field', (v) => {
    expect(() => parseJob(JSON.stringify({ tasks: [{ prompt: 'a' }], budget_usd: v }), config)).toThrow(/^budget_usd: /);
    expect(() => parseJob(JSON.stringify({ steps: [{ id: 'a', prompt: 'a' }], budget_usd: v }), config)).toThrow(/^budget_usd: /);
  });
});

// ---- through a running agent (a worker serves the job API too), per-pod ledger ----

const KEY_A = 'sk-tenant-a-1111111111';
const KEY_B = 'sk-tenant-b-2222222222';
let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({});
});
afterAll(() => mock.close());

async function bootAgent(patch: Partial<AgentConfig>, keys?: unknown): Promise<{ agent: AgentHandle; url: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'budget-agent-'));
  const configFile = path.join(dir, 'agent-config.json');
  if (keys) writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(keys));
  const config = workerConfig({ ...(keys ? { auth: { mode: 'api-keys', keysFile: 'keys.json' } } : {}), ...patch });
  const agent = await startAgent(config, { agentId: 'w-0', role: config.role, configFile, httpPort: 0, grpcPort: 0, upstreamBaseUrl: mock.url, upstreamApiKey: 'sk-test-0123456789', peerEndpoints: {}, logLevel: 'silent' }, { logger: silentLogger });
  return { agent, url: `http://127.0.0.1:${agent.httpPort}` };
}

interface Answer {
  results: Array<{ ok: boolean; cost_usd: number; attempts: number; error: { code: string; message: string } | null }>;
  budgets?: Array<{ budget: string; limit_usd: number; spent_usd: number; remaining_usd: number; scope: string; tenant?: string }>;
  error?: { code?: string; message: string };
}
async function post(url: string, body: unknown, key?: string): Promise<{ status: number; headers: Headers; body: Answer }> {
  const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Answer };
}
/** One-task jobs until one is answered other than 200 (each 200 spends or is refused: at most a few). */
async function untilRefused(url: string, tag: string, key?: string) {
  for (let i = 0; i < 20; i++) {
    const r = await post(url, { tasks: tasks(1, `${tag}-${i}`) }, key);
    if (r.status !== 200) return r;
    expect(r.body.results[0].ok || r.body.results[0].error?.code === 'budget_exceeded').toBe(true);
  }
  throw new Error('20 one-task jobs were all accepted');
}
const tasks = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ prompt: `${tag} task ${i} with a few words`, max_tokens: 16 }));

test('a job budget stops a job: the settled spend stays within it, refused tasks end budget_exceeded without an upstream call', async () => {
  const { agent, url } = await bootAgent({});
  try {
    const before = (await mock.stats()).calls;
    const budget = 0.01;
    const r = await post(url, { tasks: tasks(200, 'jb'), budget_usd: budget });
    expect(r.status).toBe(200);
    const ok = r.body.results.filter((x) => x.ok);
    const refused = r.body.results.filter((x) => x.error?.code === 'budget_exceeded');
    expect(ok.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok.length + refused.length).toBe(200);
    const spent = r.body.results.reduce((s, x) => s + x.cost_usd, 0);
    expect(spent).toBeLessThanOrEqual(budget);
    expect(refused[0].error!.message).toMatch(/^job budget_usd 0\.01 would be exceeded/);
    expect(refused.every((x) => x.attempts === 0 && x.cost_usd === 0)).toBe(true);
    // no call was made for a refused task
    expect((await mock.stats()).calls - before).toBe(ok.length);
    expect(r.body.budgets).toEqual([{ budget: 'job', limit_usd: budget, spent_usd: expect.any(Number), remaining_usd: expect.any(Number), scope: 'per-pod' }]);
    expect(r.body.budgets![0].spent_usd).toBeCloseTo(spent, 9);
    expect(await agent.metrics.text()).toMatch(/agent_budget_refusals_total\{budget="job",role="task-executor-a"\} \d+/);
  } finally {
    await agent.shutdown();
  }
});

test('the cluster hourly budget holds across jobs; /readyz says budgets are per pod without a job store', async () => {
  const { agent, url } = await bootAgent({ budgets: { clusterHourlyUsd: 0.004 } });
  try {
    const first = await post(url, { tasks: tasks(40, 'c1') });
    const second = await post(url, { tasks: tasks(40, 'c2') });
    const all = [...first.body.results, ...second.body.results];
    const spent = all.reduce((s, x) => s + x.cost_usd, 0);
    expect(spent).toBeLessThanOrEqual(0.004);
    expect(second.body.results.some((x) => x.error?.code === 'budget_exceeded' && /^cluster hourly budget of 0\.004 USD/.test(x.error.message))).toBe(true);
    expect(second.body.budgets?.find((b) => b.budget === 'cluster_hourly')).toMatchObject({ limit_usd: 0.004, scope: 'per-pod' });
    // what is left may still take a call or two; once less is left than a refused call needed, jobs are 429
    const third = await untilRefused(url, 'c3');
    expect(third.status).toBe(429);
    expect(third.body.error).toEqual({ code: 'budget_exceeded', message: expect.stringMatching(/^cluster hourly budget of 0\.004 USD \(.*\) is spent; it renews at /) });
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { budgets: { scope: string; detail: string } };
    expect(ready.budgets.scope).toBe('per-pod');
    expect(ready.budgets.detail).toMatch(/each pod enforces every budget on its own spend/);
  } finally {
    await agent.shutdown();
  }
});

describe('API keys on the job API', () => {
  let agent: AgentHandle;
  let url: string;
  let logs = '';
  beforeAll(async () => {
    ({ agent, url } = await bootAgent({}, [
      { tenant: 'team-a', key_sha256: keyDigest(KEY_A), daily_budget_usd: 0.003 },
      { tenant: 'team-b', key_sha256: keyDigest(KEY_B) },
    ]));
  });
  afterAll(() => agent.shutdown());

  test('no key, a malformed header or an unknown key: 401 with WWW-Authenticate; probes and metrics stay open', async () => {
    for (const headers of [{}, { authorization: KEY_A }, { authorization: 'Bearer sk-not-a-known-key-123' }] as Array<Record<string, string>>) {
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ tasks: tasks(1, 'x') }) });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="agent-runtime"/);
      const body = (await res.json()) as Answer;
      expect(body.error?.code).toBe('unauthorized');
      logs += JSON.stringify(body);
    }
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
  });

  test("a tenant's daily budget holds across two jobs, then its jobs are 429 naming it; another tenant is unaffected", async () => {
    const one = await post(url, { tasks: tasks(20, 'ta1') }, KEY_A);
    const two = await post(url, { tasks: tasks(20, 'ta2') }, KEY_A);
    expect(one.status).toBe(200);
    expect(two.status).toBe(200);
    const spent = [...one.body.results, ...two.body.results].reduce((s, x) => s + x.cost_usd, 0);
    expect(spent).toBeLessThanOrEqual(0.003);
    expect(two.body.results.some((x) => x.error?.code === 'budget_exceeded' && x.error.message.startsWith("tenant 'team-a' daily budget of 0.003 USD"))).toBe(true);
    expect(two.body.budgets?.find((b) => b.budget === 'tenant_daily')).toMatchObject({ tenant: 'team-a', limit_usd: 0.003 });
    const three = await untilRefused(url, 'ta3', KEY_A);
    expect(three.status).toBe(429);
    expect(three.body.error?.message).toMatch(/^tenant 'team-a' daily budget of 0\.003 USD \(\d{4}-\d\d-\d\d UTC\) is spent; it renews at \d{4}-\d\d-\d\dT00:00:00\.000Z$/);
    const other = await post(url, { tasks: tasks(2, 'tb') }, KEY_B);
    expect(other.status).toBe(200);
    expect(other.body.results.every((x) => x.ok)).toBe(true);
    logs += JSON.stringify([one.body, two.body, three.body, other.body]);
  });

  test("a tenant sees, watches and cancels only its own jobs: another tenant's job id is a 404", async () => {
    const asyncPost = async (key: string, body: unknown) => {
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}`, prefer: 'respond-async' }, body: JSON.stringify(body) });
      expect(res.status).toBe(202);
      return ((await res.json()) as { job_id: string }).job_id;
    };
    const id = await asyncPost(KEY_B, { tasks: tasks(2, 'own'), budget_usd: 0.5 });
    const as = (key: string, method = 'GET', suffix = '') => fetch(`${url}/v1/jobs/${id}${suffix}`, { method, headers: { authorization: `Bearer ${key}` } });
    for (const [method, suffix] of [['GET', ''], ['GET', '/events'], ['DELETE', '']]) {
      const other = await as(KEY_A, method, suffix);
      expect(other.status).toBe(404);
      expect(((await other.json()) as Answer).error?.message).toBe(`no job '${id}'`);
    }
    // its owner reads it, with spend against its budget
    let view: { status: string; budget_usd?: number; budgets?: Answer['budgets'] } = { status: 'queued' };
    for (let i = 0; i < 100 && !['succeeded', 'failed'].includes(view.status); i++) {
      const res = await as(KEY_B);
      expect(res.status).toBe(200);
      view = (await res.json()) as typeof view;
      if (!['succeeded', 'failed'].includes(view.status)) await new Promise((r) => setTimeout(r, 50));
    }
    expect(view.status).toBe('succeeded');
    expect(view.budget_usd).toBe(0.5);
    expect(view.budgets?.[0]).toMatchObject({ budget: 'job', limit_usd: 0.5, scope: 'per-pod' });
    expect(view.budgets![0].spent_usd).toBeGreaterThan(0);
    expect((await fetch(`${url}/v1/jobs/${id}`)).status).toBe(401);
  });

  test('metrics carry spend and remaining budget per tenant, and never a key', async () => {
    const text = await agent.metrics.text();
    expect(text).toMatch(/agent_tenant_spend_usd_total\{tenant="team-a",role="task-executor-a"\} 0\.00\d+/);
    expect(text).toMatch(/agent_budget_remaining_usd\{budget="tenant_daily",tenant="team-a",role="task-executor-a"\} \d/);
    expect(text).toMatch(/agent_api_auth_failures_total\{reason="missing",role="task-executor-a"\} 2/);
    for (const secret of [KEY_A, KEY_B, keyDigest(KEY_A), keyDigest(KEY_B), 'sk-not-a-known-key-123']) {
      expect(text).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });
});

describe('the spend scope on the gRPC wire', () => {
  const roundTrip = (task: Parameters<typeof toWireTask>[0]) => {
    const s = agentService().service.Session;
    const back = s.requestDeserialize(s.requestSerialize({ tasks: [toWireTask(task)], hop: 1 })) as { tasks: Parameters<typeof fromWireTask>[0][] };
    return fromWireTask(back.tasks[0]);
  };
  const messages = [{ role: 'user' as const, content: 'x' }];

  test('job, job budget, tenant and daily budget survive a hop; absent ones stay absent', () => {
    expect(roundTrip({ id: 'a', messages, spend: { jobId: 'j-1', jobBudgetUsd: 0.5, tenant: 'team-a', tenantDailyBudgetUsd: 25 } }).spend).toEqual({ jobId: 'j-1', jobBudgetUsd: 0.5, tenant: 'team-a', tenantDailyBudgetUsd: 25 });
    expect(roundTrip({ id: 'a', messages, spend: { jobId: 'j-1', tenant: 'team-b' } }).spend).toEqual({ jobId: 'j-1', tenant: 'team-b' });
    expect(roundTrip({ id: 'a', messages }).spend).toBeUndefined();
  });

  test('an id that could reach another ledger key is refused', () => {
    expect(() => fromWireTask({ id: 'a', messages: [], spend: { job_id: 'x.budget.tenant.other' } })).toThrow(/spend\.job_id must be/);
    expect(() => fromWireTask({ id: 'a', messages: [], spend: { job_id: 'ok', tenant: 'a.b' } })).toThrow(/spend\.tenant must be/);
    expect(() => fromWireTask({ id: 'a', messages: [], spend: { job_id: 'ok', job_budget_usd: -1 } })).toThrow(/spend\.job_budget_usd must be/);
  });
});

test('a ledger that cannot be reached fails closed: the task ends unavailable and no call is made', async () => {
  const broken = new MemoryLedger();
  broken.reserve = () => Promise.reject(new Error('nats: connection closed'));
  let calls = 0;
  const client = {
    chat: () => {
      calls += 1;
      return Promise.reject(new Error('must not be called'));
    },
  };
  const config = workerConfig();
  const executor = new InferenceExecutor({ config, client, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'w-0', budgets: new Budgets({ ledger: broken, clusterHourlyUsd: 5 }) });
  const r = await executor.execute({ id: 't', messages: [{ role: 'user', content: 'hi' }], maxTokens: 8 }, Date.now() + 5000);
  expect(r).toMatchObject({ ok: false, attempts: 0, error: { code: 'unavailable', message: expect.stringMatching(/^the budget ledger cannot be reached, so no upstream call is made: nats: connection closed/) } });
  expect(calls).toBe(0);
});

test('without any budget no ledger is touched', async () => {
  const ledger = new MemoryLedger();
  let touched = 0;
  ledger.reserve = () => {
    touched += 1;
    return Promise.reject(new Error('no'));
  };
  const client = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-test-0123456789' });
  try {
    const executor = new InferenceExecutor({ config: workerConfig(), client, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'w-0', budgets: new Budgets({ ledger }) });
    const r = await executor.execute({ id: 't', messages: [{ role: 'user', content: 'hi' }], spend: { jobId: 'j', tenant: 'team-b' } }, Date.now() + 5000);
    expect(r.ok).toBe(true);
    expect(touched).toBe(0);
  } finally {
    await client.close();
  }
});

test('A2A on the entry: the agent card is public and declares the bearer scheme; JSON-RPC needs a key', async () => {
  const { agent, url } = await bootAgent({ entry: true }, [{ tenant: 'team-a', key_sha256: keyDigest(KEY_A) }]);
  try {
    const card = await fetch(`${url}/.well-known/agent-card.json`);
    expect(card.status).toBe(200);
    expect(JSON.stringify(await card.json())).toMatch(/bearer/i);
    const rpc = { jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: 'nope' } };
    const open = await fetch(`${url}/a2a`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rpc) });
    expect(open.status).toBe(401);
    expect(open.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const keyed = await fetch(`${url}/a2a`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY_A}` }, body: JSON.stringify(rpc) });
    expect(keyed.status).toBe(200);
    expect(((await keyed.json()) as { error?: { code: number } }).error?.code).toBeDefined();
  } finally {
    await agent.shutdown();
  }
});
