import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ApiObject, App, Chart, Testing, Yaml } from 'cdk8s';
import { AgentCluster, Topology } from '../src';
import { round, writeJson } from './support';

/**
 * Synth time of an N-role mesh through AgentCluster versus the same objects
 * created as plain cdk8s ApiObjects, measured in the same run.
 */
function timeIt(fn: () => void): number {
  // Start each repetition from a collected heap when node runs with --expose-gc,
  // so one repetition's garbage is not charged to the next.
  (globalThis as { gc?: () => void }).gc?.();
  const s = performance.now();
  fn();
  return performance.now() - s;
}

export function benchSynth(sizes: number[] = [100, 1000, 2000]) {
  const rows: Record<string, unknown>[] = [];
  for (const n of sizes) {
    const peers = Array.from({ length: n }, (_, i) => ({ name: `peer-${i}`, replicas: 1 }));
    const build = () => {
      const chart = new Chart(new App(), 'mesh');
      new AgentCluster(chart, 'agents', { topology: Topology.mesh({ peers }), upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'k' } });
      return chart;
    };
    // Warm-up and the object list for the baseline.
    const objects = Testing.synth(build()) as Array<Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } }>;
    const reps = n >= 1000 ? 5 : 7;
    // What `cdk8s synth` writes for this chart: one YAML document per object.
    const yamlBytes = Buffer.byteLength(Yaml.stringify(...objects), 'utf8');
    const buildPlain = () => {
      const chart = new Chart(new App(), 'plain');
      objects.forEach((o, i) => new ApiObject(chart, `o${i}`, o as never));
      Testing.synth(chart);
    };
    // The two alternate, so that garbage one leaves and a slow spell of the
    // machine fall on both; each reports its fastest repetition.
    let ours = Infinity;
    let plain = Infinity;
    for (let r = 0; r < reps; r++) {
      ours = Math.min(ours, timeIt(() => Testing.synth(build())));
      plain = Math.min(plain, timeIt(buildPlain));
    }
    rows.push({
      roles: n,
      objects: objects.length,
      networkPolicies: objects.filter((o) => o.kind === 'NetworkPolicy').length,
      yamlBytes,
      agentClusterMs: round(ours, 1),
      plainApiObjectsMs: round(plain, 1),
      ratio: round(ours / plain),
    });
  }
  // Growth from 1,000 to 2,000 roles: 2.0 is linear, 4.0 quadratic (target <= 2.2 for both).
  const at = (n: number) => rows.find((r) => r.roles === n) as { yamlBytes: number; agentClusterMs: number } | undefined;
  const [k1, k2] = [at(1000), at(2000)];
  if (k1 && k2) rows.push({ roles: '2000/1000', yamlBytes: round(k2.yamlBytes / k1.yamlBytes), agentClusterMs: round(k2.agentClusterMs / k1.agentClusterMs) });
  return rows;
}

// `node --expose-gc -r ts-node/register/transpile-only bench/synth.ts`:
// prints the table; with --write, also replaces the synth rows of
// bench/results.json (the other sections stay).
if (require.main === module) {
  const rows = benchSynth();
  console.table(rows);
  if (process.argv.includes('--write')) {
    const file = path.join(__dirname, 'results.json');
    const results = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeJson(file, { ...results, synth: rows, synthDate: new Date().toISOString() });
  }
}
