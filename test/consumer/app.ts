import { App, Chart, ChartProps } from 'cdk8s';
// The package's own name: resolved from the installed tarball in the consumer
// app, and mapped to src/ (jest moduleNameMapper) for the from-source run.
// eslint-disable-next-line import/no-unresolved
import { AgentCluster, AgentDeployment, ModelCatalog, Topology, WorkerKind } from 'cdk8s-agent-cluster';
import { Construct } from 'constructs';

// A small app written the way a user writes one against the published
// package. packed.consumer.ts compiles it with tsc --strict in a fresh folder
// outside this repository and synthesizes it there, then synthesizes it again
// from source here, and requires the two outputs to be identical.

class ResearchAgents extends Chart {
  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, props);
    const catalog = ModelCatalog.defaults().withModel({
      id: 'local-llama',
      inputUsdPerMTok: 0.1,
      contextWindowTokens: 32000,
      reserveTokens: 1000,
    });
    new AgentCluster(this, 'research', {
      topology: Topology.hubAndSpoke({
        coordinator: { name: 'planner' },
        workers: [
          { name: 'searcher', workerKind: WorkerKind.DATA_RETRIEVAL, models: ['local-llama'] },
          { name: 'writer', workerKind: WorkerKind.TASK_EXECUTOR },
        ],
      }),
      upstream: { baseUrl: 'https://llm.internal.example.com/v1', apiKeySecretName: 'llm' },
      catalog,
    });
  }
}

class Summarizer extends Chart {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    // The image from a private registry, as the README describes.
    new AgentDeployment(this, 'summarizer', {
      namespace: 'tools',
      agentConfigJson: '{"role":"summarizer"}',
      image: 'registry.example.com/agents/agent-runtime:1.2.3',
    });
  }
}

/** Builds the app; without an outdir cdk8s writes to ./dist (or $CDK8S_OUTDIR). */
export function buildApp(outdir?: string): App {
  const app = new App(outdir === undefined ? {} : { outdir });
  new ResearchAgents(app, 'research');
  new Summarizer(app, 'summarizer');
  return app;
}
