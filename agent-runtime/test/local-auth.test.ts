import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withLocalAuth } from '../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { synthesizedManifests } from './support/cluster';
import { envFor, workerConfig } from './support/fixtures';

// `agent-runtime local` and API keys: the entry's Secret mount is replaced
// by --api-keys, or the API runs open and local mode says so on stdout.

const CLI = path.resolve(__dirname, '..', 'dist', 'cli.js');

test('withLocalAuth points api-keys at the given file, or opens the API without one; other configs are unchanged', () => {
  const entry = JSON.stringify({ role: 'coordinator', auth: { mode: 'api-keys', keysFile: '/var/run/agent-runtime/api-keys/keys.json' } });
  expect(JSON.parse(withLocalAuth(entry, 'keys.json')).auth).toEqual({ mode: 'api-keys', keysFile: path.resolve('keys.json') });
  expect(JSON.parse(withLocalAuth(entry, undefined)).auth).toEqual({ mode: 'none' });
  const worker = JSON.stringify({ role: 'w' });
  expect(withLocalAuth(worker, 'keys.json')).toBe(worker);
});

test('a bad --api-keys file stops local mode before any agent starts, naming the option and the entry', () => {
  const keys = path.join(mkdtempSync(path.join(os.tmpdir(), 'keys-')), 'keys.json');
  writeFileSync(keys, JSON.stringify([{ tenant: 'team-a', key_sha256: 'abc' }]));
  const r = spawnSync(process.execPath, [CLI, 'local', '--manifests', synthesizedManifests()['hub-and-spoke'], '--upstream-url', 'http://127.0.0.1:9/v1', '--api-keys', keys], { encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/agent-runtime local: --api-keys \(.*keys\.json\): entry 0\.key_sha256: must be the 64 hex digits of sha256\(key\)/);
  expect(r.stdout).toBe('');
});

test('serve: a keys file that cannot be read is one line naming auth.keysFile, not a stack', () => {
  const r = spawnSync(process.execPath, [CLI, 'serve'], { env: { ...process.env, ...envFor(workerConfig({ auth: { mode: 'api-keys', keysFile: '/nonexistent/keys.json' } })) }, encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr.trim()).toBe("agent-runtime: invalid configuration: auth.keysFile: cannot read '/nonexistent/keys.json': ENOENT");
});

describe('without --api-keys', () => {
  let mock: MockUpstream;
  beforeAll(async () => {
    mock = await startMockUpstream({ apiKey: 'sk-local-auth-123456' });
  });
  afterAll(() => mock.close());

  test('local mode says on stdout that the entry API is open, and it is', async () => {
    const child = spawn(process.execPath, [CLI, 'local', '--manifests', synthesizedManifests()['hub-and-spoke'], '--upstream-url', mock.url], {
      env: { ...process.env, UPSTREAM_API_KEY: 'sk-local-auth-123456' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      let out = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /^ready (\S+)$/m.exec(out);
          if (m) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`local exited ${code}: ${out}`)));
      });
      expect(out.split('\n')).toContain('api keys: none (no --api-keys): the entry API is open to anyone who reaches it');
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', body: JSON.stringify({ tasks: [{ prompt: 'hello there' }] }) });
      expect(res.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 120_000);
});
