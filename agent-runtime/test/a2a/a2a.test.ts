import { TaskState } from '@a2a-js/sdk';
import { Client } from '@a2a-js/sdk/client';
import { LegacyJsonRpcTransport, parseLegacyAgentCard } from '@a2a-js/sdk/compat/v0_3/client';
import { A2A_ERROR_CODE, RequestMalformedError, TaskNotCancelableError, TaskNotFoundError } from '@a2a-js/sdk/errors';
import { AgentConfig } from '../../src/config';
import { JobCaller } from '../../src/jobs/job-service';
import { workerConfig } from '../support/fixtures';
import { ScriptedJobs } from '../support/scripted-jobs';
import { a2aClient, brief, data, send, serveA2a, text, textOf } from './support';

// The A2A layer against a JobService whose tasks finish when the test says
// so, served by node:http the way the entry's router serves it, and driven
// with the SDK's own client.

const coordinator = (patch: Partial<AgentConfig> = {}): AgentConfig =>
  workerConfig({
    cluster: 'research',
    role: 'coordinator',
    kind: 'coordinator',
    entry: true,
    peers: [
      { role: 'task-executor', kind: 'worker', address: 'task-executor-grpc.test.svc.cluster.local:50051', maxInFlightTasks: 8, models: ['gpt-4.1'] },
      { role: 'supervisor', kind: 'supervisor', address: 'supervisor-grpc.test.svc.cluster.local:50051', maxInFlightTasks: 8, roles: ['supervisor', 'validation'] },
    ],
    ...patch,
  });

const TENANTS: Record<string, string> = { 'key-a': 'a', 'key-b': 'b' };

function serve(config: AgentConfig, jobs: ScriptedJobs) {
  return serveA2a(config, jobs, (req): JobCaller => {
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    return key ? { tenant: TENANTS[key] } : {};
  });
}

async function rpc(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/a2a`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** The `data:` payloads of an SSE body. */
function sseData(body: string): any[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)));
}

let server: { url: string; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('agent card', () => {
  test('1.0 card: cluster/entry name, the reachable roles as skills, streaming, the JSON-RPC URL; no security when the API is open', async () => {
    server = await serve(coordinator(), new ScriptedJobs());
    const client = await a2aClient(server.url);
    const card = await client.getAgentCard();
    expect(card.name).toBe('research/coordinator');
    expect(card.skills.map((s) => s.id).sort()).toEqual(['supervisor', 'task-executor', 'validation']);
    expect(card.skills.find((s) => s.id === 'validation')!.description).toMatch(/reached through supervisor/);
    expect(card.capabilities?.streaming).toBe(true);
    expect(card.supportedInterfaces.map((i) => [i.protocolBinding, i.protocolVersion, i.url])).toEqual([
      ['JSONRPC', '1.0', `${server.url}/a2a`],
      ['JSONRPC', '0.3', `${server.url}/a2a`],
    ]);
    expect(client.protocolVersion).toBe('1.0');
    // an open API's card declares no scheme (the 1.0 JSON leaves empty fields out)
    expect(card.securitySchemes ?? {}).toEqual({});
    expect(card.securityRequirements ?? []).toEqual([]);
  });

  test('with API keys the card declares the bearer scheme and requires it', async () => {
    server = await serve(coordinator({ auth: { mode: 'api-keys', keysFile: 'keys.json' } }), new ScriptedJobs());
    const card = await (await a2aClient(server.url)).getAgentCard();
    expect(card.securitySchemes.bearer.scheme).toEqual({ $case: 'httpAuthSecurityScheme', value: expect.objectContaining({ scheme: 'Bearer' }) });
    expect(card.securityRequirements).toEqual([{ schemes: { bearer: { list: [] } } }]);
  });

  test('a request without A2A-Version gets the 0.3 card, which the SDK reads back to the same skills, URL and scheme', async () => {
    server = await serve(coordinator({ auth: { mode: 'api-keys', keysFile: 'keys.json' } }), new ScriptedJobs());
    const raw = (await (await fetch(`${server.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
    expect(raw).toMatchObject({ name: 'research/coordinator', url: `${server.url}/a2a`, protocolVersion: '0.3', preferredTransport: 'JSONRPC', capabilities: { streaming: true } });
    expect(raw.securitySchemes).toEqual({ bearer: expect.objectContaining({ type: 'http', scheme: 'Bearer' }) });
    expect(raw.security).toEqual([{ bearer: [] }]);
    const parsed = parseLegacyAgentCard(raw);
    expect(parsed.skills.map((s) => s.id).sort()).toEqual(['supervisor', 'task-executor', 'validation']);
    expect(parsed.supportedInterfaces[0]).toMatchObject({ url: `${server.url}/a2a`, protocolVersion: '0.3' });
  });
});

describe('SendMessage (1.0, SDK client)', () => {
  test('blocking: a text message is a one-task job; the task is the job, its result an artifact', async () => {
    const jobs = new ScriptedJobs({ autoFinish: true });
    server = await serve(coordinator(), jobs);
    const client = await a2aClient(server.url);
    const task = await client.sendMessage(send([text('Summarise'), text('the report')], { messageId: 'm-1' }));
    if (!('status' in task)) throw new Error('expected a task');
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(task.id).toBe('job-1');
    expect(task.artifacts.map((a) => [a.artifactId, textOf(a.parts)])).toEqual([['t0', 'echo:t0']]);
    const result = task.artifacts[0].parts.find((p) => p.content?.$case === 'data')!.content!.value;
    expect(result).toMatchObject({ id: 't0', ok: true, content: 'echo:t0' });
    expect(task.metadata).toMatchObject({ durable: false, success_rate: 1 });
    expect(jobs.submitted).toEqual([{ body: { tasks: [{ prompt: 'Summarise\nthe report' }] }, opts: { idempotencyKey: 'a2a:m-1' } }]);
  });

  test('a data part with steps is a workflow job: one artifact per step', async () => {
    const jobs = new ScriptedJobs({ autoFinish: true });
    server = await serve(coordinator(), jobs);
    const client = await a2aClient(server.url);
    const workflow = { steps: [{ id: 'draft', prompt: 'Draft it' }, { id: 'check', prompt: 'Check {{steps.draft.content}}', depends_on: ['draft'], role: 'validation' }] };
    const task = await client.sendMessage(send([data(workflow)]));
    if (!('status' in task)) throw new Error('expected a task');
    expect(jobs.submitted[0].body).toEqual(workflow);
    expect(task.artifacts.map((a) => a.artifactId)).toEqual(['draft', 'check']);
  });

  test('the same message sent twice (a retry) finds the same task and runs nothing again', async () => {
    const jobs = new ScriptedJobs({ autoFinish: true });
    server = await serve(coordinator(), jobs);
    const client = await a2aClient(server.url);
    const first = await client.sendMessage(send([text('once')], { messageId: 'retry-me' }));
    const again = await client.sendMessage(send([text('once')], { messageId: 'retry-me' }));
    expect([(first as { id: string }).id, (again as { id: string }).id]).toEqual(['job-1', 'job-1']);
    expect(jobs.submitted).toHaveLength(1);
  });

  test('returnImmediately answers with the submitted task before it runs', async () => {
    server = await serve(coordinator(), new ScriptedJobs());
    const task = await (await a2aClient(server.url)).sendMessage(send([text('later')], { returnImmediately: true }));
    expect((task as { status?: { state: TaskState } }).status?.state).toBe(TaskState.TASK_STATE_SUBMITTED);
  });
});

describe('SendStreamingMessage (1.0, SDK client)', () => {
  test('the task, then each result as it finishes, then the final status', async () => {
    const jobs = new ScriptedJobs();
    server = await serve(coordinator(), jobs);
    const client = await a2aClient(server.url);
    const seen: string[] = [];
    const workflow = { steps: [{ id: 'a', prompt: 'A' }, { id: 'b', prompt: 'B' }] };
    let last;
    for await (const e of client.sendMessageStream(send([data(workflow)]))) {
      seen.push(brief(e));
      last = e;
      // each result is released only once the stream has shown what came before it
      if (seen.length === 1) jobs.finish('job-1', 'b', 'second');
      if (seen.length === 3) jobs.finish('job-1', 'a', 'first');
    }
    expect(seen).toEqual([`task:${TaskState.TASK_STATE_SUBMITTED}`, `status:${TaskState.TASK_STATE_WORKING}`, 'artifact:b', 'artifact:a', `status:${TaskState.TASK_STATE_COMPLETED}`]);
    expect(last!.payload!.$case === 'statusUpdate' && textOf(last!.payload!.value.status?.message?.parts)).toBe('job succeeded: 2 of 2 steps succeeded, cost 0.002000 USD');
  });

  test('resubscribing mid-job sends the results so far in the task, then only the new ones', async () => {
    const jobs = new ScriptedJobs();
    server = await serve(coordinator(), jobs);
    const client = await a2aClient(server.url);
    const sent = await client.sendMessage(send([data({ steps: [{ id: 'a', prompt: 'A' }, { id: 'b', prompt: 'B' }] })], { returnImmediately: true }));
    jobs.finish('job-1', 'a', 'first');
    const seen: string[] = [];
    for await (const e of client.resubscribeTask({ tenant: '', id: (sent as { id: string }).id })) {
      seen.push(e.payload!.$case === 'task' ? `task:${e.payload!.value.artifacts.map((a) => a.artifactId).join(',')}` : brief(e));
      if (seen.length === 1) jobs.finish('job-1', 'b', 'second');
    }
    expect(seen).toEqual(['task:a', 'artifact:b', `status:${TaskState.TASK_STATE_COMPLETED}`]);
  });
});

describe('GetTask and CancelTask (1.0, SDK client)', () => {
  let jobs: ScriptedJobs;
  let client: Client;
  beforeEach(async () => {
    jobs = new ScriptedJobs();
    server = await serve(coordinator(), jobs);
    client = await a2aClient(server.url);
  });

  test('GetTask reads the job as it stands', async () => {
    await client.sendMessage(send([data({ steps: [{ id: 'a', prompt: 'A' }, { id: 'b', prompt: 'B' }] })], { returnImmediately: true }));
    jobs.finish('job-1', 'a', 'first');
    const task = await client.getTask({ tenant: '', id: 'job-1' });
    expect([task.status?.state, task.artifacts.map((a) => a.artifactId)]).toEqual([TaskState.TASK_STATE_WORKING, ['a']]);
  });

  test('CancelTask cancels the job: unfinished tasks end cancelled; a second cancel is TaskNotCancelable', async () => {
    await client.sendMessage(send([data({ steps: [{ id: 'a', prompt: 'A' }, { id: 'b', prompt: 'B' }] })], { returnImmediately: true }));
    jobs.finish('job-1', 'a', 'first');
    const task = await client.cancelTask({ tenant: '', id: 'job-1', metadata: undefined });
    expect(task.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect(task.artifacts.map((a) => [a.artifactId, a.description])).toEqual([
      ['a', ''],
      ['b', 'failed: the job was cancelled'],
    ]);
    expect((await client.getTask({ tenant: '', id: 'job-1' })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await expect(client.cancelTask({ tenant: '', id: 'job-1', metadata: undefined })).rejects.toThrow(TaskNotCancelableError);
  });

  test('an unknown task id is TaskNotFound for get, cancel and resubscribe', async () => {
    await expect(client.getTask({ tenant: '', id: 'no-such-job' })).rejects.toThrow(TaskNotFoundError);
    await expect(client.cancelTask({ tenant: '', id: 'no-such-job', metadata: undefined })).rejects.toThrow(TaskNotFoundError);
    const stream = client.resubscribeTask({ tenant: '', id: 'no-such-job' });
    await expect(stream.next()).rejects.toThrow(TaskNotFoundError);
  });
});

describe('bad requests get a JSON-RPC error with a message; the server keeps serving', () => {
  test('a message with nothing to run, a data part without steps, a body the job API rejects: invalid params', async () => {
    server = await serve(coordinator(), new ScriptedJobs({ autoFinish: true }));
    const client = await a2aClient(server.url);
    await expect(client.sendMessage(send([]))).rejects.toThrow(RequestMalformedError);
    await expect(client.sendMessage(send([]))).rejects.toThrow("message.parts: give a text part (one task) or a data part with 'steps' (a workflow)");
    await expect(client.sendMessage(send([data({ tasks: [] })]))).rejects.toThrow("message.parts: a data part must carry 'steps'");
    await expect(client.sendMessage(send([text('reject me')]))).rejects.toThrow('tasks.0.prompt: rejected by the test');
    // and it still serves
    const ok = await client.sendMessage(send([text('fine')]));
    expect((ok as { status?: { state: TaskState } }).status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  });

  test('params of the wrong type, bad JSON, an unknown method, a foreign content type, an unsupported version', async () => {
    server = await serve(coordinator(), new ScriptedJobs());
    const v1 = { 'A2A-Version': '1.0' };
    const err = async (body: unknown, headers: Record<string, string> = v1) => JSON.parse((await rpc(server!.url, body, headers)).text).error;
    expect(await err({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: 'nope' })).toMatchObject({ code: A2A_ERROR_CODE.INVALID_PARAMS, message: expect.any(String) });
    expect(await err({ jsonrpc: '2.0', id: 2, method: 'GetTask', params: { id: '' } })).toMatchObject({ code: A2A_ERROR_CODE.INVALID_PARAMS, message: 'id: the task id is required' });
    expect(await err('{"jsonrpc": "2.0", ')).toMatchObject({ code: A2A_ERROR_CODE.PARSE_ERROR, message: expect.stringMatching(/^body is not valid JSON/) });
    expect(await err({ jsonrpc: '2.0', id: 3, method: 'NoSuchMethod', params: {} })).toMatchObject({ code: A2A_ERROR_CODE.METHOD_NOT_FOUND });
    expect(await err({ jsonrpc: '2.0', id: 4, method: 'GetTask', params: { id: 'x' } }, { 'A2A-Version': '7.0' })).toMatchObject({ code: A2A_ERROR_CODE.VERSION_NOT_SUPPORTED });
    const res = await fetch(`${server.url}/a2a`, { method: 'POST', headers: { 'content-type': 'text/plain', ...v1 }, body: '{}' });
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(A2A_ERROR_CODE.CONTENT_TYPE_NOT_SUPPORTED);
    expect(await err({ jsonrpc: '2.0', id: 5, method: 'ListTasks', params: {} })).toMatchObject({ code: A2A_ERROR_CODE.UNSUPPORTED_OPERATION });
    // bodies that are JSON but no request at all, in both protocol versions
    for (const headers of [v1, {}]) {
      for (const odd of ['null', '[]', '"x"', '1', '{}']) expect(await err(odd, headers)).toMatchObject({ code: expect.any(Number), message: expect.any(String) });
    }
    expect((await fetch(`${server.url}/.well-known/agent-card.json`)).status).toBe(200);
  });
});

describe('A2A 0.3 method names (no A2A-Version header)', () => {
  test('message/send (blocking), tasks/get, tasks/cancel, message/stream', async () => {
    const jobs = new ScriptedJobs();
    server = await serve(coordinator(), jobs);
    const message = (parts: unknown[]) => ({ kind: 'message', messageId: `m-${Math.random()}`, role: 'user', parts });

    const submitted = JSON.parse((await rpc(server.url, { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: message([{ kind: 'text', text: 'hi' }]), configuration: { blocking: false } } })).text);
    expect(submitted.result).toMatchObject({ kind: 'task', id: 'job-1', status: { state: 'submitted' } });
    const got = JSON.parse((await rpc(server.url, { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { id: 'job-1' } })).text);
    expect(got.result).toMatchObject({ kind: 'task', id: 'job-1', status: { state: 'submitted' } });
    const cancelled = JSON.parse((await rpc(server.url, { jsonrpc: '2.0', id: 3, method: 'tasks/cancel', params: { id: 'job-1' } })).text);
    expect(cancelled.result).toMatchObject({ kind: 'task', status: { state: 'canceled' } });
    const missing = JSON.parse((await rpc(server.url, { jsonrpc: '2.0', id: 4, method: 'tasks/get', params: { id: 'nope' } })).text);
    expect(missing.error).toMatchObject({ code: A2A_ERROR_CODE.TASK_NOT_FOUND, message: 'task nope: no such task' });

    // blocking send, answered when the job ends
    const pending = rpc(server.url, { jsonrpc: '2.0', id: 5, method: 'message/send', params: { message: message([{ kind: 'text', text: 'wait' }]), configuration: { blocking: true } } });
    while (!(await jobs.get('job-2', {}))) await new Promise((r) => setImmediate(r));
    jobs.finish('job-2', 't0', 'done');
    expect(JSON.parse((await pending).text).result).toMatchObject({ kind: 'task', status: { state: 'completed' }, artifacts: [{ artifactId: 't0', parts: [{ kind: 'text', text: 'done' }, { kind: 'data' }] }] });

    // message/stream: SSE with JSON-RPC envelopes
    const stream = rpc(server.url, { jsonrpc: '2.0', id: 6, method: 'message/stream', params: { message: message([{ kind: 'text', text: 'stream' }]) } });
    while (!(await jobs.get('job-3', {}))) await new Promise((r) => setImmediate(r));
    jobs.finish('job-3', 't0', 'streamed');
    const res = await stream;
    expect(res.type).toBe('text/event-stream');
    const events = sseData(res.text).map((e) => e.result);
    expect(events.map((e) => e.kind)).toEqual(['task', 'status-update', 'artifact-update', 'status-update']);
    expect(events[3]).toMatchObject({ final: true, status: { state: 'completed' } });
  });
});

describe("the SDK's 0.3 client (LegacyJsonRpcTransport) on the 0.3 card", () => {
  test('send, stream, get and cancel', async () => {
    const jobs = new ScriptedJobs();
    server = await serve(coordinator(), jobs);
    const raw = (await (await fetch(`${server.url}/.well-known/agent-card.json`)).json()) as { url: string };
    const legacy = new Client(new LegacyJsonRpcTransport({ endpoint: raw.url }), parseLegacyAgentCard(raw));
    expect(legacy.protocolVersion).toBe('0.3');

    const submitted = (await legacy.sendMessage(send([text('queued')], { returnImmediately: true }))) as { id: string; status?: { state: TaskState } };
    expect(submitted.status?.state).toBe(TaskState.TASK_STATE_SUBMITTED);
    expect((await legacy.getTask({ tenant: '', id: submitted.id })).id).toBe(submitted.id);
    expect((await legacy.cancelTask({ tenant: '', id: submitted.id, metadata: undefined })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await expect(legacy.getTask({ tenant: '', id: 'nope' })).rejects.toThrow(/no such task/);

    const seen: string[] = [];
    for await (const e of legacy.sendMessageStream(send([text('streamed')]))) {
      seen.push(brief(e));
      if (seen.length === 1) jobs.finish('job-2', 't0', 'done');
    }
    expect(seen).toEqual([`task:${TaskState.TASK_STATE_SUBMITTED}`, `status:${TaskState.TASK_STATE_WORKING}`, 'artifact:t0', `status:${TaskState.TASK_STATE_COMPLETED}`]);
  });
});

describe('tenants', () => {
  test("a task is visible only to its tenant's API key", async () => {
    server = await serve(coordinator({ auth: { mode: 'api-keys', keysFile: 'keys.json' } }), new ScriptedJobs({ autoFinish: true }));
    const a = await a2aClient(server.url, 'key-a');
    const b = await a2aClient(server.url, 'key-b');
    const task = (await a.sendMessage(send([text('mine')]))) as { id: string };
    expect((await a.getTask({ tenant: '', id: task.id })).id).toBe(task.id);
    await expect(b.getTask({ tenant: '', id: task.id })).rejects.toThrow(TaskNotFoundError);
    // the request's own tenant field does not change whose jobs a key sees
    await expect(b.getTask({ tenant: 'a', id: task.id })).rejects.toThrow(TaskNotFoundError);
  });
});
