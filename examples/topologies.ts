import { App, Chart, YamlOutputType } from 'cdk8s';
import { AgentCluster, AgentRoleSpec, Topology, WorkerKind } from '../src';

// The reference deployment's five agents, in each of the three topologies.
// Each topology gets its own namespace so all three can be applied side by side.

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
export function hubAndSpokeChart(app: App): Chart {
  const chart = new Chart(app, 'hub-and-spoke');
  new AgentCluster(chart, 'agents-hub', {
    topology: Topology.hubAndSpoke({ coordinator, workers }),
    upstream: UPSTREAM,
  });
  return chart;
}

/** mesh: all five agents are peers; the coordinator is the entry point. */
export function meshChart(app: App): Chart {
  const chart = new Chart(app, 'mesh');
  new AgentCluster(chart, 'agents-mesh', {
    topology: Topology.mesh({ peers: [coordinator, ...workers], entry: 'coordinator' }),
    upstream: UPSTREAM,
  });
  return chart;
}

/** hierarchical: coordinator → two supervisors → their workers. */
export function hierarchicalChart(app: App): Chart {
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
  });
  return chart;
}

/** The example app: one file per topology in `outdir`. */
export function buildExampleApp(outdir: string = 'dist'): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  hubAndSpokeChart(app);
  meshChart(app);
  hierarchicalChart(app);
  return app;
}
