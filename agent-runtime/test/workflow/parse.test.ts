import * as fc from 'fast-check';
import { AgentConfig } from '../../src/config';
import { chainWindowFor, parseJob, RequestError } from '../../src/http/jobs';
import { resolveTemplate, templateRefs } from '../../src/workflow/template';
import { workerConfig } from '../support/fixtures';

/** A hub entry: four workers, the data-retrieval one on gemini, as the reference example renders it. */
function hubEntry(patch: Partial<AgentConfig> = {}): AgentConfig {
  return workerConfig({
    role: 'coordinator',
    kind: 'coordinator',
    entry: true,
    models: { default: 'gpt-4.1', clusterDefault: 'gpt-4.1', allowed: ['gpt-4.1'] },
    peers: [
      { role: 'task-executor-a', kind: 'worker', address: 'a:1', maxInFlightTasks: 8, models: ['gpt-4.1'] },
      { role: 'data-retrieval', kind: 'worker', address: 'd:1', maxInFlightTasks: 8, models: ['gemini-2.5-flash'] },
      { role: 'validation', kind: 'worker', address: 'v:1', maxInFlightTasks: 8, models: ['deepseek-v3.2'] },
      { role: 'quality-supervisor', kind: 'supervisor', address: 'q:1', maxInFlightTasks: 8, models: ['deepseek-v3.2'], roles: ['quality-supervisor', 'checker'] },
    ],
    limits: { maxTasksPerJob: 5, maxRequestBytes: 1 << 20 },
    ...patch,
  });
}

const pipeline = () => ({
  input: { topic: 'pod disruption budgets' },
  steps: [
    { id: 'gather', role: 'data-retrieval', prompt: 'Find facts about {{input.topic}}' },
    { id: 'draft', role: 'task-executor-a', prompt: 'Write a summary from: {{steps.gather.content}}', depends_on: ['gather'] },
    { id: 'review', role: 'validation', validates: 'draft', max_rounds: 3, prompt: 'Check this summary: {{steps.draft.content}}', depends_on: ['draft'] },
  ],
  deadline_ms: 60000,
});

function reject(body: unknown, config = hubEntry()): string {
  try {
    parseJob(typeof body === 'string' ? body : JSON.stringify(body), config);
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    expect((e as RequestError).status).toBe(400);
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('parsing a steps job', () => {
  test('the issue example parses with its defaults applied', () => {
    const job = parseJob(JSON.stringify(pipeline()), hubEntry(), 1000);
    expect(job.kind).toBe('steps');
    if (job.kind !== 'steps') return;
    expect(job.deadlineAt).toBe(61000);
    expect(job.workflow.input).toEqual({ topic: 'pod disruption budgets' });
    expect(job.workflow.steps.map((s) => [s.id, s.index, s.role, s.context, s.maxRounds])).toEqual([
      ['gather', 0, 'data-retrieval', 'isolated', 3],
      ['draft', 1, 'task-executor-a', 'isolated', 3],
      ['review', 2, 'validation', 'isolated', 3],
    ]);
    expect(job.workflow.steps[0].messages).toEqual([{ role: 'user', content: 'Find facts about {{input.topic}}' }]);
    expect(job.workflow.steps[2].validates).toBe('draft');
    // a step naming a role keeps that role's own default model
    expect(job.workflow.steps[0].model).toBeUndefined();
  });

  test('context: the job sets it, a step overrides it; max_rounds defaults to 3', () => {
    const body = { context: 'chain', steps: [{ id: 'a', prompt: 'x' }, { id: 'b', prompt: 'y', depends_on: ['a'], context: 'isolated' }] };
    const job = parseJob(JSON.stringify(body), hubEntry());
    if (job.kind !== 'steps') throw new Error('not steps');
    expect(job.workflow.steps.map((s) => s.context)).toEqual(['chain', 'isolated']);
  });

  test('a step or task naming neither model nor role gets the cluster default model; naming either keeps it', () => {
    const config = hubEntry({ models: { default: 'gpt-4.1', clusterDefault: 'claude-sonnet-4.5', allowed: ['gpt-4.1'] } });
    const job = parseJob(JSON.stringify({ steps: [{ id: 'a', prompt: 'x' }, { id: 'b', prompt: 'y', model: 'gemini-2.5-flash' }, { id: 'c', prompt: 'z', role: 'validation' }] }), config);
    if (job.kind !== 'steps') throw new Error('not steps');
    expect(job.workflow.steps.map((s) => s.model)).toEqual(['claude-sonnet-4.5', 'gemini-2.5-flash', undefined]);
    const tasks = parseJob(JSON.stringify({ tasks: [{ prompt: 'x' }, { prompt: 'y', role: 'validation' }, { prompt: 'z', model: 'deepseek-v3.2' }] }), config);
    if (tasks.kind !== 'tasks') throw new Error('not tasks');
    expect(tasks.tasks.map((t) => t.model)).toEqual(['claude-sonnet-4.5', undefined, 'deepseek-v3.2']);
    // without models.clusterDefault, the entry's models.default
    const fallback = parseJob(JSON.stringify({ tasks: [{ prompt: 'x' }] }), hubEntry({ models: { default: 'gpt-4.1', allowed: ['gpt-4.1'] } }));
    expect(fallback.kind === 'tasks' && fallback.tasks[0].model).toBe('gpt-4.1');
  });

  test('a role below a supervisor is reachable; the entry itself is when it calls the upstream', () => {
    expect(parseJob(JSON.stringify({ steps: [{ id: 'a', role: 'checker', prompt: 'x' }] }), hubEntry()).kind).toBe('steps');
    const worker = workerConfig({ role: 'solo', entry: true });
    expect(parseJob(JSON.stringify({ steps: [{ id: 'a', role: 'solo', prompt: 'x' }] }), worker).kind).toBe('steps');
  });

  const cases: Array<[string, unknown, RegExp]> = [
    ['tasks and steps together', { tasks: [{ prompt: 'a' }], steps: [{ id: 'a', prompt: 'a' }] }, /give either 'tasks' or 'steps', not both/],
    ['no steps', { steps: [] }, /^steps: must NOT have fewer than 1 items/],
    ['unknown field on a step', { steps: [{ id: 'a', prompt: 'a', colour: 'red' }] }, /^step 'a' \(steps\.0\): unknown field 'colour'/],
    ['missing id', { steps: [{ prompt: 'a' }] }, /^steps\.0: must have required property 'id'/],
    ['id with a dot', { steps: [{ id: 'a.b', prompt: 'a' }] }, /^step 'a\.b' \(steps\.0\) id: must match pattern/],
    ['duplicate ids', { steps: [{ id: 'a', prompt: 'a' }, { id: 'a', prompt: 'b' }] }, /^step 'a' \(steps\.1\) id: 'a' is already the id of steps\.0; step ids must be unique/],
    ['prompt and messages', { steps: [{ id: 'a', prompt: 'a', messages: [{ role: 'user', content: 'b' }] }] }, /^step 'a' \(steps\.0\) prompt: give exactly one of 'prompt' or 'messages'/],
    ['neither prompt nor messages', { steps: [{ id: 'a' }] }, /^step 'a' \(steps\.0\) prompt: give exactly one of 'prompt' or 'messages'/],
    ['unknown dependency', { steps: [{ id: 'a', prompt: 'a', depends_on: ['zz'] }] }, /^step 'a' \(steps\.0\) depends_on: no step has the id 'zz' \(ids: a\)/],
    ['self dependency', { steps: [{ id: 'a', prompt: 'a', depends_on: ['a'] }] }, /^step 'a' \(steps\.0\) depends_on: a step cannot depend on itself/],
    [
      'a cycle, named',
      { steps: [{ id: 'a', prompt: 'a', depends_on: ['c'] }, { id: 'b', prompt: 'b', depends_on: ['a'] }, { id: 'c', prompt: 'c', depends_on: ['b'] }, { id: 'd', prompt: 'd' }] },
      /^step 'a' \(steps\.0\) depends_on: the steps form a cycle: a → c → b → a; remove one of these dependencies/,
    ],
    ['unknown input', { input: { topic: 'x' }, steps: [{ id: 'a', prompt: 'about {{input.subject}}' }] }, /^step 'a' \(steps\.0\) prompt: \{\{input\.subject\}\} names no input \(inputs: topic\); add it to 'input'/],
    [
      'template on a step not depended on',
      { steps: [{ id: 'a', prompt: 'a' }, { id: 'b', prompt: 'see {{steps.a.content}}' }] },
      /^step 'b' \(steps\.1\) prompt: \{\{steps\.a\.content\}\}: step 'b' does not depend on 'a'; add it to depends_on/,
    ],
    ['template on an unknown step', { steps: [{ id: 'a', prompt: 'see {{steps.zz.content}}' }] }, /^step 'a' \(steps\.0\) prompt: \{\{steps\.zz\.content\}\}: no step has the id 'zz'/],
    [
      'template in messages',
      { steps: [{ id: 'a', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: '{{input.nope}}' }] }] },
      /^step 'a' \(steps\.0\) messages\.1\.content: \{\{input\.nope\}\} names no input/,
    ],
    ['not a template form', { steps: [{ id: 'a', prompt: 'see {{steps.a.answer}}' }] }, /^step 'a' \(steps\.0\) prompt: \{\{steps\.a\.answer\}\} is not a template; use \{\{input\.NAME\}\} or \{\{steps\.ID\.content\}\}/],
    ['validates without depends_on', { steps: [{ id: 'd', prompt: 'a' }, { id: 'v', prompt: 'b', validates: 'd' }] }, /^step 'v' \(steps\.1\) validates: the step validates 'd' but does not depend on it; add 'd' to its depends_on/],
    ['validates an unknown step', { steps: [{ id: 'v', prompt: 'b', validates: 'zz' }] }, /^step 'v' \(steps\.0\) validates: no step has the id 'zz'/],
    [
      'two validators for one step',
      { steps: [{ id: 'd', prompt: 'a' }, { id: 'v', prompt: 'b', validates: 'd', depends_on: ['d'] }, { id: 'w', prompt: 'c', validates: 'd', depends_on: ['d'] }] },
      /^step 'w' \(steps\.2\) validates: 'd' is already validated by step 'v'; one validator per step/,
    ],
    ['max_rounds above 10', { steps: [{ id: 'd', prompt: 'a' }, { id: 'v', prompt: 'b', validates: 'd', depends_on: ['d'], max_rounds: 11 }] }, /^step 'v' \(steps\.1\) max_rounds: must be <= 10/],
    ['max_rounds below 1', { steps: [{ id: 'd', prompt: 'a' }, { id: 'v', prompt: 'b', validates: 'd', depends_on: ['d'], max_rounds: 0 }] }, /^step 'v' \(steps\.1\) max_rounds: must be >= 1/],
    ['max_rounds without validates', { steps: [{ id: 'd', prompt: 'a', max_rounds: 2 }] }, /^step 'd' \(steps\.0\) max_rounds: only a step that validates another has rounds/],
    ['bad context on a step', { steps: [{ id: 'd', prompt: 'a', context: 'shared' }] }, /^step 'd' \(steps\.0\) context: must be equal to one of the allowed values/],
    ['bad context on the job', { context: 'shared', steps: [{ id: 'd', prompt: 'a' }] }, /^context: must be equal to one of the allowed values/],
    ['role not in the topology', { steps: [{ id: 'a', role: 'nobody', prompt: 'a' }] }, /^step 'a' \(steps\.0\) role: role 'nobody' is not in the topology or not reachable from the entry 'coordinator' \(reachable: task-executor-a, data-retrieval, validation, quality-supervisor, checker\)/],
    ['more steps than the job limit', { steps: Array.from({ length: 6 }, (_, i) => ({ id: `s${i}`, prompt: 'x' })) }, /^steps: 6 steps exceed the limit of 5 per job; split the workflow/],
    ['deadline over the maximum', { steps: [{ id: 'a', prompt: 'a' }], deadline_ms: 10_000_000 }, /^deadline_ms: 10000000 exceeds the maximum of 60000/],
    ['input that is not a scalar', { input: { topic: { a: 1 } }, steps: [{ id: 'a', prompt: 'a' }] }, /^input\.topic: must be string,number,boolean/],
  ];
  test.each(cases)('400: %s', (_name, body, message) => {
    expect(reject(body)).toMatch(message);
  });

  test('the tasks API is unchanged', () => {
    expect(reject({})).toMatch(/must have required property 'tasks'/);
    const job = parseJob(JSON.stringify({ tasks: [{ id: 'x', prompt: 'a', role: 'validation' }] }), hubEntry());
    expect(job.kind === 'tasks' && job.tasks).toEqual([{ id: 'x', messages: [{ role: 'user', content: 'a' }], role: 'validation' }]);
  });

  test('property: any body of steps either parses or is a 400 with a message (never another error)', () => {
    const id = fc.constantFrom('a', 'b', 'c', 'd');
    const step = fc.record(
      {
        id,
        role: fc.constantFrom('task-executor-a', 'validation', 'nobody'),
        prompt: fc.constantFrom('x', '{{input.topic}}', '{{steps.a.content}}', '{{steps.b.content}} and {{input.nope}}'),
        depends_on: fc.uniqueArray(id, { maxLength: 3 }),
        validates: id,
        max_rounds: fc.integer({ min: -1, max: 12 }),
        context: fc.constantFrom('isolated', 'chain', 'other'),
      },
      { requiredKeys: ['id'] },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 6 }), (steps) => {
        const raw = JSON.stringify({ input: { topic: 't' }, steps });
        try {
          const job = parseJob(raw, hubEntry());
          if (job.kind !== 'steps') return false;
          // what parses is a DAG whose templates only name steps it depends on
          return job.workflow.steps.every((s) => s.dependsOn.every((d) => job.workflow.steps.some((o) => o.id === d)));
        } catch (e) {
          return e instanceof RequestError && e.status === 400 && e.message.length > 0;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('templates', () => {
  test('finds input and step references, with optional spaces', () => {
    expect(templateRefs('a {{input.topic}} b {{ steps.s-1.content }} c').refs).toEqual([
      { kind: 'input', name: 'topic' },
      { kind: 'step', id: 's-1' },
    ]);
    expect(templateRefs('{{input}}').bad).toBe('{{input}}');
    expect(templateRefs('no templates { here }').refs).toEqual([]);
  });

  test('resolves values literally (no $-patterns, no escaping) and throws on a hole', () => {
    const out = resolveTemplate('T={{input.t}} S={{steps.a.content}}', { t: '$& <b>' }, (id) => (id === 'a' ? "$1 'x'" : undefined));
    expect(out).toBe("T=$& <b> S=$1 'x'");
    expect(() => resolveTemplate('{{steps.b.content}}', {}, () => undefined)).toThrow(/no content/);
  });
});

describe('the chain window at the entry', () => {
  test('a step naming a model or a direct worker role is trimmed to that model; a role below a supervisor is left to the worker', () => {
    const w = chainWindowFor(hubEntry({ catalog: { ...hubEntry().catalog, 'gemini-2.5-flash': { ...hubEntry().catalog['gemini-2.5-flash'], contextWindowTokens: 777 } } }));
    const step = (patch: object) => ({ id: 'a', index: 0, messages: [], dependsOn: [], maxRounds: 3, context: 'chain' as const, ...patch });
    expect(w(step({ role: 'data-retrieval' }))).toMatchObject({ model: 'gemini-2.5-flash', contextWindowTokens: 777 });
    expect(w(step({ model: 'deepseek-v3.2' }))).toMatchObject({ model: 'deepseek-v3.2' });
    expect(w(step({ role: 'checker' }))).toBeUndefined();
    expect(w(step({ role: 'quality-supervisor' }))).toBeUndefined();
  });
});
