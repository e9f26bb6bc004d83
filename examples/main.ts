import { buildExampleApp, ExampleOverrides } from './topologies';

// Entry point of `npx cdk8s synth` (see cdk8s.yaml): writes
// dist/hub-and-spoke.k8s.yaml, dist/mesh.k8s.yaml, dist/hierarchical.k8s.yaml
// and dist/production.k8s.yaml.
// AGENT_EXAMPLE_OVERRIDES (JSON) lets the fault harness synthesize a variant
// with tighter timeouts; `cdk8s synth` never sets it.
const overrides = process.env.AGENT_EXAMPLE_OVERRIDES ? (JSON.parse(process.env.AGENT_EXAMPLE_OVERRIDES) as ExampleOverrides) : {};
buildExampleApp(process.env.CDK8S_OUTDIR ?? 'dist', overrides).synth();
