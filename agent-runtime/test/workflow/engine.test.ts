import { countTokens } from '../../src/context/window';
import { parseJob } from '../../src/http/jobs';
import { Task, TaskResult } from '../../src/types';
import { runWorkflow, WorkflowRunOptions } from '../../src/workflow/engine';
import { Workflow } from '../../src/workflow/types';
import { parseVerdict } from '../../src/workflow/verdict';
import { workerConfig } from '../support/fixtures';

/** A workflow as the entry parses it (a worker entry, so any role name is its own). */
function workflow(body: object): Workflow {
  const config = workerConfig({ role: 'any', entry: true, peers: [{ role: 'r', kind: 'worker', address: 'r:1', maxInFlightTasks: 1, roles: ['r', 'exec', 'check', 'fetch'] }] });
  const job = parseJob(JSON.stringify(body), config);
  if (job.kind !== 'steps') throw new Error('not a workflow');
  return job.workflow;
}

interface Call {
  task: Task;
  at: number;
}

/**
 * A stand-in for the entry's task runner: answers each task after `delayMs`
 * with `answer(task)`, records every call and the most at once.
 */
function fakeRunner(answer: (t: Task, n: number) => Partial<TaskResult> = (t) => ({ content: `answer of ${t.id}` }), delayMs = 5) {
  const calls: Call[] = [];
  let running = 0;
  let maxRunning = 0;
  const run: WorkflowRunOptions['run'] = async (task) => {
    calls.push({ task, at: Date.now() });
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((r) => setTimeout(r, delayMs));
    running -= 1;
    const base: TaskResult = {
      id: task.id,
      ok: true,
      content: `answer of ${task.id}`,
      model: task.model ?? 'gpt-4.1',
      agentId: `${task.role ?? 'w'}-0`,
      usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15 },
      costUsd: 0.001,
      attempts: 1,
      latencyMs: delayMs,
    };
    return { ...base, ...answer(task, calls.length) };
  };
  return { run, calls, max: () => maxRunning };
}

const lastUser = (t: Task) => [...t.messages].reverse().find((m) => m.role === 'user')!.content;

describe('scheduling', () => {
  test('a step starts after its dependencies, sees their answers, and results keep the order given', async () => {
    const wf = workflow({
      input: { topic: 'PDBs' },
      steps: [
        { id: 'c', prompt: 'use {{steps.a.content}} and {{steps.b.content}}', depends_on: ['a', 'b'] },
        { id: 'a', prompt: 'about {{input.topic}}' },
        { id: 'b', prompt: 'more about {{input.topic}}' },
      ],
    });
    const f = fakeRunner();
    const results = await runWorkflow(wf, { run: f.run, concurrency: 4 });
    expect(results.map((r) => [r.id, r.ok, r.rounds])).toEqual([
      ['c', true, 1],
      ['a', true, 1],
      ['b', true, 1],
    ]);
    expect(f.calls.map((c) => c.task.id)).toEqual(['a', 'b', 'c']);
    expect(lastUser(f.calls[0].task)).toBe('about PDBs');
    expect(lastUser(f.calls[2].task)).toBe('use answer of a and answer of b');
    expect(f.max()).toBe(2); // a and b ran together
    expect(results[0]).toMatchObject({ content: 'answer of c', costUsd: 0.001, attempts: 1, usage: { totalTokens: 15 } });
  });

  test('independent steps run at most `concurrency` at once', async () => {
    const wf = workflow({ steps: Array.from({ length: 9 }, (_, i) => ({ id: `s${i}`, prompt: `p${i}` })) });
    const f = fakeRunner(undefined, 15);
    const results = await runWorkflow(wf, { run: f.run, concurrency: 3 });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(f.calls).toHaveLength(9);
    expect(f.max()).toBe(3);
  });

  test('a failed dependency: dependents (and theirs) are not run, not billed, dependency_failed; siblings still run', async () => {
    const wf = workflow({
      steps: [
        { id: 'a', prompt: 'fails' },
        { id: 'b', prompt: 'after a', depends_on: ['a'] },
        { id: 'c', prompt: 'after b', depends_on: ['b'] },
        { id: 'd', prompt: 'independent' },
        { id: 'e', prompt: 'after a and d', depends_on: ['d', 'a'] },
      ],
    });
    const f = fakeRunner((t) => (t.id === 'a' ? { ok: false, content: undefined, usage: undefined, costUsd: 0.0005, error: { code: 'upstream_error', message: '503' } } : {}));
    const results = await runWorkflow(wf, { run: f.run, concurrency: 4 });
    expect(f.calls.map((c) => c.task.id).sort()).toEqual(['a', 'd']);
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId.a).toMatchObject({ ok: false, rounds: 1, error: { code: 'upstream_error' } });
    for (const id of ['b', 'c', 'e']) {
      expect(byId[id]).toMatchObject({ ok: false, rounds: 0, costUsd: 0, attempts: 0, error: { code: 'dependency_failed' } });
      expect(byId[id].usage).toBeUndefined();
    }
    expect(byId.b.error!.message).toBe("not run: step 'a' failed (upstream_error)");
    expect(byId.c.error!.message).toBe("not run: step 'b' failed (dependency_failed)");
    expect(byId.d.ok).toBe(true);
  });

  test('a long chain of failures is skipped without a deep stack', async () => {
    const n = 5000;
    const steps = Array.from({ length: n }, (_, i) => ({ id: `s${i}`, prompt: 'x', ...(i > 0 ? { depends_on: [`s${i - 1}`] } : {}) }));
    const config = workerConfig({ role: 'any', entry: true });
    const job = parseJob(JSON.stringify({ steps }), config);
    if (job.kind !== 'steps') throw new Error('not steps');
    const f = fakeRunner(() => ({ ok: false, error: { code: 'bad_request', message: 'no' } }), 0);
    const results = await runWorkflow(job.workflow, { run: f.run, concurrency: 8 });
    expect(f.calls).toHaveLength(1);
    expect(results.filter((r) => r.error?.code === 'dependency_failed')).toHaveLength(n - 1);
  });
});

describe('validation loops', () => {
  const loop = (maxRounds?: number) =>
    workflow({
      input: { topic: 'PDBs' },
      steps: [
        { id: 'draft', role: 'exec', prompt: 'Write about {{input.topic}}' },
        { id: 'review', role: 'check', validates: 'draft', depends_on: ['draft'], prompt: 'Check: {{steps.draft.content}}', ...(maxRounds ? { max_rounds: maxRounds } : {}) },
        { id: 'publish', role: 'exec', prompt: 'Publish {{steps.draft.content}}', depends_on: ['draft'] },
        { id: 'after', role: 'exec', prompt: 'after review', depends_on: ['review'] },
      ],
    });

  test('rejected once, passed on round two: the second draft request carries the earlier messages, the last answer and the feedback', async () => {
    let drafts = 0;
    const f = fakeRunner((t) => {
      if (t.role === 'exec' && t.id.startsWith('draft')) return { content: `draft v${++drafts}` };
      if (t.role === 'check') return { content: JSON.stringify(lastUser(t).includes('draft v1') ? { pass: false, feedback: 'add an example' } : { pass: true, feedback: 'good' }) };
      return {};
    });
    const results = await runWorkflow(loop(), { run: f.run, concurrency: 4 });
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    const draftCalls = f.calls.filter((c) => c.task.id.startsWith('draft'));
    expect(draftCalls.map((c) => c.task.id)).toEqual(['draft', 'draft#2']);
    expect(draftCalls[1].task.messages).toEqual([
      { role: 'user', content: 'Write about PDBs' },
      { role: 'assistant', content: 'draft v1' },
      { role: 'user', content: expect.stringContaining('Feedback: add an example') },
    ]);
    // the validator asks for a verdict (schema and prompt) and judges the revised answer the second time
    const reviews = f.calls.filter((c) => c.task.role === 'check');
    expect(reviews).toHaveLength(2);
    expect(reviews[0].task.responseSchema?.name).toBe('verdict');
    expect(lastUser(reviews[0].task)).toMatch(/^Check: draft v1\n\nReply with a JSON object only/);
    expect(lastUser(reviews[1].task)).toMatch(/^Check: draft v2/);
    expect(byId.draft).toMatchObject({ ok: true, rounds: 2, content: 'draft v2', costUsd: 0.002, attempts: 2, usage: { totalTokens: 30 } });
    expect(byId.review).toMatchObject({ ok: true, rounds: 2, content: JSON.stringify({ pass: true, feedback: 'good' }) });
    // a step depending on the validated step waits for the verdict and sees the answer that passed
    const publish = f.calls.find((c) => c.task.id === 'publish')!;
    expect(lastUser(publish.task)).toBe('Publish draft v2');
    expect(byId.publish.ok && byId.after.ok).toBe(true);
  });

  test('max_rounds runs without a pass: validation_failed with the last feedback; dependents dependency_failed', async () => {
    let n = 0;
    const f = fakeRunner((t) => (t.role === 'check' ? { content: JSON.stringify({ pass: false, feedback: `still wrong ${++n}` }) } : {}));
    const results = await runWorkflow(loop(2), { run: f.run, concurrency: 4 });
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId.draft).toMatchObject({ ok: true, rounds: 2 });
    expect(byId.review).toMatchObject({ ok: false, rounds: 2, error: { code: 'validation_failed' } });
    expect(byId.review.error!.message).toBe("step 'draft' did not pass in 2 rounds (max_rounds 2); last feedback: still wrong 2");
    for (const id of ['publish', 'after']) expect(byId[id]).toMatchObject({ ok: false, rounds: 0, costUsd: 0, error: { code: 'dependency_failed' } });
    expect(f.calls.filter((c) => c.task.id.startsWith('publish') || c.task.id === 'after')).toHaveLength(0);
  });

  test('default max_rounds is 3', async () => {
    const f = fakeRunner((t) => (t.role === 'check' ? { content: '{"pass": false, "feedback": "no"}' } : {}));
    const results = await runWorkflow(loop(), { run: f.run, concurrency: 4 });
    expect(results.find((r) => r.id === 'draft')!.rounds).toBe(3);
    expect(f.calls.filter((c) => c.task.role === 'check')).toHaveLength(3);
  });

  test('a reply that is not a verdict is an error, never a pass', async () => {
    for (const reply of ['looks fine to me', '{"pass": "yes", "feedback": "x"}', '{"pass": true}', '[true]', 'null']) {
      const f = fakeRunner((t) => (t.role === 'check' ? { content: reply } : {}));
      const results = await runWorkflow(loop(), { run: f.run, concurrency: 4 });
      const review = results.find((r) => r.id === 'review')!;
      expect(review).toMatchObject({ ok: false, rounds: 1, error: { code: 'bad_response' } });
      expect(review.error!.message).toMatch(/is not a verdict \{"pass": boolean, "feedback": string\}/);
      expect(results.find((r) => r.id === 'after')!.error!.code).toBe('dependency_failed');
      expect(f.calls.filter((c) => c.task.id.startsWith('draft'))).toHaveLength(1);
    }
  });

  test('the validated step failing on a revision fails it, and the validator reports why', async () => {
    const f = fakeRunner((t) => {
      if (t.id === 'draft#2') return { ok: false, content: undefined, error: { code: 'rate_limited', message: '429' } };
      if (t.role === 'check') return { content: '{"pass": false, "feedback": "redo"}' };
      return {};
    });
    const results = await runWorkflow(loop(), { run: f.run, concurrency: 4 });
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId.draft).toMatchObject({ ok: false, rounds: 2, error: { code: 'rate_limited' } });
    expect(byId.review).toMatchObject({ ok: false, error: { code: 'dependency_failed' } });
    expect(byId.review.error!.message).toMatch(/step 'draft' failed on round 2 \(rate_limited: 429\)/);
    expect(byId.publish.error!.code).toBe('dependency_failed');
  });

  test('parseVerdict accepts a fenced verdict and nothing looser', () => {
    expect(parseVerdict('```json\n{"pass": true, "feedback": "ok"}\n```')).toEqual({ pass: true, feedback: 'ok' });
    expect(parseVerdict('{"pass": false, "feedback": "x", "score": 3}')).toEqual({ pass: false, feedback: 'x' });
    expect(parseVerdict('{"pass": 1, "feedback": "x"}')).toBeUndefined();
    expect(parseVerdict(undefined)).toBeUndefined();
  });
});

describe('chains', () => {
  const chain = workflow({
    context: 'chain',
    steps: [
      { id: 's1', role: 'fetch', messages: [{ role: 'system', content: 'you fetch' }, { role: 'user', content: 'step one' }] },
      { id: 's2', role: 'exec', prompt: 'step two', depends_on: ['s1'] },
      { id: 's3', role: 'exec', messages: [{ role: 'system', content: 'SYSTEM three' }, { role: 'user', content: 'step three' }], depends_on: ['s2'] },
      { id: 'solo', role: 'exec', prompt: 'isolated one', depends_on: ['s1'], context: 'isolated' },
    ],
  });

  test("step 3's request carries steps 1 and 2 in dependency order, its own system prompt first", async () => {
    const f = fakeRunner();
    await runWorkflow(chain, { run: f.run, concurrency: 4 });
    const s3 = f.calls.find((c) => c.task.id === 's3')!.task;
    expect(s3.messages).toEqual([
      { role: 'system', content: 'SYSTEM three' },
      { role: 'user', content: 'step one' },
      { role: 'assistant', content: 'answer of s1' },
      { role: 'user', content: 'step two' },
      { role: 'assistant', content: 'answer of s2' },
      { role: 'user', content: 'step three' },
    ]);
    expect(f.calls.find((c) => c.task.id === 'solo')!.task.messages).toEqual([{ role: 'user', content: 'isolated one' }]);
  });

  test('trimmed in tokens to the model window: oldest turns go first, the system prompt stays', async () => {
    const long = (tag: string) => `${tag} ${'lorem ipsum dolor sit amet '.repeat(40)}`;
    const f = fakeRunner((t) => ({ content: long(`answer-${t.id}`) }));
    const perTurn = countTokens(long('answer-s1'), 'o200k_base') + 4;
    // room for the system prompt, the short turns and one long answer, not two
    const window = { model: 'gpt-4.1', tokenizer: 'o200k_base', reserveTokens: 0, contextWindowTokens: Math.round(1.5 * perTurn) + 60 };
    await runWorkflow(chain, { run: f.run, concurrency: 4, windowFor: (s) => (s.id === 's3' ? window : undefined) });
    const s3 = f.calls.find((c) => c.task.id === 's3')!.task;
    expect(s3.messages[0]).toEqual({ role: 'system', content: 'SYSTEM three' });
    expect(s3.messages[s3.messages.length - 1]).toEqual({ role: 'user', content: 'step three' });
    // s1's exchange (the oldest) is gone, s2's is kept whole
    expect(s3.messages.map((m) => m.content.split(' ')[0])).toEqual(['SYSTEM', 'step', 'answer-s2', 'step']);
    expect(s3.messages[1].content).toBe('step two');
  });

  test('a chain whose own newest turn cannot fit ends context_overflow without a call', async () => {
    const f = fakeRunner();
    const results = await runWorkflow(chain, { run: f.run, concurrency: 4, windowFor: (s) => (s.id === 's2' ? { model: 'tiny', tokenizer: 'o200k_base', reserveTokens: 0, contextWindowTokens: 5 } : undefined) });
    const s2 = results.find((r) => r.id === 's2')!;
    expect(s2).toMatchObject({ ok: false, model: 'tiny', costUsd: 0, error: { code: 'context_overflow' } });
    expect(f.calls.map((c) => c.task.id)).not.toContain('s2');
    expect(results.find((r) => r.id === 's3')!.error!.code).toBe('dependency_failed');
  });
});

describe('a request that cannot be built', () => {
  // parseJob refuses such templates with a 400; a hand-built workflow that slips one past it
  // must end the job with an error, never leave it (and its HTTP request) hanging
  test('a template naming a step with no answer rejects the run instead of hanging it', async () => {
    const step = (id: string, content: string, dependsOn: string[], index: number) => ({
      id,
      index,
      messages: [{ role: 'user' as const, content }],
      dependsOn,
      maxRounds: 3,
      context: 'isolated' as const,
    });
    const wf: Workflow = { input: {}, steps: [step('a', 'first', [], 0), step('b', 'uses {{steps.ghost.content}}', ['a'], 1)] };
    const f = fakeRunner();
    await expect(runWorkflow(wf, { run: f.run, concurrency: 2 })).rejects.toBeInstanceOf(Error);
    expect(f.calls.map((c) => c.task.id)).toEqual(['a']);
  }, 10_000);
});
