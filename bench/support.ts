import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart, YamlOutputType } from 'cdk8s';
import { Construct } from 'constructs';
import { Pool } from 'undici';

/** Percentile of a sorted-ascending copy of `xs` (nearest rank). */
export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Runs `total` calls of `fn` with `concurrency` in flight; returns each call's ms and the wall time. */
export async function load(total: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<{ latencies: number[]; wallMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = performance.now();
        await fn(i);
        latencies.push(performance.now() - s);
      }
    }),
  );
  return { latencies, wallMs: performance.now() - t0 };
}

/** A keep-alive JSON POST client, the same for the baseline and the measured path. */
export function poster(origin: string, connections: number) {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  return {
    async post(pathname: string, body: unknown, headers: Record<string, string> = {}): Promise<any> {
      const res = await pool.request({ method: 'POST', path: pathname, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      const json = await res.body.json();
      if (res.statusCode !== 200) throw new Error(`${pathname} ${res.statusCode}: ${JSON.stringify(json)}`);
      return json;
    },
    close: () => pool.close(),
  };
}

/** Synthesizes one chart built by `build` to a temp file and returns its path. */
export function synthToFile(name: string, build: (chart: Construct) => void): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const app = new App({ outdir: dir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  build(new Chart(app, name));
  app.synth();
  return path.join(dir, `${name}.k8s.yaml`);
}

export function writeJson(file: string, data: unknown): void {
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}

export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** A child process of the benchmark that prints `listening <url>` once it serves. */
export interface ChildServer {
  readonly url: string;
  readonly pid: number;
  close(): Promise<void>;
}

async function startChildServer(name: string, args: string[]): Promise<ChildServer> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before listening`)));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
  });
  child.removeAllListeners('exit');
  return {
    url,
    pid: child.pid!,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * The mock upstream in a process of its own, as a real upstream is: the load
 * generator and the mock do not share a thread, and the direct baseline
 * crosses a process boundary like the path through the agents does.
 */
export function startMockProcess(opts: { apiKey: string; latencyMs?: number }): Promise<ChildServer> {
  const cli = path.join(path.dirname(require.resolve('@cdk8s-agent-cluster/agent-runtime/package.json')), 'dist', 'cli.js');
  return startChildServer('mock-upstream', [cli, 'mock-upstream', '--port', '0', '--api-key', opts.apiKey, '--latency-ms', String(opts.latencyMs ?? 0)]);
}

/** A do-nothing HTTP relay (bench/relay.ts) in a process of its own, forwarding to `origin`. */
export function startRelayProcess(origin: string): Promise<ChildServer> {
  return startChildServer('relay', ['-r', 'ts-node/register/transpile-only', path.join(__dirname, 'relay.ts'), origin]);
}

// Clock ticks per second of /proc/<pid>/stat's CPU times (100 on Linux almost always).
let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system, ms) process `pid` has used so far, from /proc; undefined where there is no /proc. */
export function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * CPU used by each named process while `fn` runs, in µs per `units` (per
 * request). Lets a benchmark show where the time of a CPU-bound path goes,
 * measured in the same run as the latencies.
 */
export async function withCpu<T>(
  pids: Record<string, number>,
  units: number,
  fn: () => Promise<T>,
): Promise<{ result: T; cpuUs: Record<string, number> | undefined }> {
  const before = Object.entries(pids).map(([name, pid]) => [name, cpuMsOf(pid)] as const);
  const result = await fn();
  if (before.some(([, ms]) => ms === undefined)) return { result, cpuUs: undefined };
  const cpuUs = Object.fromEntries(before.map(([name, ms]) => [name, round(((cpuMsOf(pids[name])! - ms!) * 1000) / units, 0)]));
  return { result, cpuUs };
}

/** Latencies and CPU (µs per call, by process) of one side of {@link alternate}. */
export interface Side {
  readonly latencies: number[];
  /** Wall time of each round, in order. */
  readonly roundWallMs: number[];
  readonly cpuUs: Record<string, number> | undefined;
}

/**
 * Runs each of `fns` in turn, `rounds` times over, each round `perRound`
 * calls at `concurrency`, so that a slow spell of the machine falls on every
 * side; pools each side's latencies, keeps each round's wall time, and
 * averages its CPU per call (over the processes in `pids`, which may be none).
 */
export async function alternate(
  rounds: number,
  perRound: number,
  concurrency: number,
  pids: Record<string, number>,
  fns: Array<(i: number) => Promise<void>>,
): Promise<Side[]> {
  type Cpu = Record<string, number> | undefined;
  const sides = fns.map((fn) => ({ fn, latencies: [] as number[], roundWallMs: [] as number[], cpu: [] as Cpu[] }));
  for (let r = 0; r < rounds; r++) {
    for (const side of sides) {
      const { result, cpuUs } = await withCpu(pids, perRound, () => load(perRound, concurrency, side.fn));
      side.latencies.push(...result.latencies);
      side.roundWallMs.push(result.wallMs);
      side.cpu.push(cpuUs);
    }
  }
  const mean = (xs: Cpu[]) => {
    if (xs.some((x) => !x)) return undefined;
    return Object.fromEntries(Object.keys(pids).map((k) => [k, round(xs.reduce((acc, x) => acc + x![k], 0) / xs.length, 0)]));
  };
  return sides.map((side) => ({ latencies: side.latencies, roundWallMs: side.roundWallMs, cpuUs: mean(side.cpu) }));
}

/**
 * An ideal FIFO of `slots` in the load generator itself: `run(fn)` waits its
 * turn in arrival order, then runs `fn` in a slot; a freed slot goes to the
 * head at once. In front of direct calls it is the overload baseline with
 * the upstream's real service times and no hops (the formula,
 * service time x ceil(clients / slots), assumes every call takes the median).
 */
export function fifoGate(slots: number) {
  let free = slots;
  const waiting: Array<() => void> = [];
  return async function run<T>(fn: () => Promise<T>): Promise<T> {
    if (free > 0 && waiting.length === 0) free -= 1;
    else await new Promise<void>((r) => waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free += 1;
    }
  };
}
