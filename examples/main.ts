import { buildExampleApp, ExampleOverrides } from './topologies';
import { ExternalJobStoreOptions, JetStreamJobStoreOptions, JobStore } from '../src';

// Entry point of `npx cdk8s synth` (see cdk8s.yaml): writes
// dist/hub-and-spoke.k8s.yaml, dist/mesh.k8s.yaml, dist/hierarchical.k8s.yaml
// and dist/production.k8s.yaml.
// AGENT_EXAMPLE_OVERRIDES (JSON) lets the fault harness synthesize a variant
// with tighter timeouts; `cdk8s synth` never sets it.
// JSON cannot carry a JobStore: `"jobStore": { "jetStream": {...} }` or
// `{ "external": {...} }` stands for JobStore.jetStream(...) / .external(...).
const raw = process.env.AGENT_EXAMPLE_OVERRIDES ? (JSON.parse(process.env.AGENT_EXAMPLE_OVERRIDES) as Record<string, unknown>) : {};
const store = raw.jobStore as { jetStream?: JetStreamJobStoreOptions; external?: ExternalJobStoreOptions } | undefined;
const overrides: ExampleOverrides = {
  ...raw,
  jobStore: store?.external ? JobStore.external(store.external) : store?.jetStream ? JobStore.jetStream(store.jetStream) : undefined,
};
buildExampleApp(process.env.CDK8S_OUTDIR ?? 'dist', overrides).synth();
