import { App, Chart, YamlOutputType } from 'cdk8s';
import { AgentCluster, AgentClusterProps, AgentRoleSpec, Topology, WorkerKind } from '../src';
import { productionChart } from './production';

// The reference deployment's five agents, in each of the three topologies.
// Each topology gets its own namespace so all three can be applied side by side.

/** Settings a variant of the example may change (the fault harness tightens timeouts). */
export type ExampleOverrides = Partial<Omit<AgentClusterProps, 'topology' | 'upstream'>>;

const UPSTREAM = {
  baseUrl: 'https://llm-gateway.example.com/v1',
  apiKeySecretName: 'upstream-api-key',
  apiKeySecretKey: 'api-key',
};

const coordinator: AgentRoleSpec = { name: 'coordinator' };
const workers: AgentRoleSpec[] = [
  { name: 'task-executor-a', workerKind: WorkerKind.TASK_EXECUTOR },
  { name: 'task-executor-b', workerKind: WorkerKind.TASK_EXECUTOR },
  { name: 'data-retrieval', workerKind: WorkerKind.DATA_RETRIEVAL, models: ['gemini-2.5-flash'] },
  { name: 'validation', workerKind: WorkerKind.VALIDATION, models: ['deepseek-v3.2'] },
];

/** hub-and-spoke: the coordinator calls each of the four workers. */
export function hubAndSpokeChart(app: App, overrides: ExampleOverrides = {}): Chart {
  const chart = new Chart(app, 'hub-and-spoke');
  new AgentCluster(chart, 'agents-hub', {
    topology: Topology.hubAndSpoke({ coordinator, workers }),
    upstream: UPSTREAM,
    ...overrides,
  });
  return chart;
}

/** mesh: all five agents are peers; the coordinator is the entry point. */
export function meshChart(app: App, overrides: ExampleOverrides = {}): Chart {
  const chart = new Chart(app, 'mesh');
  new AgentCluster(chart, 'agents-mesh', {
    topology: Topology.mesh({ peers: [coordinator, ...workers], entry: 'coordinator' }),
    upstream: UPSTREAM,
    ...overrides,
  });
  return chart;
}

/** hierarchical: coordinator → two supervisors → their workers. */
export function hierarchicalChart(app: App, overrides: ExampleOverrides = {}): Chart {
  const chart = new Chart(app, 'hierarchical');
  new AgentCluster(chart, 'agents-hierarchical', {
    topology: Topology.hierarchical({
      coordinator,
      supervisors: [
        { name: 'execution-supervisor', reportsTo: 'coordinator' },
        { name: 'quality-supervisor', reportsTo: 'coordinator' },
      ],
      workers: [
        { ...workers[0], reportsTo: 'execution-supervisor' },
        { ...workers[1], reportsTo: 'execution-supervisor' },
        { ...workers[2], reportsTo: 'quality-supervisor' },
        { ...workers[3], reportsTo: 'quality-supervisor' },
      ],
    }),
    upstream: UPSTREAM,
    ...overrides,
  });
  return chart;
}

/**
 * The example app: one file per topology in `outdir` (vanilla: they apply
 * to any cluster), and the production example (needs KEDA and the
 * Prometheus Operator; overrides do not apply to it).
 */
export function buildExampleApp(outdir: string = 'dist', overrides: ExampleOverrides = {}): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  hubAndSpokeChart(app, overrides);
  meshChart(app, overrides);
  hierarchicalChart(app, overrides);
  productionChart(app);
  return app;
}
