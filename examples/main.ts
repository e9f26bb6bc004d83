import { buildExampleApp } from './topologies';

// Entry point of `npx cdk8s synth` (see cdk8s.yaml): writes
// dist/hub-and-spoke.k8s.yaml, dist/mesh.k8s.yaml, dist/hierarchical.k8s.yaml.
buildExampleApp(process.env.CDK8S_OUTDIR ?? 'dist').synth();
