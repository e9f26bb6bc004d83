import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildApp } from './app';
import { tarballProblems } from './tarball';

// The library as a user gets it: the tarball `npx projen build` packs,
// installed with its peer dependencies into an app outside this repository,
// compiled with tsc --strict against the published types, synthesized, and
// compared with the same app synthesized from source.

const ROOT = path.resolve(__dirname, '..', '..');
const rootManifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const work = mkdtempSync(path.join(os.tmpdir(), 'consumer-'));
const appDir = path.join(work, 'app');
let tarball = '';

function run(cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const env = { ...process.env };
  delete env.CDK8S_OUTDIR; // the app writes to its own dist/
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

function newest(p: string): number {
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  // A folder's own mtime changes when a file in it is added or removed.
  return Math.max(s.mtimeMs, ...readdirSync(p).map((f) => newest(path.join(p, f))));
}

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]);
}

function readTree(dir: string): Map<string, string> {
  return new Map(listFiles(dir).sort().map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]));
}

beforeAll(() => {
  // jsii's output (lib/, .jsii) is reused when it is newer than everything it
  // is built from: `npx projen build` has just compiled before it tests, and a
  // second jsii run costs about 25 s here. Otherwise compile, as the build does.
  const jsii = path.join(ROOT, '.jsii');
  let fresh = false;
  try {
    fresh = statSync(jsii).mtimeMs > Math.max(...['src', 'package.json', 'tsconfig.json'].map((p) => newest(path.join(ROOT, p))));
  } catch {
    fresh = false;
  }
  if (!fresh) run('npx', ['projen', 'compile'], ROOT);

  // jsii-pacmak's js target (projen package:js) runs this same `npm pack` on
  // the compiled package; calling it directly saves pacmak's 10 s of setup.
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], ROOT).stdout) as { filename: string }[];
  tarball = path.join(work, packed[0].filename);

  mkdirSync(appDir);
  writeFileSync(path.join(appDir, 'package.json'), JSON.stringify({ name: 'consumer-app', version: '1.0.0', private: true }));
  // The peers at the versions this repository builds with: npm ci has cached
  // them, so --prefer-offline installs without the network.
  const peers = Object.keys(rootManifest.peerDependencies)
    .map((n) => `${n}@${JSON.parse(readFileSync(require.resolve(`${n}/package.json`), 'utf8')).version}`);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...peers], appDir);
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

test('the app installs the package from the tarball, outside this repository', () => {
  const resolved = run('node', ['-p', "require.resolve('cdk8s-agent-cluster')"], appDir).stdout.trim();
  expect(resolved).toBe(path.join(appDir, 'node_modules', 'cdk8s-agent-cluster', 'lib', 'index.js'));
  expect(path.relative(ROOT, resolved).startsWith('..')).toBe(true);
});

test('the tarball holds every file the installed package needs', () => {
  const extracted = path.join(work, 'extracted');
  mkdirSync(extracted);
  run('tar', ['-xzf', tarball, '-C', extracted], work);
  const files = readTree(path.join(extracted, 'package'));
  expect(tarballProblems(files)).toEqual([]);
  // and nothing of the repository's own tooling
  expect([...files.keys()].filter((f) => /^(src|test|agent-runtime|build-tools|examples|bench|\.ci)\//.test(f))).toEqual([]);
});

test('a small app compiles with tsc --strict against the published types and synthesizes what the same app does from source', () => {
  copyFileSync(path.join(__dirname, 'app.ts'), path.join(appDir, 'app.ts'));
  writeFileSync(path.join(appDir, 'main.ts'), "import { buildApp } from './app';\nbuildApp().synth();\n");
  writeFileSync(path.join(appDir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      target: 'ES2022',
      module: 'node16',
      moduleResolution: 'node16',
      lib: ['es2022'],
      types: [],
      skipLibCheck: false,
      noEmitOnError: true,
      outDir: 'out',
    },
    files: ['app.ts', 'main.ts'],
  }));
  run('node', [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], appDir);
  run('node', ['out/main.js'], appDir);
  const fromPackage = readTree(path.join(appDir, 'dist'));

  const sourceOut = path.join(work, 'from-source');
  buildApp(sourceOut).synth();
  const fromSource = readTree(sourceOut);

  expect([...fromPackage.keys()]).toEqual(['research.k8s.yaml', 'summarizer.k8s.yaml']);
  expect([...fromPackage.keys()]).toEqual([...fromSource.keys()]);
  for (const [file, text] of fromSource) {
    expect({ file, same: fromPackage.get(file) === text }).toEqual({ file, same: true });
  }
  // The default image is tagged with the version of the package that was installed.
  const installed = JSON.parse(readFileSync(path.join(appDir, 'node_modules', 'cdk8s-agent-cluster', 'package.json'), 'utf8'));
  expect(fromPackage.get('research.k8s.yaml')).toContain(`image: cdk8s-agent-cluster/agent-runtime:${installed.version}\n`);
  expect(fromPackage.get('summarizer.k8s.yaml')).toContain('image: registry.example.com/agents/agent-runtime:1.2.3\n');
});
