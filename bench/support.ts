import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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

/**
 * The mock upstream in a process of its own, as a real upstream is: the load
 * generator and the mock do not share a thread, and the direct baseline
 * crosses a process boundary like the path through the agents does.
 */
export async function startMockProcess(opts: { apiKey: string; latencyMs?: number }): Promise<{ url: string; close(): Promise<void> }> {
  const cli = path.join(path.dirname(require.resolve('@cdk8s-agent-cluster/agent-runtime/package.json')), 'dist', 'cli.js');
  const child = spawn(process.execPath, [cli, 'mock-upstream', '--port', '0', '--api-key', opts.apiKey, '--latency-ms', String(opts.latencyMs ?? 0)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`mock-upstream exited (${code}) before listening`)));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
  });
  child.removeAllListeners('exit');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
