import { Testing } from 'cdk8s';
import { AgentDeployment, AgentNamespace, AgentScaledObject, KedaTrigger, NatsJetStreamCluster, PriorityClass } from '../src';
import { synthTopology, TOPOLOGY_CHARTS } from './support/manifests';
import { withVersionPlaceholder } from './support/version';

// Snapshots of the synthesized YAML are reviewed like code when they change;
// the test task never rewrites them (projen UpdateSnapshot.NEVER).

test.each(Object.keys(TOPOLOGY_CHARTS))('%s topology', (topology) => {
  expect(withVersionPlaceholder(synthTopology(topology))).toMatchSnapshot();
});

test('AgentNamespace with quota and limit range', () => {
  const chart = Testing.chart();
  new AgentNamespace(chart, 'ns', { name: 'agents', quota: { requestsCpu: '20', limitsMemory: '64Gi', pods: 100 }, limitRange: { maxMemory: '4Gi' } });
  expect(Testing.synth(chart)).toMatchSnapshot();
});

test('AgentDeployment alone', () => {
  const chart = Testing.chart();
  new AgentDeployment(chart, 'summarizer', {
    namespace: 'agents',
    replicas: 2,
    agentConfigJson: '{"role":"summarizer"}',
    upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'llm-key' },
    resources: { memoryLimit: '2Gi' },
  });
  expect(withVersionPlaceholder(Testing.synth(chart))).toMatchSnapshot();
});

test('AgentScaledObject on task load and CPU', () => {
  const chart = Testing.chart();
  const d = new AgentDeployment(chart, 'task-executor', { namespace: 'agents', agentConfigJson: '{}' });
  new AgentScaledObject(chart, 'keda', { target: d, minReplicas: 2, maxReplicas: 30, triggers: [KedaTrigger.taskLoad(0.6), KedaTrigger.cpu(75)] });
  expect(Testing.synth(chart).filter((o: { kind: string }) => o.kind === 'ScaledObject')).toMatchSnapshot();
});

test('PriorityClass', () => {
  const chart = Testing.chart();
  new PriorityClass(chart, 'high-priority-agent', { value: 100000, description: 'orchestrators' });
  expect(Testing.synth(chart)).toMatchSnapshot();
});

test('NatsJetStreamCluster (the synthesized job store)', () => {
  const chart = Testing.chart();
  new NatsJetStreamCluster(chart, 'job-store', { clusterName: 'agents', namespace: 'agents' });
  expect(Testing.synth(chart)).toMatchSnapshot();
});
