import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { LocalCluster, restartBackoffMs, startLocalCluster, withNatsUrl } from '../src/local/launcher';
import { startMockUpstream, MockUpstream } from '../src/mock/upstream';
import { postJob, synthesizedManifests, tasks } from './support/cluster';
import { startTestNats } from './support/nats';

// Local mode as the kubelet would run the manifests: a dead agent comes back
// (same pod name, same ports), one line per process start, and a nats-server
// when the configs name a job store.

const API_KEY = 'sk-local-cluster-123456';
const CLI = path.resolve(__dirname, '..', 'dist', 'cli.js');
const LINE = /^agent (\S+) pid (\d+) http (\d+) grpc (\d+)$/;
let mock: MockUpstream;
let manifests: ReturnType<typeof synthesizedManifests>;
/** The examples synthesized with the constructs' own job store (JobStore.jetStream), as production uses it. */
let withStore: ReturnType<typeof synthesizedManifests>;
let cluster: LocalCluster | undefined;

/** The config file each agent process reads (its AGENT_CONFIG_FILE), parsed. */
function configOf(pid: number): { jobStore?: Record<string, unknown> } {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const file = env.find((e) => e.startsWith('AGENT_CONFIG_FILE='))!.slice('AGENT_CONFIG_FILE='.length);
  return JSON.parse(readFileSync(file, 'utf8')) as { jobStore?: Record<string, unknown> };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  manifests = synthesizedManifests();
  withStore = synthesizedManifests({ jobStore: { jetStream: {} } });
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 5 });
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});
afterAll(async () => {
  await mock.close();
});

test('restart backoff: 250 ms doubling per crash in a row, capped at 8 s', () => {
  expect([1, 2, 3, 4, 5, 6, 7, 12].map(restartBackoffMs)).toEqual([250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

test('withNatsUrl points the job store at local NATS: url replaced, credentials dropped, one replica; no job store, unchanged', () => {
  const json = JSON.stringify({ role: 'x', jobStore: { url: 'tls://a:4222,tls://b:4222', credentialsFile: '/c', stream: 'S', consumer: 'C', bucket: 'B', replicas: 3 } });
  expect(JSON.parse(withNatsUrl(json, 'nats://127.0.0.1:4333')).jobStore).toEqual({ url: 'nats://127.0.0.1:4333', stream: 'S', consumer: 'C', bucket: 'B', replicas: 1 });
  const plain = JSON.stringify({ role: 'x' });
  expect(withNatsUrl(plain, 'nats://127.0.0.1:4333')).toBe(plain);
});

test('kill -9 of the entry agent: it comes back with a new pid on the same ports and the entry URL answers jobs again', async () => {
  const lines: string[] = [];
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', onAgentStart: (l) => lines.push(l) });
  const entry = cluster.agents.find((a) => cluster!.entryUrl === a.httpUrl)!;
  const { entryUrl } = cluster;
  const before = entry.pid;
  expect((await postJob(entryUrl, { tasks: tasks(3) })).status).toBe(200);

  const exited = entry.exited;
  cluster.kill(entry.role, 0, 'SIGKILL');
  expect(await exited).toBe('SIGKILL');
  await until('a new entry process', () => (entry.pid !== before ? true : undefined));
  await cluster.ready(entry.role);

  expect(alive(before)).toBe(false);
  expect(entry.restarts).toBe(1);
  expect(cluster.entryUrl).toBe(entryUrl);
  const res = await postJob(entryUrl, { tasks: tasks(5) });
  expect(res.status).toBe(200);
  expect(res.body.success_rate).toBe(1);
  // one line per process start: every pod once at boot, then the entry again with its new pid and its old ports
  expect(lines).toHaveLength(cluster.agents.length + 1);
  expect(lines[lines.length - 1]).toBe(`agent ${entry.name} pid ${entry.pid} http ${entry.httpPort} grpc ${entry.grpcPort}`);
});

test("restartPolicy 'Never' leaves a dead agent dead", async () => {
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', restartPolicy: 'Never' });
  const worker = cluster.agent('task-executor-a');
  const exited = worker.exited;
  cluster.kill('task-executor-a');
  await exited;
  await new Promise((r) => setTimeout(r, restartBackoffMs(1) * 3));
  expect(worker.restarts).toBe(0);
  expect(worker.process.exitCode ?? worker.process.signalCode).toBe('SIGKILL');
});

test('a job store in the configs: local mode starts nats-server, points every config at it, and stops it with the cluster', async () => {
  cluster = await startLocalCluster({ manifests: withStore['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore' });
  const nats = cluster.nats!;
  expect(cluster.natsUrl).toBe(nats.url);
  const nc = await connect({ servers: nats.url });
  await nc.close();
  for (const a of cluster.agents) {
    expect(configOf(a.pid).jobStore).toEqual({ url: nats.url, stream: 'agents-hub-jobs', consumer: 'agents-hub-job-runners', bucket: 'agents-hub-jobs', replicas: 1 });
  }
  const { pid, storeDir } = nats;
  await cluster.stop();
  cluster = undefined;
  expect(alive(pid)).toBe(false);
  expect(existsSync(storeDir)).toBe(false);
});

test('natsUrl: the configs use the given NATS and no server is started', async () => {
  const own = await startTestNats();
  try {
    cluster = await startLocalCluster({ manifests: withStore['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', natsUrl: own.url });
    expect(cluster.nats).toBeUndefined();
    for (const a of cluster.agents) expect(configOf(a.pid).jobStore?.url).toBe(own.url);
    await cluster.stop();
    cluster = undefined;
  } finally {
    await own.stop();
  }
});

describe('the local CLI', () => {
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const done = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await done;
    }
    child = undefined;
  });

  test("prints 'agent <pod> pid <pid> http <port> grpc <port>' per process start, again after a kill -9, then stops everything on SIGTERM", async () => {
    child = spawn(process.execPath, [CLI, 'local', '--manifests', withStore['hub-and-spoke'], '--upstream-url', mock.url], {
      env: { ...process.env, UPSTREAM_API_KEY: API_KEY },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const out: string[] = [];
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      out.push(...parts);
    });
    const ready = await until('the ready line', () => out.find((l) => l.startsWith('ready ')), 90000);
    const agentLines = out.filter((l) => l.startsWith('agent '));
    const roles = agentLines.map((l) => LINE.exec(l)?.[1]);
    expect(agentLines.every((l) => LINE.test(l))).toBe(true);
    expect(roles.sort()).toEqual(['coordinator-0', 'data-retrieval-0', 'task-executor-a-0', 'task-executor-b-0', 'validation-0']);
    // each line names a live agent process serving on the printed HTTP port
    for (const l of agentLines) {
      const [, , pid, http] = LINE.exec(l)!;
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('serve');
      expect((await fetch(`http://127.0.0.1:${http}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
    }
    const natsLine = out.find((l) => l.startsWith('nats '))!;
    const natsPid = Number(/ pid (\d+) /.exec(natsLine)![1]);
    expect(alive(natsPid)).toBe(true);

    const victim = LINE.exec(agentLines.find((l) => l.startsWith('agent task-executor-a-0 '))!)!;
    process.kill(Number(victim[2]), 'SIGKILL');
    const again = await until('a second line for task-executor-a-0', () => out.filter((l) => l.startsWith('agent task-executor-a-0 ')).slice(1)[0]);
    const m = LINE.exec(again)!;
    expect(m[2]).not.toBe(victim[2]);
    expect([m[3], m[4]]).toEqual([victim[3], victim[4]]);
    const entryUrl = ready.slice('ready '.length);
    expect((await postJob(entryUrl, { tasks: tasks(4) })).status).toBe(200);

    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const l of out.filter((x) => LINE.test(x))) expect(alive(Number(LINE.exec(l)![2]))).toBe(false);
    expect(alive(natsPid)).toBe(false);
  });

  test('job store and no nats-server on PATH: exits 1 saying how to install it, starting no agent', async () => {
    child = spawn(process.execPath, [CLI, 'local', '--manifests', withStore['hub-and-spoke'], '--upstream-url', mock.url], {
      env: { ...process.env, UPSTREAM_API_KEY: API_KEY, PATH: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toContain('agent-runtime local: nats-server was not found on PATH (empty): install it with `apt-get install -y nats-server`');
    expect(stderr).toContain('--nats-url');
    expect(stdout).not.toMatch(/^agent /m);
  });

  test('a --nats-url that is not a NATS URL exits 2 naming the flag', async () => {
    child = spawn(process.execPath, [CLI, 'local', '--manifests', manifests['hub-and-spoke'], '--upstream-url', mock.url, '--nats-url', 'http://x:4222'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(stderr).toContain("--nats-url must be a nats:// or tls:// URL, got 'http://x:4222'");
  });
});
