import { startLocalCluster, LocalCluster } from '../../src/local/launcher';
import { startMockUpstream, MockUpstream, ScriptedFault } from '../../src/mock/upstream';
import { expectExactlyOnce, JobResponse, postJob, synthesizedManifests, tasks, TOPOLOGIES, TopologyName } from '../support/cluster';
import { startTcpProxy, TcpProxy } from '../support/tcp-proxy';

// The article's failure scenarios, each injected into each topology running
// locally from its synthesized manifests. Every case checks that each task
// ends with exactly one result and that the success rate holds.
//
// The manifests are a variant of the example with tighter timeouts so a
// hung upstream attempt (1 s) or a drain (3 s) fits a test's time.
const OVERRIDES = { attemptTimeoutMs: 1000, drainSeconds: 3, retryInitialDelayMs: 50, retryMaxDelayMs: 400, maxInFlightTasks: 32 };
const API_KEY = 'sk-fault-matrix-123456';
const JOB_DEADLINE_MS = 25000;

let mock: MockUpstream;
let manifests: Record<TopologyName, string>;
let cluster: LocalCluster | undefined;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  manifests = synthesizedManifests(OVERRIDES);
  mock = await startMockUpstream({ apiKey: API_KEY });
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  for (const p of proxies.splice(0)) await p.close();
  mock.reset();
});
afterAll(async () => {
  await mock.close();
});

/** The role to hurt in each topology: a worker, a supervisor, a mesh peer. */
const VICTIM: Record<TopologyName, string> = {
  'hub-and-spoke': 'task-executor-a',
  'mesh': 'task-executor-a',
  'hierarchical': 'execution-supervisor',
};

async function boot(topology: TopologyName, extra: Partial<Parameters<typeof startLocalCluster>[0]> = {}) {
  // Tasks naming no model or role all take the cluster default model
  // (gpt-4.1); in the hierarchy only the execution supervisor's subtree serves
  // it, so that supervisor runs two replicas, as in production, and a fault
  // on one leaves the other.
  const roleReplicas = topology === 'hierarchical' ? { [VICTIM.hierarchical]: 2 } : undefined;
  cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', roleReplicas, ...extra });
  return cluster;
}

function report(name: string, sent: Array<{ id: string }>, res: JobResponse, minSuccess: number) {
  expectExactlyOnce(sent, res.results);
  const failures = res.results.filter((r) => !r.ok);
  // the assertions, visible in the test output
  process.stdout.write(
    `  [fault] ${name}: ${res.results.length}/${sent.length} answered once, success ${(res.success_rate * 100).toFixed(1)} % (need >= ${minSuccess * 100} %)` +
      (failures.length ? `, errors: ${[...new Set(failures.map((f) => f.error!.code))].join(',')}` : '') +
      '\n',
  );
  expect(res.success_rate).toBeGreaterThanOrEqual(minSuccess);
  for (const f of failures) expect(f.error!.message.length).toBeGreaterThan(0);
}

const after = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(TOPOLOGIES)('%s', (topology) => {
  const victim = VICTIM[topology];

  test(`SIGKILL ${victim} mid-job: tasks complete elsewhere`, async () => {
    const c = await boot(topology);
    mock.setBehaviour({ latencyMs: 200 });
    const sent = tasks(40);
    const job = postJob(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS });
    await after(300);
    c.kill(victim, 0, 'SIGKILL');
    report(`${topology} SIGKILL ${victim}`, sent, (await job).body, 1);
  });

  test(`network partition (blackhole) in front of ${victim}: tasks move on`, async () => {
    const c = await boot(topology, {
      endpointFor: async (role, _replica, address) => {
        if (role !== victim) return address;
        const proxy = await startTcpProxy(address);
        proxies.push(proxy);
        return proxy.address;
      },
    });
    mock.setBehaviour({ latencyMs: 200 });
    const sent = tasks(30);
    const job = postJob(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS });
    await after(300);
    expect(proxies[0].connections()).toBeGreaterThan(0); // traffic really went through the proxy
    proxies[0].setMode('blackhole');
    report(`${topology} partition before ${victim}`, sent, (await job).body, 1);
  });

  const upstreamFaults: Array<[string, ScriptedFault[], Record<string, unknown>]> = [
    ['upstream hangs', Array(8).fill('hang'), {}],
    ['503 burst', Array(30).fill('503'), {}],
    ['429 with Retry-After', Array(10).fill('429'), { retryAfterSeconds: 1 }],
    ['connection resets', Array(15).fill('reset'), {}],
  ];
  test.each(upstreamFaults)(`%s are absorbed by retries and fallbacks`, async (name, script, extra) => {
    const c = await boot(topology);
    mock.setBehaviour({ latencyMs: 10, script, ...extra });
    const sent = tasks(30);
    const res = (await postJob(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS })).body;
    report(`${topology} ${name}`, sent, res, 1);
    expect(mock.stats().calls).toBeGreaterThan(sent.length); // the faults were really hit and retried
  });

  test('memory pressure: a small-heap worker sheds oversized tasks without losing the job', async () => {
    const worker = topology === 'hierarchical' ? 'task-executor-a' : 'validation';
    const c = await boot(topology, { roleEnv: { [worker]: { NODE_OPTIONS: '--max-old-space-size=64' } } });
    mock.setBehaviour({ latencyMs: 10 });
    const big = 'lorem ipsum '.repeat(150_000); // 1.8 MB, ~300 k tokens: over every window
    const normal = tasks(20);
    const oversized = Array.from({ length: 3 }, (_, i) => ({ id: `big${i}`, prompt: big, role: worker }));
    const sent = [...normal, ...oversized];
    const res = (await postJob(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS })).body;
    expectExactlyOnce(sent, res.results);
    for (const t of normal) expect(res.results.find((r) => r.id === t.id)!.ok).toBe(true);
    for (const t of oversized) {
      const r = res.results.find((x) => x.id === t.id)!;
      expect(r.ok).toBe(false);
      expect(r.error!.code).toBe('context_overflow');
    }
    process.stdout.write(`  [fault] ${topology} memory pressure on ${worker}: 20/20 normal ok, 3/3 oversized shed with context_overflow\n`);
    expect(c.agent(worker).process.exitCode).toBeNull(); // still running
    const health = await fetch(`${c.agent(worker).httpUrl}/healthz`, { headers: { connection: 'close' } });
    expect(health.status).toBe(200);
  });

  test(`SIGTERM ${victim} mid-job (rolling update): it drains, nothing is lost`, async () => {
    const c = await boot(topology);
    mock.setBehaviour({ latencyMs: 300 });
    const sent = tasks(30);
    const job = postJob(c.entryUrl, { tasks: sent, deadline_ms: JOB_DEADLINE_MS });
    await after(400);
    const exited = c.agent(victim).exited; // this process's end (local mode then starts a new one)
    c.kill(victim, 0, 'SIGTERM');
    report(`${topology} SIGTERM ${victim}`, sent, (await job).body, 1);
    expect(await exited).toBe(0);
  });
});
