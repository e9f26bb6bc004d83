import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// The runtime is this repository's own workspace package (agent-runtime/), built before the tests run.
// eslint-disable-next-line import/no-extraneous-dependencies
import { LocalCluster, MockUpstream, startLocalCluster, startMockUpstream } from '@cdk8s-agent-cluster/agent-runtime';
import { App, YamlOutputType } from 'cdk8s';
import { productionChart } from '../examples/production';
import { K8sObject } from './support/manifests';

// Every metric a ScaledObject trigger, an alert or a dashboard panel queries
// must be one the runtime really exports. The names come from the runtime's
// own /metrics text, read from processes booted (local mode) from the
// production example's manifests after a job ran, not from a list kept here.

jest.setTimeout(180_000);

const API_KEY = 'sk-metrics-test-123456';
let mock: MockUpstream;
let cluster: LocalCluster | undefined;
let objs: K8sObject[];
let file: string;

beforeAll(async () => {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'prod-'));
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const chart = productionChart(app);
  objs = chart.toJson() as K8sObject[];
  app.synth();
  file = path.join(outdir, 'production.k8s.yaml');
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 5 });
});

afterAll(async () => {
  await cluster?.stop();
  await mock?.close();
});

/** Metric names a PromQL expression selects (every selector here carries a label matcher). */
function selectedMetrics(expr: string): string[] {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1]);
}

/** Every PromQL expression the production manifests carry, with where it is. */
function queries(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const so of objs.filter((o) => o.kind === 'ScaledObject')) {
    for (const t of so.spec.triggers.filter((x: any) => x.type === 'prometheus')) out.push({ where: `ScaledObject/${so.metadata.name}`, expr: t.metadata.query });
  }
  for (const rule of objs.filter((o) => o.kind === 'PrometheusRule')) {
    for (const g of rule.spec.groups) for (const r of g.rules) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  }
  for (const cm of objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1')) {
    for (const text of Object.values(cm.data as Record<string, string>)) {
      for (const panel of JSON.parse(text).panels) for (const t of panel.targets) out.push({ where: `panel '${panel.title}'`, expr: t.expr });
    }
  }
  return out;
}

/** Series names in Prometheus text: samples, and the _bucket/_sum/_count series of each histogram. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      names.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(type[1] + s);
    } else if (line && !line.startsWith('#')) {
      names.add(line.split(/[{ ]/)[0]);
    }
  }
  return names;
}

test('every metric in the KEDA triggers, alerts and dashboard is in the runtime\'s real /metrics output', async () => {
  cluster = await startLocalCluster({ manifests: file, upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 120_000 });
  const res = await fetch(`${cluster.entryUrl}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tasks: Array.from({ length: 8 }, (_, i) => ({ id: `t${i}`, prompt: `task ${i}` })), deadline_ms: 60_000 }),
  });
  expect(res.status).toBe(200);

  const names = new Set<string>();
  for (const agent of cluster.agents) {
    const text = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    exported(text).forEach((n) => names.add(n));
  }
  // the job really ran through the runtime: its counters have samples
  expect(names).toContain('agent_tasks_total');
  expect(names).toContain('agent_upstream_requests_total');

  const qs = queries();
  // seven roles; the coordinator scales on the NATS job queue (no PromQL), the other six on task load
  expect(qs.filter((q) => q.where.startsWith('ScaledObject')).length).toBe(6);
  expect(qs.filter((q) => q.where.startsWith('alert')).length).toBe(6);
  expect(qs.filter((q) => q.where.startsWith('panel')).length).toBeGreaterThan(5);
  const missing: string[] = [];
  for (const q of qs) {
    const used = selectedMetrics(q.expr);
    expect({ where: q.where, selects: used.length > 0 }).toEqual({ where: q.where, selects: true });
    for (const m of used) if (!names.has(m)) missing.push(`${q.where}: ${m}`);
  }
  expect(missing).toEqual([]);
});

test('the name check is not a no-op: a made-up metric is not in the exported set', () => {
  expect(selectedMetrics('sum(http_requests_per_second{namespace="x"}) / max(task_queue_depth{queue="q"})')).toEqual(['http_requests_per_second', 'task_queue_depth']);
  expect(exported('# TYPE agent_x counter\nagent_x{role="a"} 1\n# TYPE h histogram\n').has('h_bucket')).toBe(true);
});
