import { parseArgs } from 'node:util';
import { startMockUpstream } from './upstream';

/** `agent-runtime mock-upstream [--port N] [--latency-ms N] [--error-rate F] [--api-key K]` */
export async function runMockUpstreamCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      'latency-ms': { type: 'string', default: '0' },
      'error-rate': { type: 'string', default: '0' },
      'api-key': { type: 'string' },
    },
  });
  const mock = await startMockUpstream({
    port: Number(values.port),
    latencyMs: Number(values['latency-ms']),
    errorRate: Number(values['error-rate']),
    apiKey: values['api-key'],
  });
  process.stdout.write(`mock-upstream listening ${mock.url.replace(/\/v1$/, '')}/v1\n`);
  const stop = () => void mock.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
