import { execFile, execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { AgentConfig } from '../src/config';
import { launcherOtelEnv } from '../src/local/launcher';
import { startMockUpstream, MockUpstream } from '../src/mock/upstream';
import { startTracing, tracesEndpoint } from '../src/telemetry';
import { referenceCatalog, workerConfig } from './support/fixtures';
import { OtlpCollector, startOtlpCollector } from './support/otlp-collector';

// Tracing is switched by OTEL_* alone; with no endpoint the SDK is never
// loaded. Retries and fallbacks are visible on a task's span.

describe('when tracing is on', () => {
  test('an OTLP endpoint (general or for traces) turns it on; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none keep it off', () => {
    expect(tracesEndpoint({})).toBeUndefined();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toBeUndefined();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe('http://collector:4318');
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe('http://collector:4318/v1/traces');
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'TRUE' })).toBeUndefined();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'otlp' })).toBe('http://collector:4318');
  });

  test('without an endpoint startTracing returns nothing', () => {
    expect(startTracing({ role: 'w', cluster: 'c', agentId: 'w-0' }, {})).toBeUndefined();
  });

  test('local mode hands the launcher\'s OTEL_* to every agent, except the service name (each agent is its role)', () => {
    expect(launcherOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'mine', PATH: '/bin', UPSTREAM_API_KEY: 'sk' })).toEqual({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
  });
});

describe('an agent process', () => {
  // A fresh node process boots a worker from the built runtime and lists the OpenTelemetry modules it loaded.
  const loaded = (otel: Record<string, string>): string[] => {
    const script = `
      const { startAgent } = require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'agent.js'))});
      const config = JSON.parse(process.env.TEST_CONFIG);
      startAgent(config, { agentId: 'w-0', role: config.role, configFile: '-', httpPort: 0, grpcPort: 0, upstreamBaseUrl: 'http://127.0.0.1:9/v1', upstreamApiKey: 'sk-x', peerEndpoints: {}, logLevel: 'silent' })
        .then(async (agent) => {
          const mods = Object.keys(require.cache).filter((k) => k.includes('@opentelemetry')).map((k) => k.replace(/.*node_modules\\//, '').split('/').slice(0, 2).join('/'));
          await agent.shutdown();
          process.stdout.write(JSON.stringify([...new Set(mods)]));
        });`;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, TEST_CONFIG: JSON.stringify(workerConfig()), ...otel };
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60_000 })) as string[];
  };

  test('with no endpoint loads no part of the OpenTelemetry SDK', () => {
    const mods = loaded({});
    expect(mods.filter((m) => /sdk|exporter|resources|core/.test(m))).toEqual([]);
  });

  test('with an endpoint loads the SDK and its OTLP exporter', () => {
    const mods = loaded({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    expect(mods).toEqual(expect.arrayContaining(['@opentelemetry/sdk-node', '@opentelemetry/exporter-trace-otlp-http']));
  });
});

describe('retries and fallbacks on a task span', () => {
  let mock: MockUpstream;
  let collector: OtlpCollector;

  beforeAll(async () => {
    mock = await startMockUpstream({});
    collector = await startOtlpCollector();
  });
  afterAll(async () => {
    await mock.close();
    await collector.close();
  });

  // The SDK's OTLP exporter loads its HTTP agent with a dynamic import(), which jest's module sandbox refuses,
  // so the executor runs in a node process of its own, on the built runtime, exporting to the collector here.
  const runTraced = (config: AgentConfig) => {
    const dist = (m: string) => JSON.stringify(path.resolve(__dirname, '..', 'dist', m));
    const script = `
      const { InferenceExecutor } = require(${dist('inference/executor.js')});
      const { RuntimeMetrics } = require(${dist('metrics.js')});
      const { startTracing } = require(${dist('telemetry/index.js')});
      const { UpstreamClient } = require(${dist('upstream/client.js')});
      const pino = require('pino');
      const tracer = startTracing({ role: 'w', cluster: 'c', agentId: 'w-0', upstreamBaseUrl: process.env.MOCK_URL });
      const client = new UpstreamClient({ baseUrl: process.env.MOCK_URL, apiKey: 'sk-test-0123456789' });
      const executor = new InferenceExecutor({ config: JSON.parse(process.env.TEST_CONFIG), client, metrics: new RuntimeMetrics(), logger: pino({ level: 'silent' }), agentId: 'w-0', tracer });
      const span = tracer.startInvoke(undefined, 'w', '127.0.0.1:50051', 'fb', 'job-1');
      executor.execute({ id: 'fb', messages: [{ role: 'user', content: 'hello' }], model: 'gpt-4.1', trace: tracer.contextOf(span) }, Date.now() + 10000).then(async (r) => {
        tracer.endTask(span);
        await tracer.shutdown();
        await client.close();
        process.stdout.write(JSON.stringify({ result: r, traceId: span.spanContext().traceId }));
      });`;
    const env = { PATH: process.env.PATH, MOCK_URL: mock.url, TEST_CONFIG: JSON.stringify(config), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' };
    return new Promise<{ result: { ok: boolean; model: string }; traceId: string }>((resolve, reject) =>
      execFile(process.execPath, ['-e', script], { env, cwd: path.resolve(__dirname, '..'), encoding: 'utf8', timeout: 60_000 }, (err, out) => (err ? reject(err) : resolve(JSON.parse(out)))),
    );
  };

  test('every attempt is a chat span (a retry counts the attempts before it); a fallback is an event on the next model\'s first attempt', async () => {
    // gpt-4.1 answers 503 every time: its retries are spent, then its first fallback answers
    mock.setBehaviour({ failModels: { 'gpt-4.1': 503 } });
    const { result, traceId } = await runTraced(workerConfig({ catalog: referenceCatalog(), retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2 } }));
    expect([result.ok, result.model]).toEqual([true, 'claude-sonnet-4.5']);

    // the tracer's shutdown exported everything before the process printed its result
    const spans = collector.spans.filter((s) => s.traceId === traceId);
    const task = spans.find((s) => s.name === 'invoke_agent w')!;
    const chats = spans.filter((s) => s.name.startsWith('chat '));
    expect(chats.map((s) => [s.name, s.attributes['error.type'], s.attributes['http.request.resend_count'], s.events])).toEqual([
      ['chat gpt-4.1', '503', undefined, []],
      ['chat gpt-4.1', '503', 1, []],
      ['chat claude-sonnet-4.5', undefined, undefined, [{ name: 'fallback', attributes: { 'agents.fallback.from': 'gpt-4.1', 'agents.fallback.to': 'claude-sonnet-4.5', 'error.type': 'upstream_error' } }]],
    ]);
    for (const c of chats) expect([c.parentSpanId, c.attributes['server.address'], c.attributes['server.port']]).toEqual([task.spanId, '127.0.0.1', mock.port]);
  });
});
