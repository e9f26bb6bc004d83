import pino from 'pino';
import { TaskState } from '@a2a-js/sdk';
import { JetStreamJobService } from '../../src/jobs/jetstream-store';
import { NatsServer } from '../../src/local/nats';
import { config, fakeAgent, parse } from '../jobs/store-contract';
import { startTestNats } from '../support/nats';
import { a2aClient, brief, data, send, serveA2a, textOf } from './support';

// A2A over the durable job store, with two entry replicas on one JetStream
// stream and bucket (a real nats-server): a task sent to one replica is read,
// followed and cancelled through the other, whichever of them runs it.

const logger = pino({ level: 'silent' });
let nats: NatsServer;
const stores: JetStreamJobService[] = [];
const servers: Array<{ close: () => Promise<void> }> = [];

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const s of stores) await s.close();
  await nats?.stop();
});

async function replica(name: string) {
  const store = await JetStreamJobService.connect({
    config: { url: nats.url, stream: 'JOBS_A2A', consumer: 'runners_a2a', bucket: 'jobs_a2a', replicas: 1 },
    parse,
    execute: fakeAgent(4).execute,
    logger,
    agentId: name,
  });
  stores.push(store);
  const server = await serveA2a(config, store);
  servers.push(server);
  return a2aClient(server.url);
}

test('sent to one replica; followed, read and cancelled through the other; the task says durable', async () => {
  const one = await replica('entry-0');
  const other = await replica('entry-1');
  const workflow = { steps: [{ id: 'quick', prompt: 'answer now' }, { id: 'slow', prompt: 'hang until cancelled' }] };
  const sent = (await one.sendMessage(send([data(workflow)], { returnImmediately: true }))) as { id: string };

  const seen: string[] = [];
  for await (const e of other.resubscribeTask({ tenant: '', id: sent.id })) {
    seen.push(brief(e));
    if (e.payload?.$case === 'task') expect(e.payload.value.metadata).toMatchObject({ durable: true });
    const quickDone = e.payload?.$case === 'artifactUpdate' ? e.payload.value.artifact?.artifactId === 'quick' : e.payload?.$case === 'task' && e.payload.value.artifacts.some((a) => a.artifactId === 'quick');
    if (quickDone && !seen.includes('cancelled')) {
      seen.push('cancelled');
      expect((await other.cancelTask({ tenant: '', id: sent.id, metadata: undefined })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    }
  }
  expect(seen[seen.length - 1]).toBe(`status:${TaskState.TASK_STATE_CANCELED}`);
  const read = await one.getTask({ tenant: '', id: sent.id });
  expect(read.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
  expect(read.artifacts.map((a) => [a.artifactId, a.description])).toEqual([
    ['quick', ''],
    ['slow', expect.stringMatching(/^failed: .*cancel/)],
  ]);
  expect(textOf(read.artifacts[0].parts)).toBe('answer of quick');
});
