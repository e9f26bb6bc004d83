import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, loadRuntimeSettings, validateAgentConfig } from '../src/config';
import { envFor, workerConfig } from './support/fixtures';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

test('a valid config and environment load', () => {
  const { config, env } = loadRuntimeSettings(envFor(workerConfig()));
  expect(config.role).toBe('task-executor-a');
  expect(env.httpPort).toBe(0);
  expect(env.upstreamBaseUrl).toBe('http://127.0.0.1:9/v1');
});

test('a missing field is named', () => {
  const c = workerConfig() as unknown as Record<string, unknown>;
  delete c.retry;
  const e = configError(() => validateAgentConfig(c));
  expect(e.field).toBe('retry');
  expect(e.message).toMatch(/retry: must have required property 'retry'/);
});

test('a bad nested value is named by its path', () => {
  const c = workerConfig();
  const bad = JSON.parse(JSON.stringify(c));
  bad.catalog['gpt-4.1'].breaker.failureThreshold = 0;
  const e = configError(() => validateAgentConfig(bad));
  expect(e.field).toBe('catalog.gpt-4.1.breaker.failureThreshold');
  expect(e.message).toMatch(/>= 1/);
});

test('an unknown field is named and called unknown', () => {
  const e = configError(() => validateAgentConfig({ ...workerConfig(), colour: 'blue' }));
  expect(e.field).toBe('colour');
  expect(e.message).toMatch(/not a known field/);
});

test('a default model outside allowed is rejected', () => {
  const e = configError(() => validateAgentConfig(workerConfig({ models: { default: 'gpt-4.1', allowed: ['deepseek-v3.2'] } })));
  expect(e.field).toBe('models.default');
});

test('a fallback missing from the catalog is rejected', () => {
  const c = JSON.parse(JSON.stringify(workerConfig()));
  c.catalog['gpt-4.1'].fallbacks = ['nope'];
  expect(configError(() => validateAgentConfig(c)).field).toBe('catalog.gpt-4.1.fallbacks');
});

test.each([
  ['', /is malformed: it is empty/],
  ['sk-abc 123456', /is malformed: it contains whitespace/],
  ['sk-abcdefgh\n', /is malformed: it contains whitespace or a newline/],
  ['YOUR_HOLYSHEEP_API_KEY', /is malformed: it is a placeholder/],
  ['abc', /is malformed: it is 3 characters long/],
])('a malformed API key %j is reported before any call, without echoing it', (key, message) => {
  const e = configError(() => loadRuntimeSettings(envFor(workerConfig(), { UPSTREAM_API_KEY: key })));
  expect(e.field).toBe('UPSTREAM_API_KEY');
  expect(e.message).toMatch(message);
  if (key.trim().length > 3) expect(e.message).not.toContain(key.trim());
});

test('AGENT_ROLE must match the config', () => {
  const e = configError(() => loadRuntimeSettings(envFor(workerConfig(), { AGENT_ROLE: 'validation' })));
  expect(e.field).toBe('AGENT_ROLE');
  expect(e.message).toMatch(/does not match the config's role 'task-executor-a'/);
});

test('a worker without an upstream URL is rejected; a coordinator does not need one', () => {
  const env = envFor(workerConfig());
  delete env.UPSTREAM_BASE_URL;
  expect(configError(() => loadRuntimeSettings(env)).field).toBe('UPSTREAM_BASE_URL');
  const coord = envFor(workerConfig({ role: 'coordinator', kind: 'coordinator' }));
  delete coord.UPSTREAM_BASE_URL;
  delete coord.UPSTREAM_API_KEY;
  expect(loadRuntimeSettings(coord).config.kind).toBe('coordinator');
});

test('a missing config file and a bad port are named', () => {
  expect(configError(() => loadRuntimeSettings({ ...envFor(workerConfig()), AGENT_CONFIG_FILE: '/nonexistent/x.json' })).field).toBe('AGENT_CONFIG_FILE');
  expect(configError(() => loadRuntimeSettings({ ...envFor(workerConfig()), HTTP_PORT: 'eighty' })).field).toBe('HTTP_PORT');
});

describe('a shared peer list (peersFile, as a mesh is synthesized)', () => {
  const peers = [
    { role: 'a', kind: 'peer', address: 'a-grpc.agents.svc.cluster.local:50051', maxInFlightTasks: 16, models: ['gpt-4.1'] },
    { role: 'b', kind: 'peer', address: 'b-grpc.agents.svc.cluster.local:50051', maxInFlightTasks: 8 },
  ];
  const withFile = (peersJson: unknown, patch: Record<string, unknown> = {}) => {
    const env = envFor({ ...workerConfig({ kind: 'peer', topology: 'mesh' }), peers: [], peersFile: 'peers.json', ...patch });
    if (peersJson !== undefined) writeFileSync(path.join(path.dirname(env.AGENT_CONFIG_FILE!), 'peers.json'), JSON.stringify(peersJson));
    return env;
  };

  test('the list beside the config is read and becomes config.peers', () => {
    const { config } = loadRuntimeSettings(withFile(peers));
    expect(config.peers).toEqual(peers);
    expect(config).not.toHaveProperty('peersFile');
  });

  test('a bad entry in the file is named by file and path', () => {
    const e = configError(() => loadRuntimeSettings(withFile([{ ...peers[0], address: 'no port' }])));
    expect(e.field).toBe('peersFile (peers.json): peers.0.address');
    expect(e.message).toMatch(/must match pattern/);
  });

  test('a missing file is named', () => {
    const e = configError(() => loadRuntimeSettings(withFile(undefined)));
    expect(e.field).toBe('peersFile');
    expect(e.message).toMatch(/cannot read '.*peers\.json'/);
  });

  test('a peer list both inline and in a file is refused, and so is a file name that leaves the directory', () => {
    const e = configError(() => loadRuntimeSettings(withFile(peers, { peers })));
    expect(e.field).toBe('peers');
    expect(e.message).toMatch(/must be empty when peersFile \('peers.json'\) holds the list/);
    expect(() => validateAgentConfig({ ...workerConfig(), peers: [], peersFile: '../etc/passwd' })).toThrow(/peersFile/);
  });
});
