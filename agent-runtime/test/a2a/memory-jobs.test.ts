import { TaskState } from '@a2a-js/sdk';
import { Client } from '@a2a-js/sdk/client';
import { TaskNotCancelableError, TaskNotFoundError } from '@a2a-js/sdk/errors';
import { MemoryJobService } from '../../src/jobs/memory-store';
import { config, fakeAgent, parse } from '../jobs/store-contract';
import { a2aClient, brief, data, send, serveA2a, text, textOf } from './support';

// A2A over the in-memory JobService the entry uses without a job store: the
// same jobs as /v1/jobs, run by a stand-in for the agent's routing (a task
// whose prompt says `hang` runs until its job is cancelled).

let server: { url: string; close: () => Promise<void> };
let jobs: MemoryJobService;
let client: Client;
let agent: ReturnType<typeof fakeAgent>;

beforeEach(async () => {
  agent = fakeAgent();
  jobs = new MemoryJobService({ parse, execute: agent.execute });
  server = await serveA2a(config, jobs);
  client = await a2aClient(server.url);
});
afterEach(async () => {
  await jobs.close();
  await server.close();
});

test('blocking send runs a one-task job; GetTask reads the same job the store holds', async () => {
  const task = await client.sendMessage(send([text('hello')]));
  if (!('status' in task)) throw new Error('expected a task');
  expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  expect(task.artifacts.map((a) => [a.artifactId, textOf(a.parts)])).toEqual([['t0', 'answer of t0']]);
  expect((await jobs.get(task.id, {}))?.status).toBe('succeeded');
  expect((await client.getTask({ tenant: '', id: task.id })).artifacts).toHaveLength(1);
  expect(agent.calls).toEqual(['t0']);
});

test('streaming a workflow: the finished step arrives while the other runs; cancel ends both the job and the stream', async () => {
  const workflow = { steps: [{ id: 'quick', prompt: 'answer now' }, { id: 'slow', prompt: 'hang until cancelled' }] };
  const seen: string[] = [];
  let id = '';
  for await (const e of client.sendMessageStream(send([data(workflow)]))) {
    seen.push(brief(e));
    if (e.payload?.$case === 'task') id = e.payload.value.id;
    if (brief(e) === 'artifact:quick') {
      // `slow` is still running: nothing but cancel will end it
      expect((await jobs.get(id, {}))?.status).toBe('running');
      expect((await client.cancelTask({ tenant: '', id, metadata: undefined })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    }
  }
  // the job may already run when the stream starts: then the task itself says working
  const working = `${TaskState.TASK_STATE_WORKING}`;
  expect(seen.slice(0, 2).some((s) => s.endsWith(`:${working}`))).toBe(true);
  expect(seen.filter((s) => s !== `status:${working}`).map((s) => (s.startsWith('task:') ? 'task' : s))).toEqual(['task', 'artifact:quick', 'artifact:slow', `status:${TaskState.TASK_STATE_CANCELED}`]);
  const after = await client.getTask({ tenant: '', id });
  expect(after.artifacts.map((a) => [a.artifactId, a.description])).toEqual([
    ['quick', ''],
    ['slow', 'failed: job cancelled by its client'],
  ]);
  await expect(client.cancelTask({ tenant: '', id, metadata: undefined })).rejects.toThrow(TaskNotCancelableError);
  await expect(client.getTask({ tenant: '', id: 'not-a-job' })).rejects.toThrow(TaskNotFoundError);
});

test('a workflow the job API rejects is invalid params naming the step and field', async () => {
  const cycle = { steps: [{ id: 'a', prompt: 'x', depends_on: ['b'] }, { id: 'b', prompt: 'y', depends_on: ['a'] }] };
  await expect(client.sendMessage(send([data(cycle)]))).rejects.toThrow(/step 'a' \(steps\.0\) depends_on: the steps form a cycle/);
});
