import * as http from 'node:http';
import { AddressInfo } from 'node:net';
// The runtime is this repository's own workspace package (agent-runtime/).
// eslint-disable-next-line import/no-extraneous-dependencies
import { createLogger, InferenceExecutor, LocalCluster, RuntimeMetrics, startLocalCluster, startMockUpstream, UpstreamClient, validateAgentConfig, readRoles } from '@cdk8s-agent-cluster/agent-runtime';
import { Construct } from 'constructs';
import { AgentCluster, ModelCatalog, Topology } from '../src';
import { alternate, ChildServer, fifoGate, load, pct, poster, round, Side, startMockProcess, startRelayProcess, synthToFile } from './support';

const API_KEY = 'sk-bench-0123456789';
const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };
const chat = (i: number) => ({ model: 'gpt-4.1', messages: [{ role: 'user', content: `benchmark task ${i}` }] });

/** The default catalog with gpt-4.1's per-pod bulkhead (32 by default) lifted to `n`, so the benchmark's load is not queued there. */
const wideCatalog = (n: number) => ModelCatalog.defaults().withModel({ ...ModelCatalog.defaults().spec('gpt-4.1'), maxConcurrency: n });

/** A hub with `workers` worker roles, sized for load (no HPA, wide in-flight and per-model limits). */
function hubManifest(workers: number, inFlight = 256, fanOut = 64): string {
  return synthToFile('hub', (chart: Construct) => {
    new AgentCluster(chart, 'bench', {
      topology: Topology.hubAndSpoke({
        coordinator: { name: 'coordinator', disableAutoscaling: true, replicas: 1, fanOutConcurrency: fanOut },
        workers: Array.from({ length: workers }, (_, i) => ({ name: `worker-${i}`, replicas: 1 })),
      }),
      upstream,
      maxInFlightTasks: inFlight,
      catalog: wideCatalog(inFlight),
    });
  });
}

/** Runs `fn` against a topology started locally, its upstream the mock in a process of its own; stops both after. */
async function withLocalCluster<T>(
  manifests: string,
  latencyMs: number,
  fn: (cluster: LocalCluster, mock: ChildServer) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const mock = await startMockProcess({ apiKey: API_KEY, latencyMs });
  try {
    const cluster = await startLocalCluster({ manifests, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', env: { LOG_LEVEL: 'warn', ...env }, readyTimeoutMs: 120_000 });
    try {
      return await fn(cluster, mock);
    } finally {
      await cluster.stop();
    }
  } finally {
    await mock.close();
  }
}

/** The overhead table, and where the CPU of each path went. */
export interface OverheadResult {
  readonly rows: Record<string, unknown>[];
  /** µs of CPU per request by process on each path, at concurrency 64 with mock latency 0. */
  readonly cpu: Record<string, unknown>[];
}

/** Rounds each side of a latency comparison is split into, alternating with the other sides. */
const ROUNDS = 4;

/**
 * One job of one task through the entry agent (entry, then one worker, then
 * the mock) vs one call to the mock, and vs the same call through a chain
 * of two do-nothing HTTP relays (the same two extra processes in the path
 * with none of the work): p50/p99 at concurrency 1 and 64 with the mock
 * answering at once, then at 64 with the mock taking each of `slowMockMs`
 * (a model answers in hundreds of ms or more). With latency 0 every path is
 * CPU-bound on this machine's cores at concurrency 64, so a latency ratio
 * can be no lower than the ratio of CPU per request, which is measured per
 * process in the same run and printed beside it.
 */
export async function benchOverhead(slowMockMs: number[] = [20, 100]): Promise<OverheadResult> {
  const rows: Record<string, unknown>[] = [];
  let cpu: Record<string, unknown>[] = [];
  const measure = (latencyMs: number, points: Array<[number, number]>, warmUp: number) =>
    withLocalCluster(hubManifest(1), latencyMs, async (cluster, mock) => {
      const origin = mock.url.replace(/\/v1$/, '');
      const relay2 = await startRelayProcess(origin);
      const relay1 = await startRelayProcess(relay2.url);
      const direct = poster(origin, 64);
      const relayed = poster(relay1.url, 64);
      const entry = poster(cluster.entryUrl, 64);
      const auth = { authorization: `Bearer ${API_KEY}` };
      const callDirect = (i: number) => direct.post('/v1/chat/completions', chat(i), auth);
      const callRelayed = (i: number) => relayed.post('/v1/chat/completions', chat(i), auth);
      const callEntry = async (i: number) => {
        const res = await entry.post('/v1/jobs', { tasks: [{ prompt: `benchmark task ${i}` }] });
        if (res.success_rate !== 1) throw new Error(`job failed: ${JSON.stringify(res.results[0].error)}`);
      };
      const pids: Record<string, number> = { 'bench (load)': process.pid, 'mock': mock.pid, 'relay 1': relay1.pid, 'relay 2': relay2.pid };
      for (const a of cluster.agents) pids[a.name] = a.process.pid!;
      try {
        for (const [concurrency, total] of points) {
          // warm-up: enough calls for V8 to optimise the hot paths of every process
          for (const fn of [callDirect, callRelayed, callEntry]) await load(warmUp, concurrency, fn);
          const [d, r, e] = await alternate(ROUNDS, total / ROUNDS, concurrency, pids, [callDirect, callRelayed, callEntry]);
          const p = (side: Side, q: number) => pct(side.latencies, q);
          const cpuSum = (side: Side) => (side.cpuUs ? Object.values(side.cpuUs).reduce((a, b) => a + b, 0) : NaN);
          rows.push({
            mockLatencyMs: latencyMs,
            concurrency,
            requests: total,
            directP50ms: round(p(d, 50), 3),
            relayP50ms: round(p(r, 50), 3),
            entryP50ms: round(p(e, 50), 3),
            addedP50ms: round(p(e, 50) - p(d, 50), 3),
            relayAddedP50ms: round(p(r, 50) - p(d, 50), 3),
            directP99ms: round(p(d, 99), 3),
            relayP99ms: round(p(r, 99), 3),
            entryP99ms: round(p(e, 99), 3),
            p99Ratio: round(p(e, 99) / p(d, 99)),
            relayP99Ratio: round(p(r, 99) / p(d, 99)),
            cpuRatio: round(cpuSum(e) / cpuSum(d)),
            relayCpuRatio: round(cpuSum(r) / cpuSum(d)),
          });
          if (latencyMs === 0 && concurrency === 64 && d.cpuUs && r.cpuUs && e.cpuUs) {
            cpu = Object.keys(pids).map((process) => ({
              process,
              directUsPerReq: d.cpuUs![process],
              relayUsPerReq: r.cpuUs![process],
              entryUsPerReq: e.cpuUs![process],
            }));
          }
        }
      } finally {
        await Promise.all([direct.close(), relayed.close(), entry.close()]);
        await relay1.close();
        await relay2.close();
      }
    });
  await measure(
    0,
    [
      [1, 2000],
      [64, 4000],
    ],
    2000,
  );
  // the processes are as warm after 1,000 slow calls; more would only add minutes
  for (const latencyMs of slowMockMs) await measure(latencyMs, [[64, latencyMs >= 100 ? 2000 : 4000]], 1000);
  return { rows, cpu };
}

/**
 * 10,000 single-call tasks through a hub with 2 workers vs direct calls at
 * the same concurrency (64 in flight): once as one job of 10,000 tasks (the
 * coordinator keeps 64 in flight throughout), once as 100 jobs of 100 sent
 * one after another (each job's last wave leaves slots idle until it ends).
 */
export async function benchThroughput(totalTasks = 10_000, concurrency = 64) {
  return withLocalCluster(hubManifest(2, 256, concurrency), 0, async (cluster, mock) => {
    const direct = poster(mock.url.replace(/\/v1$/, ''), concurrency);
    const callDirect = (i: number) => direct.post('/v1/chat/completions', chat(i), { authorization: `Bearer ${API_KEY}` });
    const entry = poster(cluster.entryUrl, 4);
    const runJobs = async (perJob: number) => {
      let ok = 0;
      const e = await load(totalTasks / perJob, 1, async (j) => {
        const res = await entry.post('/v1/jobs', { deadline_ms: 120_000, tasks: Array.from({ length: perJob }, (_, i) => ({ prompt: `job ${j} task ${i}` })) });
        ok += res.results.filter((r: { ok: boolean }) => r.ok).length;
      });
      return { rate: totalTasks / (e.wallMs / 1000), ok };
    };
    // warm-up of both paths
    await load(2000, concurrency, callDirect);
    await runJobs(100);
    const d = await load(totalTasks, concurrency, callDirect);
    const directRate = totalTasks / (d.wallMs / 1000);
    const rows = [];
    for (const perJob of [totalTasks, 100]) {
      const e = await runJobs(perJob);
      rows.push({
        tasks: totalTasks,
        concurrency,
        jobs: `${totalTasks / perJob} x ${perJob}`,
        directTasksPerS: round(directRate, 0),
        hubTasksPerS: round(e.rate, 0),
        ratio: round(e.rate / directRate),
        succeeded: e.ok,
      });
    }
    await direct.close();
    await entry.close();
    return rows;
  });
}

/**
 * A 100-task job per topology with a fixed mock latency, vs latency × waves
 * and vs a direct baseline: the same 100 calls straight to the mock with the
 * entry's fan-out in flight, so the mock's own timer slack (a 50 ms timer
 * fires a little late, more so on a busy machine) is not charged to the
 * coordination. Each side reports its best of 3, alternating. The per-wave
 * overhead is split in two from the tasks' own `latency_ms` (the worker's
 * time for each, its upstream call included): the rest of the round trip
 * (the entry's dispatch, a supervisor when there is one, the gRPC hops both
 * ways), and the worker's time beyond the mock's latency, printed beside a
 * direct call's time beyond it.
 */
export async function benchCoordination(manifests: Record<string, string>, latencyMs = 50, taskCount = 100) {
  const rows: Record<string, unknown>[] = [];
  for (const [topology, file] of Object.entries(manifests)) {
    await withLocalCluster(file, latencyMs, async (cluster, mock) => {
      const entryConfig = JSON.parse(readRoles(file).find((r: { entry: boolean }) => r.entry)!.configJson);
      const fanOut = entryConfig.fanOut.concurrency;
      const entry = poster(cluster.entryUrl, 2);
      const direct = poster(mock.url.replace(/\/v1$/, ''), fanOut);
      const callDirect = (i: number) => direct.post('/v1/chat/completions', chat(i), { authorization: `Bearer ${API_KEY}` });
      const job = { tasks: Array.from({ length: taskCount }, (_, i) => ({ prompt: `coordination ${i}` })) };
      await entry.post('/v1/jobs', job); // warm-up
      await load(taskCount, fanOut, callDirect);
      const times = [];
      const directTimes = [];
      // per job: the mean of its tasks' latency_ms, each the worker's own time for its task (upstream call included)
      const workerMs = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        const res = await entry.post('/v1/jobs', job);
        times.push(performance.now() - t0);
        if (res.success_rate !== 1) throw new Error(`${topology}: job not fully successful`);
        workerMs.push(res.results.reduce((sum: number, t: { latency_ms: number }) => sum + t.latency_ms, 0) / res.results.length);
        directTimes.push((await load(taskCount, fanOut, callDirect)).wallMs);
      }
      await entry.close();
      await direct.close();
      const waves = Math.ceil(taskCount / fanOut);
      const ideal = latencyMs * waves;
      const best = Math.min(...times);
      const directBest = Math.min(...directTimes);
      // each lane runs waves tasks one after another, so a wave costs one task's round trip: of the best job's,
      // the worker's part (its latency_ms) and the rest (entry, supervisor, the gRPC hops both ways)
      const workerBest = workerMs[times.indexOf(best)];
      rows.push({
        topology,
        tasks: taskCount,
        fanOut,
        mockLatencyMs: latencyMs,
        idealMs: ideal,
        directSameFanOutMs: round(directBest, 1),
        measuredMs: round(best, 1),
        ratio: round(best / ideal),
        ratioVsDirect: round(best / directBest, 3),
        overheadPerWaveMs: round((best - ideal) / waves, 2),
        overheadPerWaveVsDirectMs: round((best - directBest) / waves, 2),
        // where the per-wave overhead over ideal goes, from the best job itself (the two sum to overheadPerWaveMs;
        // latency_ms is whole ms per task, its mean over 100 tasks good to ~0.1 ms): the hops, and the worker's
        // time beyond the mock's latency, to read beside a direct call's time beyond it
        hopsPerWaveMs: round(best / waves - workerBest, 2),
        workerOverMockPerWaveMs: round(workerBest - latencyMs, 2),
        directOverMockPerWaveMs: round(directBest / waves - latencyMs, 2),
      });
    });
  }
  return rows;
}

/**
 * A 4-step workflow (a → b → c ∥ d) through the hub's entry against its
 * ideal critical path (3 waves × the mock latency) and against the same four
 * calls made directly to the mock in the same three waves, in alternating
 * rounds. Jobs run one at a time: this is the latency a workflow adds, not
 * its throughput.
 */
export async function benchWorkflow(latencyMs = 50, jobs = 80, rounds = ROUNDS) {
  const waves = 3;
  return withLocalCluster(hubManifest(2), latencyMs, async (cluster, mock) => {
    const origin = mock.url.replace(/\/v1$/, '');
    const direct = poster(origin, 4);
    const entry = poster(cluster.entryUrl, 4);
    const auth = { authorization: `Bearer ${API_KEY}` };
    const call = (text: string) => direct.post('/v1/chat/completions', { model: 'gpt-4.1', messages: [{ role: 'user', content: text }] }, auth);
    const callDirect = async (i: number) => {
      await call(`gather ${i}`);
      await call(`draft ${i}`);
      await Promise.all([call(`check ${i}`), call(`summarize ${i}`)]);
    };
    const callWorkflow = async (i: number) => {
      const res = await entry.post('/v1/jobs', {
        steps: [
          { id: 'a', role: 'worker-0', prompt: `gather ${i}` },
          { id: 'b', role: 'worker-1', prompt: 'draft from {{steps.a.content}}', depends_on: ['a'] },
          { id: 'c', role: 'worker-0', prompt: 'check {{steps.b.content}}', depends_on: ['b'] },
          { id: 'd', role: 'worker-1', prompt: 'summarize {{steps.b.content}}', depends_on: ['b'] },
        ],
      });
      if (res.success_rate !== 1) throw new Error(`workflow failed: ${JSON.stringify(res.steps.map((s: { error: unknown }) => s.error))}`);
    };
    // the same waves as three `tasks` jobs: what the hops cost without the engine
    const job = async (tasks: Array<{ role: string; prompt: string }>) => {
      const res = await entry.post('/v1/jobs', { tasks });
      if (res.success_rate !== 1) throw new Error('tasks job failed');
    };
    const callTasks = async (i: number) => {
      await job([{ role: 'worker-0', prompt: `gather ${i}` }]);
      await job([{ role: 'worker-1', prompt: `draft ${i}` }]);
      await job([
        { role: 'worker-0', prompt: `check ${i}` },
        { role: 'worker-1', prompt: `summarize ${i}` },
      ]);
    };
    try {
      for (const fn of [callDirect, callTasks, callWorkflow]) await load(10, 1, fn); // warm-up
      const [d, t, w] = await alternate(rounds, jobs / rounds, 1, {}, [callDirect, callTasks, callWorkflow]);
      const ideal = waves * latencyMs;
      const dp50 = pct(d.latencies, 50);
      const wp50 = pct(w.latencies, 50);
      return [
        {
          steps: 4,
          criticalPathSteps: waves,
          mockLatencyMs: latencyMs,
          jobs,
          idealMs: ideal,
          directP50Ms: round(dp50, 2),
          workflowP50Ms: round(wp50, 2),
          ratioToIdeal: round(wp50 / ideal, 3),
          addedPerStepP50Ms: round((wp50 - ideal) / waves, 2),
          ratioToDirect: round(wp50 / dp50, 3),
          threeTasksJobsP50Ms: round(pct(t.latencies, 50), 2),
          addedPerStepVsDirectP50Ms: round((wp50 - dp50) / waves, 2),
          workflowP99Ms: round(pct(w.latencies, 99), 2),
        },
      ];
    } finally {
      await Promise.all([direct.close(), entry.close()]);
    }
  });
}

/** Throughput of InferenceExecutor (retry + breaker + bulkhead + timeout) vs the bare client, nothing failing, in alternating rounds. */
export async function benchResilience(total = 10_000, concurrency = 64, rounds = 3) {
  const mock = await startMockUpstream({ apiKey: API_KEY });
  const client = new UpstreamClient({ baseUrl: mock.url, apiKey: API_KEY, connections: concurrency });
  const config = validateAgentConfig(JSON.parse(readRoles(hubManifest(1)).find((r: { name: string }) => r.name === 'worker-0')!.configJson));
  const executor = new InferenceExecutor({
    config: { ...config, concurrency: { maxInFlightTasks: 1000 } },
    client,
    metrics: new RuntimeMetrics(),
    logger: createLogger({ level: 'silent' }),
    agentId: 'bench',
  });
  try {
    const bare = async (i: number) => {
      await client.chat(chat(i) as never, { timeoutMs: 30_000 });
    };
    const guarded = async (i: number) => {
      const r = await executor.execute({ id: `t${i}`, messages: chat(i).messages as never }, Date.now() + 30_000);
      if (!r.ok) throw new Error(r.error!.message);
    };
    await load(2000, concurrency, bare);
    await load(2000, concurrency, guarded);
    // each side reports its median round
    const [b, g] = await alternate(rounds, total, concurrency, {}, [bare, guarded]);
    const medianRate = (side: Side) => pct(side.roundWallMs.map((ms) => total / (ms / 1000)), 50);
    const bareRate = medianRate(b);
    const guardedRate = medianRate(g);
    return [
      {
        calls: total,
        rounds,
        concurrency,
        bareCallsPerS: round(bareRate, 0),
        withPoliciesCallsPerS: round(guardedRate, 0),
        ratio: round(guardedRate / bareRate),
      },
    ];
  } finally {
    await client.close();
    await mock.close();
  }
}

/** Heap and RSS of one worker holding 2,000 tasks in flight (the mock holds every call open), minus idle. */
export async function benchMemory(inFlight = 2000) {
  const mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 60_000 });
  const file = synthToFile('mem', (chart: Construct) => {
    new AgentCluster(chart, 'bench', {
      topology: Topology.hubAndSpoke({ coordinator: { name: 'coordinator', disableAutoscaling: true, replicas: 1 }, workers: [{ name: 'worker', replicas: 1 }] }),
      upstream,
      maxInFlightTasks: inFlight + 100,
      // every task holds an upstream call open: lift the per-model bulkhead above the load
      catalog: wideCatalog(inFlight + 100),
      defaultDeadlineMs: 120_000,
      maxDeadlineMs: 120_000,
    });
  });
  const cluster = await startLocalCluster({ manifests: file, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', env: { LOG_LEVEL: 'warn' } });
  const worker = cluster.agent('worker');
  const gauge = async () => {
    const text = await (await fetch(`${worker.httpUrl}/metrics`, { headers: { connection: 'close' } })).text();
    const read = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(text)![1]);
    return { heap: read('nodejs_heap_size_used_bytes'), rss: read('process_resident_memory_bytes'), inFlight: read('agent_in_flight_tasks') };
  };
  try {
    await new Promise((r) => setTimeout(r, 1500));
    const idle = await gauge();
    const job = fetch(`${worker.httpUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'connection': 'close' },
      body: JSON.stringify({ deadline_ms: 90_000, tasks: Array.from({ length: inFlight }, (_, i) => ({ prompt: `memory task ${i} ${'x'.repeat(200)}` })) }),
    }).catch(() => undefined);
    let loaded = await gauge();
    for (let i = 0; i < 50 && loaded.inFlight < inFlight; i++) {
      await new Promise((r) => setTimeout(r, 200));
      loaded = await gauge();
    }
    await new Promise((r) => setTimeout(r, 1000));
    loaded = await gauge();
    void job;
    return [{
      inFlight: loaded.inFlight,
      idleHeapMB: round(idle.heap / 2 ** 20, 1),
      loadedHeapMB: round(loaded.heap / 2 ** 20, 1),
      heapPerTaskKB: round((loaded.heap - idle.heap) / loaded.inFlight / 1024, 1),
      rssPerTaskKB: round((loaded.rss - idle.rss) / loaded.inFlight / 1024, 1),
    }];
  } finally {
    await cluster.stop();
    await mock.close();
  }
}

/**
 * Overload (issue 14): the stock hub example, one-task jobs for gpt-4.1 at
 * concurrency 64 while only the two task executors serve gpt-4.1 (2 pods x
 * maxInFlightTasks 16 = 32 slots): twice the capacity. p50/p99 through the
 * entry vs direct calls to the mock at the same concurrency, and vs an ideal
 * FIFO in front of the 32 slots: service time (the direct p50) x
 * ceil(64 / 32), the formula; and vs a real FIFO of 32 slots in the
 * load generator in front of direct calls, which has the mock's own spread
 * of service times (its p99 is the floor a zero-overhead FIFO reaches on
 * this machine); and vs the same FIFO in front of two do-nothing HTTP
 * relays (the entry path's two extra processes with none of their work: a
 * slot there is held over both hops, one more than the entry's own queue
 * holds it, so this floor leans in the entry's favour). Alternating rounds,
 * as in benchOverhead.
 */
export async function benchOverload(stockHub: string, latencies: number[] = [0, 20], total = 2000, concurrency = 64) {
  const capacity = JSON.parse(readRoles(stockHub).find((r: { entry: boolean }) => r.entry)!.configJson)
    .peers.filter((p: { models?: string[] }) => !p.models || p.models.includes('gpt-4.1'))
    .reduce((n: number, p: { maxInFlightTasks: number }) => n + p.maxInFlightTasks, 0);
  const rows: Record<string, unknown>[] = [];
  for (const latencyMs of latencies) {
    await withLocalCluster(stockHub, latencyMs, async (cluster, mock) => {
      const direct = poster(mock.url.replace(/\/v1$/, ''), concurrency);
      const entry = poster(cluster.entryUrl, concurrency);
      const callDirect = (i: number) => direct.post('/v1/chat/completions', chat(i), { authorization: `Bearer ${API_KEY}` });
      const gate = fifoGate(capacity);
      const callFifo = (i: number) => gate(() => callDirect(i));
      const relay2 = await startRelayProcess(mock.url.replace(/\/v1$/, ''));
      const relay1 = await startRelayProcess(relay2.url);
      const relayed = poster(relay1.url, concurrency);
      const relayGate = fifoGate(capacity);
      const callRelayFifo = (i: number) => relayGate(() => relayed.post('/v1/chat/completions', chat(i), { authorization: `Bearer ${API_KEY}` }));
      let failed = 0;
      const codes: Record<string, number> = {};
      const callEntry = async (i: number) => {
        try {
          const res = await entry.post('/v1/jobs', { tasks: [{ prompt: `overload ${i}`, model: 'gpt-4.1' }] });
          if (!res.results[0].ok) {
            failed++;
            codes[res.results[0].error.code] = (codes[res.results[0].error.code] ?? 0) + 1;
          }
        } catch (e) {
          failed++;
          const code = /jobs (\d+)/.exec((e as Error).message)?.[1] ?? 'error';
          codes[code] = (codes[code] ?? 0) + 1;
        }
      };
      try {
        for (const fn of [callDirect, callEntry, callRelayFifo]) await load(1000, concurrency, fn);
        failed = 0;
        for (const k of Object.keys(codes)) delete codes[k];
        const [d, e, f, rf] = await alternate(ROUNDS, total / ROUNDS, concurrency, {}, [callDirect, callEntry, callFifo, callRelayFifo]);
        const service = pct(d.latencies, 50);
        const idealFifo = service * Math.ceil(concurrency / capacity);
        rows.push({
          mockLatencyMs: latencyMs,
          concurrency,
          capacity,
          requests: total,
          directP50ms: round(service, 3),
          directP99ms: round(pct(d.latencies, 99), 3),
          entryP50ms: round(pct(e.latencies, 50), 3),
          entryP99ms: round(pct(e.latencies, 99), 3),
          entryMaxMs: round(Math.max(...e.latencies), 3),
          // the spread of each side: starvation shows here whatever the machine's load
          directP99OverP50: round(pct(d.latencies, 99) / pct(d.latencies, 50)),
          entryP99OverP50: round(pct(e.latencies, 99) / pct(e.latencies, 50)),
          idealFifoMs: round(idealFifo, 3),
          fifoP50ms: round(pct(f.latencies, 50), 3),
          fifoP99ms: round(pct(f.latencies, 99), 3),
          p99VsDirect: round(pct(e.latencies, 99) / pct(d.latencies, 99)),
          p99VsIdealFifo: round(pct(e.latencies, 99) / idealFifo),
          // the same FIFO measured with the mock's real spread of service times
          fifoP99VsIdealFifo: round(pct(f.latencies, 99) / idealFifo),
          p99VsMeasuredFifo: round(pct(e.latencies, 99) / pct(f.latencies, 99)),
          p50VsMeasuredFifo: round(pct(e.latencies, 50) / pct(f.latencies, 50)),
          relayFifoP50ms: round(pct(rf.latencies, 50), 3),
          relayFifoP99ms: round(pct(rf.latencies, 99), 3),
          // the floor of a two-hop path on this machine, against the formula, and the entry against it
          relayFifoP99VsIdealFifo: round(pct(rf.latencies, 99) / idealFifo),
          p99VsRelayFifo: round(pct(e.latencies, 99) / pct(rf.latencies, 99)),
          target: latencyMs === 20 ? 'p99 <= 1.5x ideal FIFO' : '-',
          met: latencyMs === 20 ? pct(e.latencies, 99) <= 1.5 * idealFifo : '-',
          failed,
          failures: JSON.stringify(codes),
        });
      } finally {
        await Promise.all([direct.close(), entry.close(), relayed.close()]);
        await Promise.all([relay1.close(), relay2.close()]);
      }
    });
  }
  return rows;
}

/**
 * Tracing on against off (issue 12): the same hub (one worker) twice, one
 * with no OTLP endpoint and one exporting OTLP/HTTP JSON to a collector in
 * this process (it counts and drops what it gets), both up at once; 100-task
 * jobs alternate between them round by round so a slow spell of the machine
 * falls on both. Throughput is tasks per second of the best round of each;
 * `cpuRatio` is the agents' CPU per task off / on (what throughput would be
 * on a machine the agents had to themselves, where they are CPU-bound).
 */
export async function benchTracing(rounds = 4, jobsPerRound = 40, perJob = 100) {
  let exports = 0;
  let bytes = 0;
  const collector = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      exports += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const manifest = hubManifest(1, 256, 64);
  try {
    return await withLocalCluster(manifest, 0, (off) =>
      withLocalCluster(
        manifest,
        0,
        async (on) => {
          const entries = [poster(off.entryUrl, 4), poster(on.entryUrl, 4)];
          const job = (i: number) => ({ deadline_ms: 60_000, tasks: Array.from({ length: perJob }, (_, t) => ({ prompt: `job ${i} task ${t}` })) });
          const runJob = (p: (typeof entries)[number]) => async (i: number) => {
            const res = await p.post('/v1/jobs', job(i));
            if (res.success_rate !== 1) throw new Error(`job not fully successful: ${JSON.stringify(res.results.find((r: { ok: boolean }) => !r.ok))}`);
          };
          // warm-up: a round's worth on each
          await load(jobsPerRound, 2, runJob(entries[0]));
          await load(jobsPerRound, 2, runJob(entries[1]));
          // CPU of both clusters' agents, read around every round: a side's own processes are what its jobs cost
          // (CPU time is far less disturbed by other work on the machine than wall time)
          const pids: Record<string, number> = {};
          for (const [side, c] of [['off', off], ['on', on]] as const) for (const a of c.agents) pids[`${side}:${a.name}`] = a.pid;
          const [offSide, onSide] = await alternate(rounds, jobsPerRound, 2, pids, entries.map(runJob));
          for (const e of entries) await e.close();
          const rate = (side: Side) => (jobsPerRound * perJob) / (Math.min(...side.roundWallMs) / 1000);
          const cpuPerTask = (side: Side, prefix: string) =>
            side.cpuUs ? Object.entries(side.cpuUs).filter(([k]) => k.startsWith(prefix)).reduce((sum, [, us]) => sum + us, 0) / perJob : NaN;
          const offCpu = cpuPerTask(offSide, 'off:');
          const onCpu = cpuPerTask(onSide, 'on:');
          return [
            {
              tasks: rounds * jobsPerRound * perJob,
              jobs: `${jobsPerRound} x ${perJob} per round, ${rounds} rounds each`,
              offTasksPerS: round(rate(offSide), 0),
              onTasksPerS: round(rate(onSide), 0),
              ratio: round(rate(onSide) / rate(offSide)),
              offCpuUsPerTask: round(offCpu, 0),
              onCpuUsPerTask: round(onCpu, 0),
              cpuRatio: round(offCpu / onCpu),
              exportRequests: exports,
              exportedKiB: round(bytes / 1024, 0),
            },
          ];
        },
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
      ),
    );
  } finally {
    await new Promise<void>((r) => collector.close(() => r()));
  }
}
