import { parseJob } from '../../src/http/jobs';
import { StoredResult } from '../../src/jobs/records';
import { runJob } from '../../src/jobs/runner';
import { RunTasks } from '../../src/server/core';
import { Task, TaskResult } from '../../src/types';
import { StepResult } from '../../src/workflow/engine';
import { workerConfig } from '../support/fixtures';

// The runner resumes a job: what already has a result is not run (not
// billed) again; the rest runs and reports each final result once.

const config = workerConfig({ entry: true });

function agent() {
  const sent: Task[] = [];
  const runTasks: RunTasks = async (_jobId, tasks, _deadline, _hop, onResult) => {
    const out = tasks.map((t): TaskResult => ({ id: t.id, ok: true, content: t.id === "check" ? "{\"pass\": true, \"feedback\": \"fine\"}" : `answer of ${t.id}`, costUsd: 0.1, attempts: 1, latencyMs: 1 }));
    sent.push(...tasks);
    out.forEach((r, i) => onResult?.(r, i));
    return out;
  };
  return { sent, opts: { run: runTasks, concurrency: 4, agentId: 'e-0' } };
}

test('a tasks job: finished indices are skipped, the others reported with their own index', async () => {
  const a = agent();
  const job = parseJob(JSON.stringify({ tasks: ['a', 'b', 'c', 'd'].map((p) => ({ id: p, prompt: p })) }), config);
  const finished = new Map<number, StoredResult>([
    [0, { id: 'a', ok: true, costUsd: 0.1, attempts: 1, latencyMs: 1 }],
    [2, { id: 'c', ok: true, costUsd: 0.1, attempts: 1, latencyMs: 1 }],
  ]);
  const got: Array<[number, string]> = [];
  await runJob('j', job, a.opts, { finished, signal: new AbortController().signal, onResult: (i, r) => got.push([i, r.id]) });
  expect(a.sent.map((t) => t.id)).toEqual(['b', 'd']);
  expect(got).toEqual([[1, 'b'], [3, 'd']]);
});

test('a steps job: a finished step is not run, its content still feeds its dependents; each step reported once, when final', async () => {
  const a = agent();
  const job = parseJob(
    JSON.stringify({
      steps: [
        { id: 'draft', prompt: 'write' },
        { id: 'check', prompt: 'judge {{steps.draft.content}}', depends_on: ['draft'], validates: 'draft' },
        { id: 'final', prompt: 'polish {{steps.draft.content}}', depends_on: ['draft'] },
      ],
    }),
    config,
  );
  const draft: StepResult = { id: 'draft', ok: true, content: 'THE DRAFT', rounds: 1, costUsd: 0.1, attempts: 1, latencyMs: 1 };
  // the validated step without its validator's result does not count as finished: both run again
  const alone = agent();
  const first: Array<[number, string]> = [];
  await runJob('j', job, alone.opts, { finished: new Map([[0, draft]]), signal: new AbortController().signal, onResult: (i, r) => first.push([i, r.id]) });
  expect(alone.sent.map((t) => t.id)).toEqual(['draft', 'check', 'final']);
  expect(first.map(([i]) => i).sort()).toEqual([0, 1, 2]);

  const verdict: StepResult = { id: 'check', ok: true, content: '{"pass": true, "feedback": ""}', rounds: 1, costUsd: 0.1, attempts: 1, latencyMs: 1 };
  const got: Array<[number, string]> = [];
  await runJob('j', job, a.opts, { finished: new Map([[0, draft], [1, verdict]]), signal: new AbortController().signal, onResult: (i, r) => got.push([i, r.id]) });
  expect(a.sent.map((t) => t.id)).toEqual(['final']);
  expect(a.sent[0].messages[a.sent[0].messages.length - 1].content).toContain('polish THE DRAFT');
  expect(got).toEqual([[2, 'final']]);
});
