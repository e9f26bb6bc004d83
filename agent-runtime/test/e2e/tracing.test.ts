import { startLocalCluster, LocalCluster } from '../../src/local/launcher';
import { startMockUpstream, MockUpstream } from '../../src/mock/upstream';
import { postJob, synthesizedManifests, tasks } from '../support/cluster';
import { CollectedSpan, OtlpCollector, startHeaderRecorder, startOtlpCollector } from '../support/otlp-collector';

// One trace per job across processes: the hierarchical example booted in
// local mode (coordinator → supervisor → worker → mock upstream), exporting
// OTLP/HTTP JSON to a collector started here.

const API_KEY = 'sk-local-test-123456';
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
// the client's own span: the job's trace continues it
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';

let mock: MockUpstream;
let recorder: Awaited<ReturnType<typeof startHeaderRecorder>>;
let collector: OtlpCollector;
let cluster: LocalCluster;

beforeAll(async () => {
  const manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 5 });
  recorder = await startHeaderRecorder(mock.url);
  collector = await startOtlpCollector();
  cluster = await startLocalCluster({
    manifests: manifests.hierarchical,
    upstreamUrl: recorder.url,
    apiKey: API_KEY,
    logs: 'ignore',
    // every agent loads the OpenTelemetry SDK at boot (about a second of CPU each) on a shared machine
    readyTimeoutMs: 180_000,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' },
  });
}, 240_000);
afterAll(async () => {
  await cluster?.stop();
  await recorder?.close();
  await mock?.close();
  await collector?.close();
});

/** Waits until `pick` finds what it needs among the spans received so far. */
async function spansUntil<T>(pick: (spans: CollectedSpan[]) => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = pick(collector.spans);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} after 15 s; spans received: ${collector.spans.map((s) => `${s.resource['service.name']}:${s.name}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const byId = (spans: CollectedSpan[]) => new Map(spans.map((s) => [s.spanId, s]));

test('a job is one trace from the entry through a supervisor to a worker and its upstream calls, with GenAI attributes and a retry', async () => {
  mock.setBehaviour({ script: ['503'] });
  const sent = tasks(3, 'tr');
  const res = await fetch(`${cluster.entryUrl}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` },
    body: JSON.stringify({ tasks: sent, deadline_ms: 20000 }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { job_id: string; results: Array<{ id: string; ok: boolean; usage: { prompt_tokens: number; completion_tokens: number } }> };
  expect(body.results.every((r) => r.ok)).toBe(true);

  // three chat spans that answered, one per task, and the failed attempt before one of them
  const trace = await spansUntil((all) => {
    const mine = all.filter((s) => s.traceId === CLIENT_TRACE);
    const chats = mine.filter((s) => s.name === 'chat gpt-4.1');
    return chats.length >= 4 && mine.some((s) => s.name === 'job') ? mine : undefined;
  }, 'complete trace');
  const spans = byId(trace);
  const parentOf = (s: CollectedSpan) => spans.get(s.parentSpanId);

  const job = trace.find((s) => s.name === 'job')!;
  expect(job.kind).toBe(SERVER);
  expect(job.parentSpanId).toBe(CLIENT_SPAN);
  expect(job.attributes['agents.job.id']).toBe(body.job_id);
  expect(job.attributes['agents.job.tasks']).toBe(3);
  expect(job.resource['service.name']).toBe('coordinator');

  // spans from at least three processes, all in the one trace
  const processes = new Set(trace.map((s) => s.resource['service.instance.id']));
  expect(processes.size).toBeGreaterThanOrEqual(3);
  expect(processes).toContain('coordinator-0');
  expect(processes).toContain('execution-supervisor-0');

  const answered = trace.filter((s) => s.name === 'chat gpt-4.1' && s.status !== ERROR);
  expect(answered).toHaveLength(3);
  for (const chat of answered) {
    expect(chat.kind).toBe(CLIENT);
    expect(chat.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4.1',
      'gen_ai.response.model': 'gpt-4.1',
      'server.address': '127.0.0.1',
    });
    // the hops, from the worker's call back up to the job: each hop is the caller's invoke_agent span
    const worker = String(chat.resource['service.name']);
    expect(worker).toMatch(/^task-executor-[ab]$/);
    const toWorker = parentOf(chat)!;
    expect([toWorker.name, toWorker.kind, toWorker.resource['service.name'], toWorker.attributes['gen_ai.operation.name'], toWorker.attributes['gen_ai.agent.name']]).toEqual([
      `invoke_agent ${worker}`,
      CLIENT,
      'execution-supervisor',
      'invoke_agent',
      worker,
    ]);
    const result = body.results.find((r) => r.id === toWorker.attributes['agents.task.id'])!;
    expect([chat.attributes['gen_ai.usage.input_tokens'], chat.attributes['gen_ai.usage.output_tokens']]).toEqual([result.usage.prompt_tokens, result.usage.completion_tokens]);
    const toSupervisor = parentOf(toWorker)!;
    expect([toSupervisor.name, toSupervisor.kind, toSupervisor.resource['service.name'], toSupervisor.attributes['agents.task.id']]).toEqual(['invoke_agent execution-supervisor', CLIENT, 'coordinator', result.id]);
    expect(parentOf(toSupervisor)).toBe(job);
  }

  // the scripted 503: a failed attempt with error.type, then the retry as a span of its own beside it
  const failed = trace.filter((s) => s.name === 'chat gpt-4.1' && s.status === ERROR);
  expect(failed).toHaveLength(1);
  expect(failed[0].attributes['error.type']).toBe('503');
  expect(failed[0].attributes['http.request.resend_count']).toBeUndefined();
  const retried = answered.filter((s) => s.parentSpanId === failed[0].parentSpanId);
  expect(retried.map((s) => s.attributes['http.request.resend_count'])).toEqual([1]);
  for (const s of answered.filter((x) => x !== retried[0])) expect(s.attributes['http.request.resend_count']).toBeUndefined();

  // every upstream request carried the trace context of its own chat span
  const chatIds = new Set(trace.filter((s) => s.name.startsWith('chat ')).map((s) => s.spanId));
  const seen = recorder.traceparents.filter((t) => t.split('-')[1] === CLIENT_TRACE);
  expect(seen).toHaveLength(4);
  for (const tp of seen) {
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(chatIds).toContain(tp.split('-')[2]);
  }
  expect(new Set(collector.contentTypes)).toEqual(new Set(['application/json']));
});

test('a failing upstream call carries error.type, and the failure shows on every hop up to the job', async () => {
  mock.setBehaviour({ failModels: { 'deepseek-v3.2': 400 } });
  const res = await postJob(cluster.entryUrl, { tasks: [{ id: 'v1', prompt: 'check this', role: 'validation', model: 'deepseek-v3.2' }], deadline_ms: 20000 });
  mock.setBehaviour({ failModels: {} });
  expect(res.body.results[0].error?.code).toBe('bad_request');
  const trace = await spansUntil((all) => {
    const job = all.find((s) => s.name === 'job' && s.attributes['agents.job.id'] === res.body.job_id);
    const mine = job ? all.filter((s) => s.traceId === job.traceId) : [];
    return mine.some((s) => s.name === 'chat deepseek-v3.2') && mine.filter((s) => s.name.startsWith('invoke_agent')).length === 2 ? mine : undefined;
  }, 'trace of the failing job');
  const chat = trace.find((s) => s.name === 'chat deepseek-v3.2')!;
  expect([chat.status, chat.attributes['error.type'], chat.resource['service.name']]).toEqual([ERROR, '400', 'validation']);
  const hops = trace.filter((s) => s.name.startsWith('invoke_agent'));
  expect(hops.map((s) => `${s.resource['service.name']}:${s.name}`).sort()).toEqual(['coordinator:invoke_agent quality-supervisor', 'quality-supervisor:invoke_agent validation']);
  for (const h of hops) expect([h.status, h.attributes['error.type']]).toEqual([ERROR, 'bad_request']);
  const job = trace.find((s) => s.name === 'job')!;
  expect(job.parentSpanId).toBe('');
  expect([job.status, job.attributes['error.type'], job.attributes['agents.job.failed_tasks']]).toEqual([ERROR, 'bad_request', 1]);
});

/** Samples of one metric on an agent's /metrics: labels and value per line. */
async function samples(url: string, name: string): Promise<Array<{ labels: Record<string, string>; value: number }>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    out.push({ labels: Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]])), value: Number(m[3]) });
  }
  return out;
}

test('the workers export the GenAI histograms on /metrics: one observation per upstream attempt, tokens by type', async () => {
  const executors = ['task-executor-a', 'task-executor-b'].map((r) => cluster.agent(r).httpUrl);
  const sum = async (urls: string[], name: string, want: Record<string, string>) => {
    let n = 0;
    for (const u of urls) for (const s of await samples(u, name)) if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) n += s.value;
    return n;
  };
  const chat = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'openai', gen_ai_request_model: 'gpt-4.1' };
  // the first test's job: three answered calls and one 503
  expect(await sum(executors, 'gen_ai_client_token_usage_count', { ...chat, gen_ai_response_model: 'gpt-4.1', gen_ai_token_type: 'input' })).toBe(3);
  expect(await sum(executors, 'gen_ai_client_token_usage_count', { ...chat, gen_ai_response_model: 'gpt-4.1', gen_ai_token_type: 'output' })).toBe(3);
  expect(await sum(executors, 'gen_ai_client_operation_duration_seconds_count', { ...chat, gen_ai_response_model: 'gpt-4.1' })).toBe(3);
  expect(await sum(executors, 'gen_ai_client_operation_duration_seconds_count', { ...chat, error_type: '503' })).toBe(1);
  // the second test's failing call
  expect(await sum([cluster.agent('validation').httpUrl], 'gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'deepseek-v3.2', error_type: '400' })).toBe(1);
  // the buckets the conventions advise
  const le = (await samples(executors[0], 'gen_ai_client_operation_duration_seconds_bucket')).map((s) => s.labels.le);
  expect(le).toEqual(expect.arrayContaining(['0.01', '81.92', '+Inf']));
  const tokenLe = (await samples(executors[0], 'gen_ai_client_token_usage_bucket')).map((s) => s.labels.le);
  expect(tokenLe).toEqual(expect.arrayContaining(['1', '4', '67108864', '+Inf']));
});
