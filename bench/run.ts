import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchBudgets } from './budgets';
import { benchJobKill, benchJobStore } from './jobs';
import { benchMtls } from './mtls';
import { benchCoordination, benchMemory, benchOverhead, benchOverload, benchResilience, benchThroughput, benchTracing, benchWorkflow, OverheadResult } from './runtime';
import { writeJson } from './support';
import { benchSynth } from './synth';
import { buildExampleApp } from '../examples/topologies';

// `npm run bench`: every figure is a ratio against a baseline measured in the
// same run on this machine, printed as tables and written to bench/results.json.
// `BENCH_ONLY=overload,coordination npm run bench` runs only those sections
// (names as in results.json) and keeps the others' last figures in the file.
async function main() {
  const started = Date.now();
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const file = path.join(__dirname, 'results.json');
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };
  const previous: Record<string, unknown> = only.length > 0 && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const results: Record<string, unknown> = { ...previous, machine, date: new Date().toISOString() };
  if (only.length > 0) results.partialRun = only;
  else delete results.partialRun;
  const section = async (name: string, title: string, fn: () => Promise<unknown[]> | unknown[]) => {
    if (only.length > 0 && !only.includes(name) && !(name === 'overheadCpu' && only.includes('overhead'))) return;
    process.stdout.write(`\n## ${title}\n`);
    const rows = await fn();
    console.table(rows);
    results[name] = rows;
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-topologies-'));
  buildExampleApp(dir).synth();
  const manifests = Object.fromEntries(['hub-and-spoke', 'mesh', 'hierarchical'].map((t) => [t, path.join(dir, `${t}.k8s.yaml`)]));

  let overhead: OverheadResult | undefined;
  await section('overload', 'Overload: stock hub example, one-task gpt-4.1 jobs at concurrency 64 (twice the 32 gpt-4.1 slots) vs direct calls and vs an ideal FIFO', () => benchOverload(manifests['hub-and-spoke']));
  await section('overhead', 'Overhead: one job of one task through the entry agent (2 hops) vs one direct call to the mock, and vs two do-nothing HTTP relays', async () => (overhead = await benchOverhead()).rows);
  if (overhead) await section('overheadCpu', 'CPU per request by process at concurrency 64, mock latency 0 (when CPU-bound, a latency ratio is at least the CPU ratio)', () => overhead!.cpu);
  await section('throughput', 'Throughput: 10,000 single-call tasks, hub-and-spoke with 2 workers vs direct calls, same concurrency', () => benchThroughput());
  await section('coordination', 'Coordination latency: a 100-task job per topology, mock latency 50 ms, vs ideal (latency x waves)', () => benchCoordination(manifests));
  await section('workflow', 'Workflow: a 4-step pipeline (a → b → c ∥ d), mock latency 50 ms, vs its ideal critical path (3 × 50 ms) and vs the same calls made directly', () => benchWorkflow());
  await section('mtls', 'mTLS between agents vs plain-text gRPC: one-task jobs through a hub (coordinator + 2 workers), mock latency 0, both clusters up and alternating', () => benchMtls());
  await section('resilience', 'Resilience cost: executor with retry+breaker+bulkhead+timeout vs the bare client, nothing failing', () => benchResilience());
  await section('tracing', 'Tracing (issue 12): 100-task jobs through a hub with one worker, OTLP/HTTP JSON export to a local collector vs no endpoint, clusters up side by side, rounds alternating', () => benchTracing());
  await section('memory', 'Memory per in-flight task: one worker holding 2,000 upstream calls open', () => benchMemory());
  await section('budgets', 'Budgets: a 1,000-task job over 3 worker replicas with a budget_usd that refuses nothing vs without, per pod and shared (JetStream KV); best of 5 alternating rounds, mock latency 0', () => benchBudgets(1000, 5));
  await section('jobs', 'Job store (issue 11): synchronous jobs of 1 and 100 tasks through one entry, JetStream store vs in-memory store, mock latency 0, alternating rounds', () => benchJobStore());
  await section('jobKill', 'Job store (issue 11): kill -9 of the replica running a 40-task job (mock 100 ms, 8 at a time); ms from the kill to the job\'s end, beside the job uninterrupted and the ack wait', () => benchJobKill());
  await section('synth', 'Synth: an N-role mesh through AgentCluster vs the same objects as plain cdk8s ApiObjects; YAML bytes; growth 1,000 -> 2,000 roles', () => benchSynth());
  // always: it only reads the figures above (or the file's, for sections not run this time)
  process.stdout.write('\n## Targets of issues 14, 9, 11 and 12: each figure against its target\n');
  console.table((results.targets = targetRows(results)));
  results.totalSeconds = Math.round((Date.now() - started) / 1000);
  writeJson(file, results);
  process.stdout.write(`\nwrote bench/results.json in ${results.totalSeconds} s\n`);
}

type Row = Record<string, any>;

/** The figures issues 14, 9 and 12 set targets for, read from the sections above (a section not run this time is read from the file). */
function targetRows(results: Record<string, unknown>): Row[] {
  const rows: Row[] = [];
  const add = (figure: string, target: string, measured: number | undefined, ok: (x: number) => boolean) =>
    rows.push({ figure, target, measured: measured ?? 'not measured', met: measured === undefined ? '-' : ok(measured) });
  const overload = (results.overload as Row[] | undefined)?.find((r) => r.mockLatencyMs === 20);
  add('overload p99 / ideal FIFO (mock 20 ms, c64)', '<= 1.5', overload?.p99VsIdealFifo, (x) => x <= 1.5);
  const c1 = (results.overhead as Row[] | undefined)?.find((r) => r.concurrency === 1);
  add('added p50 at concurrency 1 (ms)', '<= 0.5', c1?.addedP50ms, (x) => x <= 0.5);
  add('added p50 at c1 / two-relay floor added p50', '<= 1.3', c1 ? Math.round((c1.addedP50ms / c1.relayAddedP50ms) * 100) / 100 : undefined, (x) => x <= 1.3);
  for (const t of (results.throughput as Row[] | undefined) ?? []) add(`throughput vs direct, ${t.jobs}`, '>= 0.5', t.ratio, (x) => x >= 0.5);
  for (const c of (results.coordination as Row[] | undefined) ?? []) {
    add(`coordination ${c.topology}: measured / ideal`, '<= 1.02', c.ratio, (x) => x <= 1.02);
    if (c.ratioVsDirect !== undefined) add(`coordination ${c.topology}: measured / direct same fan-out`, '<= 1.02', c.ratioVsDirect, (x) => x <= 1.02);
    add(`coordination ${c.topology}: ms per wave over ${c.overheadPerWaveVsDirectMs !== undefined ? 'direct same fan-out' : 'ideal'}`, '<= 1', c.overheadPerWaveVsDirectMs ?? c.overheadPerWaveMs, (x) => x <= 1);
  }
  const wf = (results.workflow as Row[] | undefined)?.[0];
  add('workflow (issue 9), 4-step pipeline: p50 / ideal critical path', '<= 1.1', wf?.ratioToIdeal, (x) => x <= 1.1);
  add('workflow (issue 9): ms added per critical-path step at p50', '<= 2', wf?.addedPerStepP50Ms, (x) => x <= 2);
  const jobs = (results.jobs as Row[] | undefined) ?? [];
  add('job store (issue 11): JetStream vs memory, added p50 per 1-task job (ms)', '<= 1', jobs.find((r) => r.tasksPerJob === 1)?.addedPerJobP50ms, (x) => x <= 1);
  add('job store (issue 11): JetStream vs memory, added p50 per task at 100 tasks per job (ms)', '<= 0.2', jobs.find((r) => r.tasksPerJob === 100)?.addedPerTaskP50ms, (x) => x <= 0.2);
  const res = (results.resilience as Row[] | undefined)?.[0];
  add('resilience policies on / off', '>= 0.85', res?.ratio, (x) => x >= 0.85);
  const tr = (results.tracing as Row[] | undefined)?.[0];
  add('throughput with tracing on / off (issue 12)', '>= 0.9', tr?.ratio, (x) => x >= 0.9);
  add('agent CPU per task, tracing off / on (issue 12)', '>= 0.9', tr?.cpuRatio, (x) => x >= 0.9);
  return rows;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
