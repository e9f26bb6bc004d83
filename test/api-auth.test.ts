import { Testing } from 'cdk8s';
import fc from 'fast-check';
import { AgentCluster, AgentClusterProps, ApiAuth, Topology } from '../src';
import { agentConfigErrors, K8sObject, podTemplates, restrictedViolations, validateK8s } from './support/manifests';

const upstream = { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'upstream-api-key' };
const topology = Topology.hubAndSpoke({ coordinator: { name: 'coordinator' }, workers: [{ name: 'worker-a' }, { name: 'worker-b' }] });

function synth(props: Partial<AgentClusterProps> = {}): K8sObject[] {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', { topology, upstream, ...props });
  return Testing.synth(chart) as K8sObject[];
}
function synthError(props: Partial<AgentClusterProps>): string {
  try {
    synth(props);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}
const configOf = (objs: K8sObject[], role: string) => JSON.parse(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${role}-config`)!.data['agent-config.json']);
const podOf = (objs: K8sObject[], role: string) => podTemplates(objs).find((p) => p.owner === role)!.spec;

test('by default the entry requires API keys from the Secret <cluster>-api-keys, mounted read-only into the entry only', () => {
  const objs = synth();
  expect(configOf(objs, 'coordinator').auth).toEqual({ mode: 'api-keys', keysFile: '/var/run/agent-runtime/api-keys/keys.json' });
  const pod = podOf(objs, 'coordinator');
  expect(pod.volumes).toContainEqual({ name: 'api-keys', secret: { secretName: 'agents-api-keys', items: [{ key: 'keys.json', path: 'keys.json' }], defaultMode: 0o440 } });
  expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'api-keys', mountPath: '/var/run/agent-runtime/api-keys', readOnly: true });
  for (const role of ['worker-a', 'worker-b']) {
    expect(configOf(objs, role).auth).toBeUndefined();
    expect(JSON.stringify(podOf(objs, role))).not.toContain('api-keys');
  }
  // referenced, never carried: no Secret object, no ConfigMap or env literal holds keys
  expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
  expect(JSON.stringify(objs.filter((o) => o.kind === 'ConfigMap'))).not.toContain('key_sha256');
  for (const o of objs) validateK8s(o);
  for (const p of podTemplates(objs)) expect(restrictedViolations(p.spec)).toEqual([]);
});

test('a named Secret and key', () => {
  const objs = synth({ apiAuth: ApiAuth.apiKeys({ secretName: 'tenant-keys', secretKey: 'tenants.json' }) });
  expect(configOf(objs, 'coordinator').auth).toEqual({ mode: 'api-keys', keysFile: '/var/run/agent-runtime/api-keys/tenants.json' });
  expect(podOf(objs, 'coordinator').volumes).toContainEqual({ name: 'api-keys', secret: { secretName: 'tenant-keys', items: [{ key: 'tenants.json', path: 'tenants.json' }], defaultMode: 0o440 } });
});

test('ApiAuth.none() turns auth off for a trusted namespace: the config says so and nothing is mounted', () => {
  const objs = synth({ apiAuth: ApiAuth.none() });
  expect(configOf(objs, 'coordinator').auth).toEqual({ mode: 'none' });
  expect(JSON.stringify(podOf(objs, 'coordinator'))).not.toContain('api-keys');
});

test('clusterHourlyBudgetUsd goes into every role config; absent, no budgets field', () => {
  const objs = synth({ clusterHourlyBudgetUsd: 12.5 });
  for (const role of ['coordinator', 'worker-a', 'worker-b']) {
    expect(configOf(objs, role).budgets).toEqual({ clusterHourlyUsd: 12.5 });
    expect(agentConfigErrors(configOf(objs, role))).toEqual([]);
  }
  expect(configOf(synth(), 'worker-a').budgets).toBeUndefined();
});

test('property: every accepted budget and Secret naming yields schema-valid configs', () => {
  fc.assert(
    fc.property(
      fc.option(fc.double({ min: 0.000001, max: 1e6, noNaN: true }), { nil: undefined }),
      fc.option(fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/), { nil: undefined }),
      fc.boolean(),
      (hourly, secretName, open) => {
        const objs = synth({ clusterHourlyBudgetUsd: hourly, apiAuth: open ? ApiAuth.none() : ApiAuth.apiKeys({ secretName }) });
        for (const role of ['coordinator', 'worker-a']) expect(agentConfigErrors(configOf(objs, role))).toEqual([]);
      },
    ),
    { numRuns: 25 },
  );
});

test.each([
  [{ clusterHourlyBudgetUsd: 0 }, /clusterHourlyBudgetUsd: 0 is not a number of USD above 0\. Fix: set the most the cluster may spend per hour/],
  [{ clusterHourlyBudgetUsd: Number.POSITIVE_INFINITY }, /clusterHourlyBudgetUsd: Infinity is not a number of USD above 0/],
  [{ apiAuth: ApiAuth.apiKeys({ secretName: 'Bad_Name' }) }, /apiAuth\.secretName: 'Bad_Name' is not a valid Secret name\. Fix: /],
  [{ apiAuth: ApiAuth.apiKeys({ secretKey: 'keys/json' }) }, /apiAuth\.secretKey: 'keys\/json' is not a valid Secret key\. Fix: /],
])('bad values fail synth with one line naming the path and the field (%#)', (props, message) => {
  const msg = synthError(props as Partial<AgentClusterProps>);
  expect(msg).toMatch(message);
  expect(msg).toMatch(/\[?.*agents/);
  expect(msg.split('\n').filter((l) => l.includes('Fix:'))).toHaveLength(1);
});

test('the alert rules include "budget nearly spent" on the remaining share of each tenant and cluster budget', () => {
  const objs = synth({ monitoring: {} });
  const rules = objs.find((o) => o.kind === 'PrometheusRule')!.spec.groups.flatMap((g: { rules: Array<{ alert: string; expr: string; labels: Record<string, string> }> }) => g.rules);
  const alert = rules.find((a: { alert: string }) => a.alert === 'AgentBudgetNearlySpent');
  expect(alert.expr).toBe('min by (budget, tenant) (agent_budget_remaining_usd{namespace="agents"} / agent_budget_limit_usd{namespace="agents"}) < 0.1');
  const tighter = synth({ monitoring: { budgetAlertRemainingFraction: 0.25 } });
  expect(JSON.stringify(tighter.find((o) => o.kind === 'PrometheusRule'))).toContain(') < 0.25');
  expect(synthError({ monitoring: { budgetAlertRemainingFraction: 1.5 } })).toMatch(/budgetAlertRemainingFraction: 1\.5 is not a fraction/);
});
