import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// .ci/run in a sandbox: a copy of the script, and a PATH of stubs that log
// each call, so the order of installs and the test command are checked
// without installing anything.

const ROOT = path.resolve(__dirname, '..');

function runCi(stubs: { natsServer: boolean; aptInstallFailsFirst?: boolean }): { status: number | null; calls: string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ci-run-'));
  try {
    mkdirSync(path.join(dir, 'repo', '.ci'), { recursive: true });
    cpSync(path.join(ROOT, '.ci', 'run'), path.join(dir, 'repo', '.ci', 'run'));
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    const log = path.join(dir, 'calls.log');
    const stub = (name: string, body = '') => {
      writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >> '${log}'\n${body}\n`);
      chmodSync(path.join(bin, name), 0o755);
    };
    stub('npm');
    // the first install fails (a stale package index) when asked to, later ones work
    stub('apt-get', stubs.aptInstallFailsFirst ? `if [ "$1" = install ] && [ ! -e '${dir}/updated' ]; then exit 100; fi; if [ "$1" = update ]; then touch '${dir}/updated'; fi` : '');
    if (stubs.natsServer) stub('nats-server');
    // only the stubs and the shell's own tools: /usr/sbin (where Debian puts nats-server) is left out
    const r = spawnSync('/bin/bash', [path.join(dir, 'repo', '.ci', 'run')], { env: { PATH: `${bin}:/bin:/usr/bin` }, encoding: 'utf8' });
    let calls: string[] = [];
    try {
      calls = readFileSync(log, 'utf8').trim().split('\n');
    } catch {
      // nothing was called
    }
    return { status: r.status, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('.ci/run installs nats-server when it is missing, before npm ci, then runs the README test command', () => {
  expect(runCi({ natsServer: false })).toEqual({ status: 0, calls: ['apt-get install -y nats-server', 'npm ci', 'npm test'] });
});

test('.ci/run refreshes the package index only when the install fails', () => {
  expect(runCi({ natsServer: false, aptInstallFailsFirst: true })).toEqual({
    status: 0,
    calls: ['apt-get install -y nats-server', 'apt-get update', 'apt-get install -y nats-server', 'npm ci', 'npm test'],
  });
});

test('.ci/run leaves an installed nats-server alone', () => {
  expect(runCi({ natsServer: true })).toEqual({ status: 0, calls: ['npm ci', 'npm test'] });
});

test("the test command .ci/run calls is the README's", () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const twoCommands = readme.slice(readme.indexOf('## Two commands'));
  const testLine = /^(npm test)\s/m.exec(twoCommands.slice(0, twoCommands.indexOf('```', twoCommands.indexOf('```') + 3)))?.[1];
  const script = readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').trim().split('\n');
  expect(testLine).toBe('npm test');
  expect(script[script.length - 1]).toBe(testLine);
});
