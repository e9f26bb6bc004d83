import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchCoordination, benchMemory, benchOverhead, benchResilience, benchThroughput, OverheadResult } from './runtime';
import { writeJson } from './support';
import { benchSynth } from './synth';
import { buildExampleApp } from '../examples/topologies';

// `npm run bench`: every figure is a ratio against a baseline measured in the
// same run on this machine, printed as tables and written to bench/results.json.
async function main() {
  const started = Date.now();
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };
  const results: Record<string, unknown> = { machine, date: new Date().toISOString() };
  const section = async (name: string, title: string, fn: () => Promise<unknown[]> | unknown[]) => {
    process.stdout.write(`\n## ${title}\n`);
    const rows = await fn();
    console.table(rows);
    results[name] = rows;
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-topologies-'));
  buildExampleApp(dir).synth();
  const manifests = Object.fromEntries(['hub-and-spoke', 'mesh', 'hierarchical'].map((t) => [t, path.join(dir, `${t}.k8s.yaml`)]));

  let overhead: OverheadResult | undefined;
  await section('overhead', 'Overhead: one job of one task through the entry agent (2 hops) vs one direct call to the mock, and vs two do-nothing HTTP relays', async () => (overhead = await benchOverhead()).rows);
  await section('overheadCpu', 'CPU per request by process at concurrency 64, mock latency 0 (when CPU-bound, a latency ratio is at least the CPU ratio)', () => overhead!.cpu);
  await section('throughput', 'Throughput: 10,000 single-call tasks, hub-and-spoke with 2 workers vs direct calls, same concurrency', () => benchThroughput());
  await section('coordination', 'Coordination latency: a 100-task job per topology, mock latency 50 ms, vs ideal (latency x waves)', () => benchCoordination(manifests));
  await section('resilience', 'Resilience cost: executor with retry+breaker+bulkhead+timeout vs the bare client, nothing failing', () => benchResilience());
  await section('memory', 'Memory per in-flight task: one worker holding 2,000 upstream calls open', () => benchMemory());
  await section('synth', 'Synth: an N-role mesh through AgentCluster vs the same objects as plain cdk8s ApiObjects; YAML bytes; growth 1,000 -> 2,000 roles', () => benchSynth());
  results.totalSeconds = Math.round((Date.now() - started) / 1000);
  writeJson(path.join(__dirname, 'results.json'), results);
  process.stdout.write(`\nwrote bench/results.json in ${results.totalSeconds} s\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
