import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Testing } from 'cdk8s';
import { AgentDeployment, DEFAULT_AGENT_IMAGE } from '../src';

// One version for the library, the runtime package and the default image tag.

const ROOT = path.join(__dirname, '..');
const readJson = (p: string) => JSON.parse(readFileSync(path.join(ROOT, p), 'utf8'));

test("the default image is tagged with the library's package.json version", () => {
  const { version } = readJson('package.json');
  expect(DEFAULT_AGENT_IMAGE).toBe(`cdk8s-agent-cluster/agent-runtime:${version}`);
  const chart = Testing.chart();
  new AgentDeployment(chart, 'worker', { agentConfigJson: '{}' });
  const deployment = Testing.synth(chart).find((o: { kind: string }) => o.kind === 'Deployment');
  expect(deployment.spec.template.spec.containers[0].image).toBe(`cdk8s-agent-cluster/agent-runtime:${version}`);
});

test('the version is read from package.json, not written into the source', () => {
  const real = jest.requireActual<typeof import('node:fs')>('node:fs');
  jest.isolateModules(() => {
    jest.doMock('node:fs', () => ({
      ...real,
      readFileSync: (p: string, enc: BufferEncoding) => p === path.join(ROOT, 'package.json')
        ? JSON.stringify({ name: 'cdk8s-agent-cluster', version: '7.8.9' })
        : real.readFileSync(p, enc),
    }));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(require('../src/agent-deployment').DEFAULT_AGENT_IMAGE).toBe('cdk8s-agent-cluster/agent-runtime:7.8.9');
  });
  jest.isolateModules(() => {
    jest.doMock('node:fs', () => ({ ...real, readFileSync: () => JSON.stringify({ name: 'someone-else', version: '1.0.0' }) }));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(() => require('../src/version')).toThrow(/is not this package's manifest/);
  });
});

test('the runtime package has the same version and supported Node versions as the library', () => {
  const lib = readJson('package.json');
  const runtime = readJson('agent-runtime/package.json');
  expect(runtime.version).toBe(lib.version);
  expect(lib.engines.node).toBe('^20.19.0 || ^24.0.0');
  expect(runtime.engines.node).toBe(lib.engines.node);
});

test("a release's bump carries the version into the runtime package and unbump resets it", () => {
  const tasks = readJson('.projen/tasks.json').tasks;
  const execs = (name: string): string[] => tasks[name].steps.filter((s: { exec?: string }) => s.exec).map((s: { exec: string }) => s.exec);
  // A copy of the workspace layout with a bumped library version, as `bump` leaves it.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bump-'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'cdk8s-agent-cluster', version: '1.4.0', workspaces: ['agent-runtime'] }));
  mkdirSync(path.join(dir, 'agent-runtime'));
  writeFileSync(path.join(dir, 'agent-runtime', 'package.json'), JSON.stringify({ name: '@cdk8s-agent-cluster/agent-runtime', version: '0.0.0' }));
  const runtimeVersion = () => JSON.parse(readFileSync(path.join(dir, 'agent-runtime', 'package.json'), 'utf8')).version;
  const sh = (cmd: string) => expect(spawnSync('bash', ['-c', cmd], { cwd: dir, encoding: 'utf8' }).status).toBe(0);

  execs('bump').forEach(sh);
  expect(runtimeVersion()).toBe('1.4.0');
  execs('unbump').forEach(sh);
  expect(runtimeVersion()).toBe('0.0.0');
});
