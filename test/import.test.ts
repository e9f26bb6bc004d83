import { readFileSync, readdirSync, mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart, Testing } from 'cdk8s';
// Imported the way another app would: through the package's entry point only.
import { buildExampleApp } from '../examples/topologies';
import * as lib from '../src';

test("another app's chart can compose the public API and synthesize it", () => {
  const app = new App({ outdir: mkdtempSync(path.join(os.tmpdir(), 'import-')) });
  class MyAgents extends Chart {
    constructor() {
      super(app, 'my-agents');
      const catalog = lib.ModelCatalog.defaults().withModel({ id: 'local-llama', inputUsdPerMTok: 0.1, contextWindowTokens: 32000, reserveTokens: 1000 });
      new lib.AgentCluster(this, 'research', {
        topology: lib.Topology.hubAndSpoke({
          coordinator: { name: 'planner' },
          workers: [{ name: 'searcher', workerKind: lib.WorkerKind.DATA_RETRIEVAL, models: ['local-llama'] }],
        }),
        upstream: { baseUrl: 'https://llm.internal.example.com/v1', apiKeySecretName: 'llm' },
        catalog,
      });
    }
  }
  const chart = new MyAgents();
  const objs = Testing.synth(chart);
  const config = JSON.parse(objs.find((o: any) => o.kind === 'ConfigMap' && o.metadata.name === 'searcher-config').data['agent-config.json']);
  expect(config.models.allowed).toEqual(['local-llama']);
  expect(config.catalog['local-llama'].contextWindowTokens).toBe(32000);
  app.synth();
  expect(readdirSync(app.outdir)).toEqual(['my-agents.k8s.yaml']);
});

test('the committed dist/*.k8s.yaml match a fresh synth of the example app', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dist-'));
  buildExampleApp(dir).synth();
  const files = readdirSync(dir).sort();
  expect(files).toEqual(['hierarchical.k8s.yaml', 'hub-and-spoke.k8s.yaml', 'mesh.k8s.yaml', 'production.k8s.yaml']);
  for (const f of files) {
    const committed = readFileSync(path.join(__dirname, '..', 'dist', f), 'utf8');
    expect({ file: f, same: readFileSync(path.join(dir, f), 'utf8') === committed }).toEqual({ file: f, same: true });
  }
});
