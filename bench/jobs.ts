import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
// The runtime is this repository's own workspace package (agent-runtime/).
// eslint-disable-next-line import/no-extraneous-dependencies
import { AgentConfig, AgentHandle, createLogger, startAgent } from '@cdk8s-agent-cluster/agent-runtime';
import { pct, poster, round, startMockProcess } from './support';

// Issue 11's figures: what the JetStream job store adds per job and per task
// over the in-memory store (the same agent, the same mock, measured in
// alternating rounds), and how long a job takes to finish after kill -9 of
// the process running it.

const API_KEY = 'sk-bench-0123456789';

interface Nats {
  url: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** nats-server -js in a temp dir (the Debian package; the benchmark stops when it is missing). */
async function startNats(): Promise<Nats> {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('nats-server is not installed: apt-get install -y nats-server');
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-nats-'));
  const port = await freePort();
  const proc = spawn('nats-server', ['-js', '-sd', dir, '-p', String(port), '-a', '127.0.0.1'], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    if (i > 200) throw new Error('nats-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        proc.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          r();
        });
        proc.kill('SIGTERM');
      }),
  };
}

/** A worker that is the entry (it runs its tasks itself): the job API's cost is all there is beside the upstream call. */
function entryConfig(jobStore?: AgentConfig['jobStore']): AgentConfig {
  const model = { inputUsdPerMTok: 2, outputUsdPerMTok: 8, contextWindowTokens: 128000, reserveTokens: 4000, breaker: { failureThreshold: 10, recoverySeconds: 30 }, maxConcurrency: 256, fallbacks: [], tokenizer: 'o200k_base' as const };
  return {
    apiVersion: 'agents.cdk8s.io/v1',
    cluster: 'bench',
    namespace: 'bench',
    topology: 'hub-and-spoke',
    role: 'entry',
    kind: 'worker',
    entry: true,
    peers: [],
    fanOut: { concurrency: 64 },
    concurrency: { maxInFlightTasks: 256 },
    deadlines: { defaultMs: 60000, maxMs: 120000 },
    drain: { gracePeriodMs: 5000 },
    retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 100 },
    models: { default: 'gpt-4.1', allowed: ['gpt-4.1'] },
    catalog: { 'gpt-4.1': model },
    limits: { maxTasksPerJob: 10000, maxRequestBytes: 4 * 1024 * 1024 },
    ...(jobStore ? { jobStore } : {}),
  } as AgentConfig;
}

const env = (id: string, upstream: string) => ({ agentId: id, role: 'entry', configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: upstream, upstreamApiKey: API_KEY, peerEndpoints: {}, logLevel: 'warn' });
const job = (n: number, tag: string) => ({ tasks: Array.from({ length: n }, (_, i) => ({ id: `t${i}`, prompt: `${tag} task ${i}` })) });

/**
 * Synchronous jobs (POST /v1/jobs, the answer when done) of 1 and of 100
 * tasks, one at a time, through the same entry with the in-memory store and
 * with the JetStream store, in alternating rounds; mock latency 0. The
 * difference of the p50s is what the store adds per job, and per task for
 * the 100-task job.
 */
export async function benchJobStore(rounds = 4, perRound = { 1: 150, 100: 12 }) {
  const mock = await startMockProcess({ apiKey: API_KEY, latencyMs: 0 });
  const nats = await startNats();
  const logger = createLogger({ level: 'warn', agentId: 'bench', role: 'entry' });
  const agents: AgentHandle[] = [];
  try {
    const memory = await startAgent(entryConfig(), env('entry-mem', mock.url), { logger });
    agents.push(memory);
    const durable = await startAgent(entryConfig({ url: nats.url, stream: 'BENCH_JOBS', consumer: 'runners', bucket: 'bench_jobs', replicas: 1 }), env('entry-js', mock.url), { logger });
    agents.push(durable);
    const sides = { memory: poster(`http://127.0.0.1:${memory.httpPort}`, 4), jetstream: poster(`http://127.0.0.1:${durable.httpPort}`, 4) };
    const rows: Record<string, unknown>[] = [];
    for (const size of [1, 100] as const) {
      const lat: Record<'memory' | 'jetstream', number[]> = { memory: [], jetstream: [] };
      // warm both (connections, JIT, the stream and bucket)
      for (const side of ['memory', 'jetstream'] as const) for (let i = 0; i < 10; i++) await sides[side].post('/v1/jobs', job(size, 'warm'));
      for (let r = 0; r < rounds; r++) {
        for (const side of r % 2 === 0 ? (['memory', 'jetstream'] as const) : (['jetstream', 'memory'] as const)) {
          for (let i = 0; i < perRound[size]; i++) {
            const t0 = performance.now();
            const res = await sides[side].post('/v1/jobs', job(size, `${side}${r}-${i}`));
            lat[side].push(performance.now() - t0);
            if (res.results.length !== size) throw new Error(`${side}: ${res.results.length} results for ${size} tasks`);
          }
        }
      }
      const p50 = { memory: pct(lat.memory, 50), jetstream: pct(lat.jetstream, 50) };
      const added = p50.jetstream - p50.memory;
      rows.push({
        tasksPerJob: size,
        jobs: lat.memory.length,
        memoryP50ms: round(p50.memory, 3),
        jetstreamP50ms: round(p50.jetstream, 3),
        memoryP99ms: round(pct(lat.memory, 99), 3),
        jetstreamP99ms: round(pct(lat.jetstream, 99), 3),
        ratio: round(p50.jetstream / p50.memory, 2),
        addedPerJobP50ms: round(added, 3),
        addedPerTaskP50ms: round(added / size, 4),
      });
    }
    await Promise.all(Object.values(sides).map((s) => s.close()));
    return rows;
  } finally {
    for (const a of agents) await a.shutdown();
    await nats.close();
    await mock.close();
  }
}

/**
 * Two entry replicas (processes) on one JetStream store; a job of 40 tasks
 * (mock latency 100 ms, 8 at a time) is submitted, and the replica running
 * it is killed with SIGKILL once a quarter of the results are stored. The
 * figure: ms from the kill to the job's end, beside the job's own duration
 * uninterrupted (the same job on the same replicas, measured first) and the
 * consumer's ack wait (the time a dead runner keeps its job).
 */
export async function benchJobKill(runs = 3) {
  const mock = await startMockProcess({ apiKey: API_KEY, latencyMs: 100 });
  const nats = await startNats();
  const cli = path.join(path.dirname(require.resolve('@cdk8s-agent-cluster/agent-runtime/package.json')), 'dist', 'cli.js');
  const children: ChildProcess[] = [];
  const config = { ...entryConfig({ url: nats.url, stream: 'KILL_JOBS', consumer: 'runners', bucket: 'kill_jobs', replicas: 1 }), concurrency: { maxInFlightTasks: 8 } };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-kill-'));
  const file = path.join(dir, 'agent-config.json');
  writeFileSync(file, JSON.stringify(config));
  const serve = async (id: string) => {
    const child = spawn(process.execPath, [cli, 'serve'], {
      env: { ...process.env, AGENT_CONFIG_FILE: file, AGENT_ROLE: 'entry', AGENT_ID: id, HTTP_PORT: '0', GRPC_PORT: '0', UPSTREAM_BASE_URL: mock.url, UPSTREAM_API_KEY: API_KEY, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"httpPort":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`${id} exited ${code}`)));
    });
    child.stdout!.resume();
    return { id, url: `http://127.0.0.1:${port}`, child };
  };
  const get = async (url: string, id: string) => (await fetch(`${url}/v1/jobs/${id}`)).json() as Promise<{ status: string; results?: Array<{ agent_id: string | null }> }>;
  const submit = async (url: string, n: number, tag: string) =>
    ((await (await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', 'prefer': 'respond-async' }, body: JSON.stringify(job(n, tag)) })).json()) as { job_id: string }).job_id;
  const until = async (url: string, id: string, done: (v: Awaited<ReturnType<typeof get>>) => boolean) => {
    for (;;) {
      const v = await get(url, id).catch(() => undefined);
      if (v && done(v)) return v;
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const final = (v: { status: string }) => ['succeeded', 'failed', 'cancelled'].includes(v.status);
  const rows: Record<string, unknown>[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const a = await serve(`entry-a${run}`);
      const b = await serve(`entry-b${run}`);
      const t0 = performance.now();
      const plain = await submit(a.url, 40, `plain${run}`);
      await until(a.url, plain, final);
      const uninterruptedMs = performance.now() - t0;
      const id = await submit(a.url, 40, `kill${run}`);
      const early = await until(b.url, id, (v) => (v.results?.length ?? 0) >= 10);
      const runner = early.results![0].agent_id === a.id ? a : b;
      const survivor = runner === a ? b : a;
      const killedAt = performance.now();
      runner.child.kill('SIGKILL');
      const end = await until(survivor.url, id, final);
      const killToDoneMs = performance.now() - killedAt;
      rows.push({
        run,
        tasks: 40,
        status: end.status,
        uninterruptedJobMs: Math.round(uninterruptedMs),
        killToDoneMs: Math.round(killToDoneMs),
        ackWaitMs: 10_000,
        killToDoneOverAckWait: round(killToDoneMs / 10_000, 2),
      });
      survivor.child.kill('SIGTERM');
      await new Promise((r) => survivor.child.once('exit', r));
    }
    return rows;
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await nats.close();
    await mock.close();
  }
}
