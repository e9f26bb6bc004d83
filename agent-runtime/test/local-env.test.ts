import { containerEnv, EnvVar } from '../src/local/launcher';

const vars: EnvVar[] = [
  { name: 'AGENT_ROLE', value: 'data-retrieval' },
  { name: 'AGENT_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  { name: 'UPSTREAM_API_KEY', valueFrom: { secretKeyRef: { name: 'upstream-api-key', key: 'api-key' } } },
  { name: 'MCP_SEARCH_TOKEN', valueFrom: { secretKeyRef: { name: 'search-token', key: 'token' } } },
];

test('local mode fills the upstream key, never into an MCP bearer token from another Secret', () => {
  const env = containerEnv('data-retrieval', vars, 'data-retrieval-0', 'sk-local-test-key');
  expect(env).toEqual({ AGENT_ROLE: 'data-retrieval', AGENT_ID: 'data-retrieval-0', UPSTREAM_API_KEY: 'sk-local-test-key' });
  expect(Object.values(env).filter((v) => v === 'sk-local-test-key')).toHaveLength(1);
});

test('a missing upstream key is a clear error naming the Secret', () => {
  expect(() => containerEnv('w', vars, 'w-0', undefined)).toThrow("UPSTREAM_API_KEY comes from Secret 'upstream-api-key' (key 'api-key'): set UPSTREAM_API_KEY in the environment for local mode");
});

test('an env source local mode cannot provide is named', () => {
  expect(() => containerEnv('w', [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }], 'w-0', 'k')).toThrow("Deployment 'w': env X uses a source local mode cannot provide");
});
