import { tarballProblems } from './consumer/tarball';

// The check the consumer test (test/consumer/packed.consumer.ts) runs on the
// packed tarball, here on small made-up packages.

const manifest = {
  name: 'pkg',
  main: 'lib/index.js',
  types: 'lib/index.d.ts',
  license: 'Apache-2.0',
  jsii: { outdir: 'dist' },
  peerDependencies: { cdk8s: '^2', constructs: '^10' },
};

function complete(): Map<string, string> {
  return new Map([
    ['package.json', JSON.stringify(manifest)],
    ['.jsii', '{}'],
    ['LICENSE', 'license'],
    ['README.md', '# pkg'],
    ['lib/index.js', 'const a = require("./topology");\nconst c = require("cdk8s");\nconst fs = require("node:fs");\nconst p = require("path");\n'],
    ['lib/index.d.ts', "export * from './topology';\nimport { Chart } from 'cdk8s';\n"],
    ['lib/topology.js', 'const u = require("./util/index");\n'],
    ['lib/topology.d.ts', 'export declare function f(): import("./util").U;\n'],
    ['lib/util/index.js', ''],
    ['lib/util/index.d.ts', 'export type U = string;\n'],
  ]);
}

test('a complete package has no problems', () => {
  expect(tarballProblems(complete())).toEqual([]);
});

test('a compiled module another one requires is missing', () => {
  const files = complete();
  files.delete('lib/topology.js');
  expect(tarballProblems(files)).toEqual(["lib/topology.js is missing (lib/index.js imports './topology')"]);
});

test('a declaration file the types import is missing', () => {
  const files = complete();
  files.delete('lib/util/index.d.ts');
  expect(tarballProblems(files)).toEqual(["lib/util.d.ts is missing (lib/topology.d.ts imports './util')"]);
});

test('main, types, the jsii assembly, the license and the readme are required', () => {
  for (const f of ['lib/index.d.ts', '.jsii', 'LICENSE', 'README.md']) {
    const files = complete();
    files.delete(f);
    expect(tarballProblems(files)).toEqual([expect.stringMatching(new RegExp(`^${f.replace('.', '\\.')} is missing \\(`))]);
  }
  const files = complete();
  files.delete('lib/index.js');
  expect(tarballProblems(files)).toContain('lib/index.js is missing (package.json "main")');
  expect(tarballProblems(new Map())).toEqual(['package.json is missing']);
});

test('a bundled dependency must be in the tarball, and its own files are not checked', () => {
  const files = complete();
  files.set('package.json', JSON.stringify({ ...manifest, bundledDependencies: ['ajv'] }));
  files.set('lib/index.js', `${files.get('lib/index.js')}const ajv = require("ajv");\n`);
  expect(tarballProblems(files)).toEqual(["node_modules/ajv/package.json is missing (bundled dependency 'ajv')"]);
  files.set('node_modules/ajv/package.json', '{}');
  files.set('node_modules/ajv/dist/ajv.js', 'require("fast-deep-equal"); require("./nowhere");\n');
  expect(tarballProblems(files)).toEqual([]);
});

test('a package the compiled code requires must be a dependency or peer dependency', () => {
  const files = complete();
  files.set('lib/index.js', `${files.get('lib/index.js')}const y = require("yaml");\nconst k = require("@kubernetes-models/keda/x");\n`);
  expect(tarballProblems(files)).toEqual([
    "lib/index.js requires 'yaml', which is not in dependencies or peerDependencies",
    "lib/index.js requires '@kubernetes-models/keda/x', which is not in dependencies or peerDependencies",
  ]);
});
