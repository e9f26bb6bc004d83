import { runBounded } from '../../src/coordination/run-bounded';
import { parseJob, RequestError } from '../../src/http/jobs';
import { JobEvent } from '../../src/jobs/job-service';
import { ExecuteJob, ParseJob } from '../../src/jobs/memory-store';
import { runJob } from '../../src/jobs/runner';
import { RunTasks } from '../../src/server/core';
import { JobStore } from '../../src/jobs/store';
import { TaskResult } from '../../src/types';
import { workerConfig } from '../support/fixtures';

// The behaviour both job stores share (issue 11's job API, below HTTP):
// each store's test file runs these against its own implementation.

export const config = workerConfig({ entry: true });
export const parse: ParseJob = (raw, now) => parseJob(raw, config, now);

/**
 * A stand-in for the agent's task routing: a task whose prompt says `hang`
 * runs until its signal aborts; any other answers after a few ms. Records
 * every call (the "upstream bill").
 */
export function fakeAgent(width = 4, opts: { hang?: boolean; delayMs?: number } = {}) {
  const hangs = opts.hang ?? true;
  const calls: string[] = [];
  const aborted: string[] = [];
  const runTasks: RunTasks = (_jobId, tasks, _deadlineAt, _hop, onResult, signal = new AbortController().signal) =>
    runBounded(
      tasks,
      width,
      async (t): Promise<TaskResult> => {
        // as the executor and the dispatcher do: a task whose job is already cancelled is not sent
        if (signal.aborted) return { id: t.id, ok: false, costUsd: 0, attempts: 0, latencyMs: 0, error: { code: 'cancelled', message: 'cancelled: aborted' } };
        calls.push(t.id);
        const prompt = t.messages[t.messages.length - 1].content;
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          const timer = setTimeout(resolve, hangs && prompt.includes('hang') ? 60_000 : (opts.delayMs ?? 5));
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          }, { once: true });
        });
        if (signal.aborted) {
          aborted.push(t.id);
          return { id: t.id, ok: false, costUsd: 0, attempts: 1, latencyMs: 1, error: { code: 'cancelled', message: 'cancelled: aborted' } };
        }
        return { id: t.id, ok: true, content: `answer of ${t.id}`, model: 'gpt-4.1', costUsd: 0.25, attempts: 1, latencyMs: 5, agentId: 'w-0' };
      },
      onResult,
    );
  const execute: ExecuteJob = (jobId, job, run) => runJob(jobId, job, { run: runTasks, concurrency: width, agentId: 'entry-0' }, run);
  return { calls, aborted, execute };
}

export const body = (prompts: string[]) => JSON.stringify({ tasks: prompts.map((p, i) => ({ id: `t${i}`, prompt: p })) });

export async function collect(it: AsyncIterable<JobEvent> | undefined): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of it!) out.push(e);
  return out;
}

export const until = async (cond: () => boolean | Promise<boolean>, what: string) => {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

/** Runs the shared cases; `make` builds a store around a fake agent's `execute`. */
export function jobStoreContract(make: (execute: ExecuteJob) => Promise<JobStore>, durable: boolean): void {
  let stores: JobStore[] = [];
  const store = async (execute: ExecuteJob) => {
    const s = await make(execute);
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of stores) await s.close();
    stores = [];
  });

  test('submit queues the job; wait and GET show every result in the job\'s order with the summary', async () => {
    const agent = fakeAgent();
    const s = await store(agent.execute);
    const out = await s.submit(body(['a', 'b', 'c']), {});
    expect(out).toEqual({ jobId: expect.stringMatching(/^[0-9a-f-]{36}$/), created: true, durable });
    const view = await s.wait(out.jobId, {});
    expect(view).toMatchObject({ job_id: out.jobId, status: 'succeeded', durable, success_rate: 1, total_cost_usd: 0.75 });
    expect(view!.results!.map((r) => (r as { id: string }).id)).toEqual(['t0', 't1', 't2']);
    expect(view!.results![0]).toMatchObject({ id: 't0', ok: true, content: 'answer of t0', cost_usd: 0.25, agent_id: 'w-0', error: null });
    expect(Date.parse(view!.created_at)).toBeLessThanOrEqual(Date.parse(view!.updated_at));
    expect(await s.get(out.jobId, {})).toEqual(view);
    expect(agent.calls.sort()).toEqual(['t0', 't1', 't2']);
  });

  test('a bad body is refused with a RequestError and nothing is kept', async () => {
    const s = await store(fakeAgent().execute);
    await expect(s.submit('{"tasks": []}', {})).rejects.toBeInstanceOf(RequestError);
    await expect(s.submit('{"tasks": []}', {})).rejects.toThrow(/tasks/);
  });

  test('unknown ids and other tenants\' jobs are not found', async () => {
    const s = await store(fakeAgent().execute);
    expect(await s.get('00000000-0000-0000-0000-000000000000', {})).toBeUndefined();
    expect(await s.cancel('00000000-0000-0000-0000-000000000000', {})).toBeUndefined();
    expect(await s.events('00000000-0000-0000-0000-000000000000', {}, undefined, new AbortController().signal)).toBeUndefined();
    const { jobId } = await s.submit(body(['a']), { tenant: 'acme' });
    expect(await s.get(jobId, {})).toBeUndefined();
    expect(await s.get(jobId, { tenant: 'other' })).toBeUndefined();
    expect((await s.wait(jobId, { tenant: 'acme' }))?.status).toBe('succeeded');
  });

  test('events: one result per task with an id, then done; Last-Event-ID resumes without loss or repeats', async () => {
    const s = await store(fakeAgent().execute);
    const { jobId } = await s.submit(body(['a', 'b', 'c', 'd']), {});
    const all = await collect(await s.events(jobId, {}, undefined, new AbortController().signal));
    expect(all.map((e) => e.event)).toEqual(['result', 'result', 'result', 'result', 'done']);
    expect(new Set(all.map((e) => e.id)).size).toBe(5);
    expect(all.slice(0, 4).map((e) => (e.data as { id: string }).id).sort()).toEqual(['t0', 't1', 't2', 't3']);
    const view = await s.get(jobId, {});
    expect(all[4].data).toEqual(view);
    // the GET shape of each result is what the event carries
    for (const e of all.slice(0, 4)) expect(view!.results).toContainEqual(e.data);
    const rest = await collect(await s.events(jobId, {}, all[1].id, new AbortController().signal));
    expect(rest).toEqual(all.slice(2));
    const afterDone = await collect(await s.events(jobId, {}, all[4].id, new AbortController().signal));
    expect(afterDone).toEqual([]);
  });

  test('events stream live: a watcher that joins mid-job gets the rest as they finish, then done', async () => {
    const s = await store(fakeAgent(1).execute);
    const { jobId } = await s.submit(body(['a', 'b', 'c', 'hang']), {});
    const ac = new AbortController();
    const it = (await s.events(jobId, {}, undefined, ac.signal))![Symbol.asyncIterator]();
    const seen: JobEvent[] = [];
    for (let i = 0; i < 3; i++) seen.push((await it.next()).value as JobEvent);
    expect(seen.map((e) => (e.data as { id: string }).id)).toEqual(['t0', 't1', 't2']);
    expect((await s.get(jobId, {}))!.status).toBe('running');
    await s.cancel(jobId, {});
    const last = [(await it.next()).value as JobEvent, (await it.next()).value as JobEvent];
    expect(last.map((e) => e.event)).toEqual(['result', 'done']);
    expect(last[0].data).toMatchObject({ id: 't3', ok: false, error: { code: 'cancelled' } });
    expect((await it.next()).done).toBe(true);
  });

  test('cancel: nothing new is dispatched, in-flight calls are aborted, unfinished tasks end cancelled', async () => {
    const agent = fakeAgent(2);
    const s = await store(agent.execute);
    const { jobId } = await s.submit(body(['hang', 'hang', 'x', 'y', 'z']), {});
    await until(() => agent.calls.length === 2, 'two tasks in flight');
    const view = await s.cancel(jobId, {});
    expect(view!.status).toBe('cancelled');
    await until(() => agent.aborted.length === 2, 'in-flight calls aborted');
    const final = await s.wait(jobId, {});
    expect(final!.status).toBe('cancelled');
    expect(final!.results).toHaveLength(5);
    expect(final!.results!.map((r) => (r as { error: { code: string } | null }).error?.code)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
    await new Promise((r) => setTimeout(r, 100));
    expect(agent.calls.sort()).toEqual(['t0', 't1']);
    // a second cancel of a finished job changes nothing
    expect((await s.cancel(jobId, {}))!.status).toBe('cancelled');
  });

  test('Idempotency-Key: the same body returns the same job and runs nothing again; another body is a 422 naming the key', async () => {
    const agent = fakeAgent();
    const s = await store(agent.execute);
    const first = await s.submit(body(['a', 'b']), { idempotencyKey: 'order-42' });
    await s.wait(first.jobId, {});
    const again = await s.submit(body(['a', 'b']), { idempotencyKey: 'order-42' });
    expect(again).toEqual({ jobId: first.jobId, created: false, durable });
    // the same JSON with other whitespace and key order is the same body
    const reordered = JSON.stringify({ tasks: ['a', 'b'].map((p, i) => ({ prompt: p, id: `t${i}` })) }, null, 2);
    expect(reordered).not.toBe(body(['a', 'b']));
    expect(await s.submit(reordered, { idempotencyKey: 'order-42' })).toEqual({ jobId: first.jobId, created: false, durable });
    const err = await s.submit(body(['a', 'c']), { idempotencyKey: 'order-42' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).status).toBe(422);
    expect((err as Error).message).toMatch(/Idempotency-Key 'order-42'/);
    // keys belong to a tenant
    const other = await s.submit(body(['a', 'b']), { idempotencyKey: 'order-42', tenant: 'acme' });
    expect(other.created).toBe(true);
    await s.wait(other.jobId, { tenant: 'acme' });
    expect(agent.calls).toHaveLength(4);
  });

  test('steps jobs: each step is a result event, GET shows steps, dependency order kept', async () => {
    const s = await store(fakeAgent().execute);
    const wf = JSON.stringify({ steps: [{ id: 'draft', prompt: 'write' }, { id: 'edit', prompt: 'edit {{steps.draft.content}}', depends_on: ['draft'] }] });
    const { jobId } = await s.submit(wf, {});
    const evs = await collect(await s.events(jobId, {}, undefined, new AbortController().signal));
    expect(evs.map((e) => [e.event, (e.data as { id?: string; job_id?: string }).id ?? (e.data as { job_id?: string }).job_id])).toEqual([['result', 'draft'], ['result', 'edit'], ['done', jobId]]);
    const view = await s.get(jobId, {});
    expect(view).toMatchObject({ status: 'succeeded', success_rate: 1, total_cost_usd: 0.5 });
    expect(view!.steps!.map((r) => (r as { id: string; rounds: number }).rounds)).toEqual([1, 1]);
    expect(view!.results).toBeUndefined();
  });

  test('a job with a failed task ends failed with its success rate', async () => {
    const agent = fakeAgent();
    const s = await store((jobId, job, run) => agent.execute(jobId, job, { ...run, onResult: (i, r) => run.onResult(i, i === 1 ? { ...r, ok: false, error: { code: 'upstream_error', message: 'boom' } } : r) }));
    const { jobId } = await s.submit(body(['a', 'b']), {});
    const view = await s.wait(jobId, {});
    expect(view).toMatchObject({ status: 'failed', success_rate: 0.5 });
  });
}
