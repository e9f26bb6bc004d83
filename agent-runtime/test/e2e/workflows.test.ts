import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { postJob, synthesizedManifests, TOPOLOGIES } from '../support/cluster';

// Workflows (`steps` jobs) end to end, through `local` mode booted from the
// constructs' own manifests, in each topology: steps reach their roles
// through the topology's edges (hub → worker, coordinator → supervisor →
// worker, mesh → peer), and the mock upstream's request log shows what each
// executor was sent.

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let manifests: ReturnType<typeof synthesizedManifests>;

interface StepJson {
  id: string;
  ok: boolean;
  role: string | null;
  agent_id: string | null;
  model: string | null;
  content: string | null;
  rounds: number;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  cost_usd: number;
  attempts: number;
  latency_ms: number;
  error: { code: string; message: string } | null;
}
interface WorkflowResponse {
  job_id: string;
  steps: StepJson[];
  success_rate: number;
  total_cost_usd: number;
  latency_ms: number;
  error?: { message: string };
}

async function postWorkflow(url: string, body: unknown): Promise<{ status: number; body: WorkflowResponse }> {
  const res = await postJob(url, body);
  return { status: res.status, body: res.body as unknown as WorkflowResponse };
}

beforeAll(async () => {
  manifests = synthesizedManifests();
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 10, recordRequests: true });
});
afterAll(async () => {
  await mock.close();
});

/** The requests the mock received: model and messages (the mock records them while recordRequests is on). */
const requests = () => mock.requests().map((r) => ({ model: String(r.model), messages: (r.messages ?? []).map((m) => ({ role: String(m.role), content: String(m.content ?? '') })) }));
const text = (messages: ReadonlyArray<{ content: string }>) => messages.map((m) => m.content).join('\n');

describe.each(TOPOLOGIES)('%s', (topology) => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 90000 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(() => mock.reset());

  test('a pipeline whose validator rejects once and passes on round two; the second request to the executor carries the feedback', async () => {
    const res = await postWorkflow(cluster.entryUrl, {
      input: { topic: 'pod disruption budgets' },
      steps: [
        { id: 'gather', role: 'data-retrieval', prompt: 'Find facts about {{input.topic}}' },
        { id: 'draft', role: 'task-executor-a', prompt: 'Write a summary from: {{steps.gather.content}} #revise-once', depends_on: ['gather'] },
        { id: 'review', role: 'validation', validates: 'draft', max_rounds: 3, prompt: 'Check this summary: {{steps.draft.content}}', depends_on: ['draft'] },
      ],
      deadline_ms: 20000,
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['job_id', 'latency_ms', 'steps', 'success_rate', 'total_cost_usd']);
    expect(res.body.steps.map((s) => s.id)).toEqual(['gather', 'draft', 'review']);
    for (const s of res.body.steps) {
      expect(Object.keys(s).sort()).toEqual(['agent_id', 'attempts', 'content', 'cost_usd', 'error', 'id', 'latency_ms', 'model', 'ok', 'role', 'rounds', 'usage'].sort());
      expect(s.ok).toBe(true);
      expect(s.agent_id).toMatch(new RegExp(`^${s.role}-\\d+$`));
    }
    const [gather, draft, review] = res.body.steps;
    expect([gather.model, draft.model, review.model]).toEqual(['gemini-2.5-flash', 'gpt-4.1', 'deepseek-v3.2']);
    expect([gather.rounds, draft.rounds, review.rounds]).toEqual([1, 2, 2]);
    expect(draft.content).toMatch(/^draft-v2 echo:/);
    expect(JSON.parse(review.content!)).toEqual({ pass: true, feedback: 'mock' });
    expect(res.body.success_rate).toBe(1);
    expect(res.body.total_cost_usd).toBeCloseTo(gather.cost_usd + draft.cost_usd + review.cost_usd, 12);

    const drafts = requests().filter((r) => r.model === 'gpt-4.1');
    expect(drafts).toHaveLength(2);
    expect(text(drafts[0].messages)).not.toMatch(/Feedback/);
    const second = drafts[1].messages;
    expect(second[second.length - 1].content).toMatch(/Feedback: mock: draft-v1 needs a concrete example/);
    expect(second[second.length - 2]).toEqual({ role: 'assistant', content: expect.stringMatching(/^draft-v1 echo:/) });
    // the draft step saw the retrieval step's answer
    expect(text(drafts[0].messages)).toContain(gather.content!);
    const verdicts = requests().filter((r) => r.model === 'deepseek-v3.2');
    expect(verdicts).toHaveLength(2);
    expect(text(verdicts[1].messages)).toContain(draft.content!);
  });

  test('a chain: step 3 carries steps 1 and 2 (their prompts and answers) before its own prompt', async () => {
    const res = await postWorkflow(cluster.entryUrl, {
      context: 'chain',
      steps: [
        { id: 's1', role: 'task-executor-a', prompt: 'chain step one' },
        { id: 's2', role: 'task-executor-b', prompt: 'chain step two', depends_on: ['s1'] },
        { id: 's3', role: 'task-executor-a', prompt: 'chain step three', depends_on: ['s2'] },
      ],
      deadline_ms: 20000,
    });
    expect(res.body.steps.map((s) => s.ok)).toEqual([true, true, true]);
    const third = requests().find((r) => text(r.messages).includes('chain step three'))!;
    const [s1, s2] = res.body.steps;
    expect(third.messages.filter((m) => m.role !== 'system')).toEqual([
      { role: 'user', content: 'chain step one' },
      { role: 'assistant', content: s1.content },
      { role: 'user', content: 'chain step two' },
      { role: 'assistant', content: s2.content },
      { role: 'user', content: 'chain step three' },
    ]);
  });

  test('a failed dependency: its dependents are not run and cost nothing', async () => {
    mock.setBehaviour({ failModels: { 'gemini-2.5-flash': 400 } });
    const res = await postWorkflow(cluster.entryUrl, {
      steps: [
        { id: 'gather', role: 'data-retrieval', prompt: 'Find facts' },
        { id: 'draft', role: 'task-executor-a', prompt: 'Write from {{steps.gather.content}}', depends_on: ['gather'] },
        { id: 'review', role: 'validation', validates: 'draft', prompt: 'Check {{steps.draft.content}}', depends_on: ['draft'] },
        { id: 'aside', role: 'task-executor-b', prompt: 'independent' },
      ],
      deadline_ms: 20000,
    });
    expect(res.status).toBe(200);
    const [gather, draft, review, aside] = res.body.steps;
    expect(gather).toMatchObject({ ok: false, error: { code: 'bad_request' } });
    for (const s of [draft, review]) {
      expect(s).toMatchObject({ ok: false, rounds: 0, cost_usd: 0, attempts: 0, usage: null, agent_id: null, content: null, error: { code: 'dependency_failed' } });
    }
    expect(aside.ok).toBe(true);
    expect(res.body.success_rate).toBe(0.25);
    expect(res.body.total_cost_usd).toBe(aside.cost_usd);
    // no upstream call for the dependents: only gemini (failing) and the independent step
    expect(mock.stats().byModel).toEqual({ 'gemini-2.5-flash': 1, 'gpt-4.1': 1 });
  });

  test('determinism: steps and tasks naming neither model nor role all use the cluster default model', async () => {
    const steps = await postWorkflow(cluster.entryUrl, { steps: Array.from({ length: 12 }, (_, i) => ({ id: `s${i}`, prompt: `free step ${i}` })), deadline_ms: 20000 });
    expect(steps.body.steps.map((s) => s.model)).toEqual(Array(12).fill('gpt-4.1'));
    const tasks = await postJob(cluster.entryUrl, { tasks: Array.from({ length: 24 }, (_, i) => ({ prompt: `free task ${i}` })), deadline_ms: 20000 });
    expect(new Set(tasks.body.results.map((r) => r.model))).toEqual(new Set(['gpt-4.1']));
    expect(Object.keys(mock.stats().byModel)).toEqual(['gpt-4.1']);
  });
});

test('max_rounds spent: validation_failed with the last feedback, dependents dependency_failed; a bad workflow is a 400 and the entry keeps serving', async () => {
  const cluster = await startLocalCluster({ manifests: manifests['hub-and-spoke'], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 90000 });
  try {
    const res = await postWorkflow(cluster.entryUrl, {
      steps: [
        { id: 'draft', role: 'task-executor-a', prompt: 'Write' },
        { id: 'review', role: 'validation', validates: 'draft', max_rounds: 2, prompt: 'Check {{steps.draft.content}} REJECT-ALWAYS', depends_on: ['draft'] },
        { id: 'publish', role: 'task-executor-b', prompt: 'Publish {{steps.draft.content}}', depends_on: ['review', 'draft'] },
      ],
    });
    const [draft, review, publish] = res.body.steps;
    expect(draft).toMatchObject({ ok: true, rounds: 2 });
    expect(review).toMatchObject({ ok: false, rounds: 2, error: { code: 'validation_failed', message: expect.stringMatching(/did not pass in 2 rounds .*last feedback: mock: REJECT-ALWAYS asks for another round/) } });
    expect(publish).toMatchObject({ ok: false, cost_usd: 0, error: { code: 'dependency_failed' } });

    const notVerdict = await postWorkflow(cluster.entryUrl, {
      steps: [
        { id: 'draft', role: 'task-executor-a', prompt: 'Write' },
        { id: 'review', role: 'validation', validates: 'draft', prompt: 'NOT-A-VERDICT {{steps.draft.content}}', depends_on: ['draft'] },
      ],
    });
    expect(notVerdict.body.steps[1]).toMatchObject({ ok: false, error: { code: 'bad_response' } });

    const bad = await postWorkflow(cluster.entryUrl, { steps: [{ id: 'a', prompt: 'x', depends_on: ['b'] }, { id: 'b', prompt: 'y', depends_on: ['a'] }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error!.message).toBe("step 'a' (steps.0) depends_on: the steps form a cycle: a → b → a; remove one of these dependencies");
    const unreachable = await postWorkflow(cluster.entryUrl, { steps: [{ id: 'a', role: 'execution-supervisor', prompt: 'x' }] });
    expect(unreachable.status).toBe(400);
    expect(unreachable.body.error!.message).toMatch(/^step 'a' \(steps\.0\) role: role 'execution-supervisor' is not in the topology or not reachable from the entry 'coordinator'/);
    const ok = await postWorkflow(cluster.entryUrl, { steps: [{ id: 'a', prompt: 'x' }] });
    expect(ok.status).toBe(200);
    expect(ok.body.steps[0].ok).toBe(true);
  } finally {
    await cluster.stop();
    mock.reset();
  }
});
