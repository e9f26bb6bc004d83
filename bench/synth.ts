import { ApiObject, App, Chart, Testing } from 'cdk8s';
import { AgentCluster, Topology } from '../src';
import { round } from './support';

/**
 * Synth time of an N-role mesh through AgentCluster versus the same objects
 * created as plain cdk8s ApiObjects, measured in the same run.
 */
function timeIt(fn: () => void): number {
  const s = performance.now();
  fn();
  return performance.now() - s;
}

export function benchSynth(sizes: number[] = [100, 1000]) {
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
      agentClusterMs: round(ours, 1),
      plainApiObjectsMs: round(plain, 1),
      ratio: round(ours / plain),
    });
  }
  return rows;
}

if (require.main === module) console.table(benchSynth());
