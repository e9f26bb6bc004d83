import { App, Chart, YamlOutputType } from 'cdk8s';
import { AgentCluster, AgentClusterProps, AgentRoleSpec, McpServer, Topology, WorkerKind } from '../src';
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

/**
 * The in-repo docs MCP server (`agent-runtime mcp-docs`), deployed in its own
 * namespace; only the data-retrieval role may reach it.
 */
export const DOCS_MCP_SERVER = McpServer.inCluster({
  name: 'docs',
  url: 'http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp',
  namespace: 'agents-tools',
  podLabels: { 'app.kubernetes.io/name': 'docs-mcp' },
  port: 8000,
});

const EXECUTOR_INSTRUCTIONS = [
  'You are a task-execution agent in a team of agents.',
  'Each request is one task; it may include facts another agent gathered for you.',
  'Do what the task asks, in the format it asks for, and keep the answer short and complete.',
  'Rely on the facts you are given and on what you know with confidence; when something the task needs is missing, name it instead of guessing.',
  'When a reviewer sends feedback on your earlier answer, revise that answer so that every point of the feedback is addressed.',
].join(' ');

const RETRIEVAL_INSTRUCTIONS = [
  'You are the data-retrieval agent: you gather facts for the other agents, you do not write their final answers.',
  'Search the documentation tools for the topic you are given and open the most relevant documents before you answer.',
  'Reply with a short list of facts, each followed by the id of the document it comes from.',
  'If the documents do not cover the topic, say so plainly; never invent a fact or a source.',
].join(' ');

const VALIDATION_INSTRUCTIONS = [
  "You are the validation agent: you judge another agent's answer against the task it was given.",
  'Check it for factual errors, claims the supplied facts do not support, parts of the task left undone, and unclear wording.',
  'Pass it only when it can be used as it is.',
  'Otherwise fail it with specific feedback that its author can act on in one revision; do not rewrite the answer yourself.',
].join(' ');

// Coordination happens in code in hub-and-spoke and hierarchical (the
// coordinator and supervisors dispatch and make no model calls, so they take
// no instructions). In the mesh the entry is a peer that also executes tasks
// itself: that is where the coordination text applies.
const MESH_ENTRY_INSTRUCTIONS = [
  'You are the entry agent of a mesh of peers that share the work of each job.',
  'When a task is answered by you rather than by a specialist peer, work as a careful generalist: answer what you can,',
  'and say plainly when the task needs facts looked up, a specialist, or a review before its answer can be trusted.',
].join(' ');

const coordinator: AgentRoleSpec = { name: 'coordinator' };
const workers: AgentRoleSpec[] = [
  { name: 'task-executor-a', workerKind: WorkerKind.TASK_EXECUTOR, instructions: EXECUTOR_INSTRUCTIONS, temperature: 0.7 },
  { name: 'task-executor-b', workerKind: WorkerKind.TASK_EXECUTOR, instructions: EXECUTOR_INSTRUCTIONS, temperature: 0.7 },
  {
    name: 'data-retrieval',
    workerKind: WorkerKind.DATA_RETRIEVAL,
    models: ['gemini-2.5-flash'],
    instructions: RETRIEVAL_INSTRUCTIONS,
    temperature: 0,
    mcpServers: [DOCS_MCP_SERVER],
  },
  { name: 'validation', workerKind: WorkerKind.VALIDATION, models: ['deepseek-v3.2'], instructions: VALIDATION_INSTRUCTIONS, temperature: 0 },
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
    topology: Topology.mesh({ peers: [{ ...coordinator, instructions: MESH_ENTRY_INSTRUCTIONS }, ...workers], entry: 'coordinator' }),
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
