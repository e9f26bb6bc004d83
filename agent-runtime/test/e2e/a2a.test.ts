import { TaskState } from '@a2a-js/sdk';
import { Client } from '@a2a-js/sdk/client';
import { TaskNotFoundError } from '@a2a-js/sdk/errors';
import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { a2aClient, brief, data, send, text, textOf } from '../a2a/support';
import { synthesizedManifests } from '../support/cluster';

// A2A end to end: the hub-and-spoke example synthesized by the constructs,
// booted by `local` mode against the mock upstream, driven with the SDK's
// own client through the entry's agent card.

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let cluster: LocalCluster;
let client: Client;

beforeAll(async () => {
  const manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 5 });
  cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 90_000 });
  client = await a2aClient(cluster.entryUrl);
});
afterAll(async () => {
  await cluster?.stop();
  await mock?.close();
});
afterEach(() => mock.reset());

test('the agent card names the cluster and entry, the roles the entry reaches, streaming, and its JSON-RPC URL', async () => {
  const card = await client.getAgentCard();
  expect(card.name).toBe('agents-hub/coordinator');
  expect(card.skills.map((s) => s.id).sort()).toEqual(['data-retrieval', 'task-executor-a', 'task-executor-b', 'validation']);
  expect(card.capabilities?.streaming).toBe(true);
  expect(card.supportedInterfaces[0]).toMatchObject({ protocolBinding: 'JSONRPC', protocolVersion: '1.0', url: `${cluster.entryUrl}/a2a` });
});

test('a blocking send runs a one-task job on the cluster; GetTask reads the same job as GET /v1/jobs/<id>', async () => {
  const task = await client.sendMessage(send([text('Say hello')]));
  if (!('status' in task)) throw new Error('expected a task');
  expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  expect(task.artifacts).toHaveLength(1);
  expect(textOf(task.artifacts[0].parts)).toMatch(/^echo:/);
  const again = await client.getTask({ tenant: '', id: task.id });
  expect([again.status?.state, again.artifacts.map((a) => textOf(a.parts))]).toEqual([TaskState.TASK_STATE_COMPLETED, [textOf(task.artifacts[0].parts)]]);
  const job = (await (await fetch(`${cluster.entryUrl}/v1/jobs/${task.id}`)).json()) as { job_id: string; status: string; results: Array<{ content: string }> };
  expect([job.job_id, job.status, job.results[0].content]).toEqual([task.id, 'succeeded', textOf(task.artifacts[0].parts)]);
});

test('a streaming send of a workflow shows each step as it finishes; CancelTask ends the job and the stream', async () => {
  // the first step answers, the second hangs until it is cancelled: the first step's
  // artifact arriving while the second is still running is what "as they finish" means
  mock.setBehaviour({ latencyMs: 5, script: ['ok', 'hang', 'hang', 'hang', 'hang', 'hang', 'hang', 'hang', 'hang'] });
  const workflow = {
    steps: [
      { id: 'draft', role: 'task-executor-a', prompt: 'Draft a haiku about queues' },
      { id: 'polish', role: 'task-executor-b', prompt: 'Polish: {{steps.draft.content}}', depends_on: ['draft'] },
    ],
    deadline_ms: 60_000,
  };
  const seen: string[] = [];
  let taskId = '';
  for await (const e of client.sendMessageStream(send([data(workflow)]))) {
    seen.push(brief(e));
    if (e.payload?.$case === 'task') taskId = e.payload.value.id;
    if (e.payload?.$case === 'artifactUpdate' && !seen.slice(0, -1).some((s) => s.startsWith('artifact:'))) {
      expect(e.payload.value.artifact?.artifactId).toBe('draft');
      expect(textOf(e.payload.value.artifact?.parts)).toMatch(/^echo:/);
      const running = await client.getTask({ tenant: '', id: taskId });
      expect([running.status?.state, running.artifacts.map((a) => a.artifactId)]).toEqual([TaskState.TASK_STATE_WORKING, ['draft']]);
      const cancelled = await client.cancelTask({ tenant: '', id: taskId, metadata: undefined });
      expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    }
  }
  expect(seen[0]).toMatch(/^task:/);
  expect(seen.filter((s) => s.startsWith('artifact:')).slice(0, 1)).toEqual(['artifact:draft']);
  expect(seen[seen.length - 1]).toBe(`status:${TaskState.TASK_STATE_CANCELED}`);
  const after = await client.getTask({ tenant: '', id: taskId });
  expect(after.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
  expect(after.artifacts.find((a) => a.artifactId === 'polish')?.description).toMatch(/^failed: /);
});

test('an unknown task id is TaskNotFound, and the entry keeps serving', async () => {
  await expect(client.getTask({ tenant: '', id: 'no-such-task' })).rejects.toThrow(TaskNotFoundError);
  expect((await fetch(`${cluster.entryUrl}/healthz`)).status).toBe(200);
});
