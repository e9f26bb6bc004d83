import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { envFor, workerConfig } from './support/fixtures';

const PKG = path.resolve(__dirname, '..');
const CLI = path.join(PKG, 'dist', 'cli.js');

test('serve with a bad config exits 1 naming the field', () => {
  const bad = { ...workerConfig(), fanOut: { concurrency: 0 } };
  const r = spawnSync(process.execPath, [CLI, 'serve'], { env: { ...process.env, ...envFor(bad) }, encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('invalid configuration: fanOut.concurrency: must be >= 1');
});

test('serve with a malformed key exits 1 before any call', () => {
  const r = spawnSync(process.execPath, [CLI, 'serve'], { env: { ...process.env, ...envFor(workerConfig(), { UPSTREAM_API_KEY: 'YOUR_API_KEY' }) }, encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('UPSTREAM_API_KEY: is malformed');
});

test('an unknown command exits 2 with usage', () => {
  const r = spawnSync(process.execPath, [CLI, 'launch'], { encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/unknown command 'launch'[\s\S]*serve/);
});

test("the image's start command (node dist/cli.js serve) serves /healthz and exits 0 on SIGTERM", async () => {
  const env = { ...process.env, ...envFor(workerConfig()), HTTP_PORT: '0' };
  // Learn the port from the boot log line.
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"httpPort":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { connection: 'close' } });
  expect(res.status).toBe(200);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } })).text();
  expect(metrics).toContain('agent_circuit_breaker_state');
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
});

test('the Dockerfile builds on the pinned Node 24 LTS, runs as a numeric non-root user with the CLI entrypoint and no HEALTHCHECK', () => {
  const docker = readFileSync(path.join(PKG, 'Dockerfile'), 'utf8');
  const users = [...docker.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  expect(users.length).toBeGreaterThan(0);
  const uid = users[users.length - 1].split(':')[0];
  expect(uid).toMatch(/^\d+$/);
  expect(Number(uid)).toBeGreaterThan(0);
  expect(docker).toMatch(/ENTRYPOINT \["node", "\/app\/dist\/cli.js"\]/);
  expect(docker).toMatch(/CMD \["serve"\]/);
  expect(docker).not.toMatch(/^HEALTHCHECK/m);
  expect(docker).toMatch(/--omit=dev/);
  // Every stage on the same pinned Node 24 LTS release: the one the runtime's
  // suites also run on in npm test (build-tools/node24.sh).
  const node24 = /^NODE24_VERSION=(\S+)$/m.exec(readFileSync(path.join(PKG, '..', 'build-tools', 'node24.sh'), 'utf8'))![1];
  expect(node24).toMatch(/^24\.\d+\.\d+$/);
  const bases = [...docker.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  expect(bases.length).toBe(3);
  for (const base of bases) expect(base).toMatch(new RegExp(`^node:${node24.replace(/\./g, '\\.')}-[a-z]+-slim$`));
});
