import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const TOPOLOGIES = ['hub-and-spoke', 'mesh', 'hierarchical'] as const;
export type TopologyName = (typeof TOPOLOGIES)[number];

const synthDirs = new Map<string, string>();
/**
 * Synthesizes the example topologies with the construct library (the
 * repository's own example app) into a temp dir, once per test file, so the
 * runtime is always tested against what the constructs produce today.
 * `overrides` are AgentCluster props as JSON; a job store is written
 * `{ jobStore: { jetStream: {...} } }` or `{ jobStore: { external: {...} } }`.
 */
export function synthesizedManifests(overrides: Record<string, unknown> = {}): Record<TopologyName, string> {
  const key = JSON.stringify(overrides);
  let synthDir = synthDirs.get(key);
  if (!synthDir) {
    synthDir = mkdtempSync(path.join(os.tmpdir(), 'agent-synth-'));
    execFileSync(process.execPath, [require.resolve('ts-node/dist/bin.js'), '--transpile-only', 'examples/main.ts'], {
      cwd: REPO_ROOT,
      env: { ...process.env, CDK8S_OUTDIR: synthDir, AGENT_EXAMPLE_OVERRIDES: key },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    synthDirs.set(key, synthDir);
  }
  const out = {} as Record<TopologyName, string>;
  for (const t of TOPOLOGIES) {
    out[t] = path.join(synthDir, `${t}.k8s.yaml`);
    if (!existsSync(out[t])) throw new Error(`synth did not write ${out[t]}`);
  }
  return out;
}

export interface JobResult {
  id: string;
  ok: boolean;
  model: string | null;
  content: string | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  cost_usd: number;
  attempts: number;
  latency_ms: number;
  agent_id: string | null;
  tool_calls: Array<{ name: string; ok: boolean; latency_ms: number }>;
  error: { code: string; message: string } | null;
}
export interface JobResponse {
  job_id: string;
  results: JobResult[];
  success_rate: number;
  total_cost_usd: number;
  latency_ms: number;
}

/** POSTs a job and returns status and body. */
export async function postJob(url: string, body: unknown): Promise<{ status: number; body: JobResponse & { error?: { message: string } } }> {
  const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as JobResponse & { error?: { message: string } } };
}

export function tasks(n: number, prefix = 't', extra: Record<string, unknown> = {}) {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, prompt: `${prefix} task number ${i}`, ...extra }));
}

/** Every task answered exactly once: same ids, no duplicates, none missing. */
export function expectExactlyOnce(sent: Array<{ id: string }>, results: JobResult[]): void {
  const ids = results.map((r) => r.id);
  if (new Set(ids).size !== ids.length) throw new Error(`duplicate results: ${ids.length - new Set(ids).size}`);
  const missing = sent.filter((t) => !ids.includes(t.id)).map((t) => t.id);
  if (missing.length > 0) throw new Error(`lost tasks: ${missing.join(', ')}`);
  if (ids.length !== sent.length) throw new Error(`expected ${sent.length} results, got ${ids.length}`);
}
