import { ChatMessage, Task, TaskError, TaskResult, ToolCallRecord, Usage } from '../types';
import { ChainWindow, chainMessages, ContextOverflowError, trimChain } from './chain';
import { ancestors, topologicalOrder } from './dag';
import { resolveTemplate } from './template';
import { Workflow, WorkflowStep } from './types';
import { parseVerdict, REVISION_MARKER, VERDICT_INSTRUCTION, VERDICT_SCHEMA } from './verdict';

/** What a step ended with: its runs summed (usage, cost, attempts) and the last run's answer. */
export interface StepResult {
  readonly id: string;
  readonly ok: boolean;
  readonly role?: string;
  readonly agentId?: string;
  readonly model?: string;
  readonly content?: string;
  /** Runs of the step: 1, more when a validator sent it back, 0 when it never ran. */
  readonly rounds: number;
  readonly usage?: Usage;
  readonly costUsd: number;
  readonly attempts: number;
  readonly latencyMs: number;
  readonly toolCalls?: readonly ToolCallRecord[];
  readonly error?: TaskError;
}

export interface WorkflowRunOptions {
  /** Runs one task the way the entry runs tasks (routing by role and model); resolves, never rejects. */
  readonly run: (task: Task) => Promise<TaskResult>;
  /** Steps running at once at most (the entry's fan-out). */
  readonly concurrency: number;
  /**
   * The window of the model a chain step will use, when the entry knows it;
   * undefined leaves the trimming to the worker, which knows its own window.
   */
  readonly windowFor?: (step: WorkflowStep) => (ChainWindow & { readonly model: string }) | undefined;
  /** The entry's AGENT_ID, on results of steps it refuses itself. */
  readonly agentId?: string;
  /**
   * Called once per step when its result is final: at its end, or for a
   * step that is validated, when its validator ends (until then it may be
   * sent back). `index` is the step's place in the workflow.
   */
  readonly onStep?: (result: StepResult, index: number) => void;
  /**
   * Steps that already have their final result (a job resumed on another
   * replica): not run again, not reported to `onStep`, their content feeds
   * the templates and chains of the steps that run. A validated step and its
   * validator count only together (one without the other runs both again).
   */
  readonly finished?: ReadonlyMap<string, StepResult>;
}

/** The user turn that sends a validated step back, carrying the validator's feedback. */
export function revisionRequest(validatorId: string, feedback: string): string {
  return `The reviewer (step '${validatorId}') ${REVISION_MARKER}. Feedback: ${feedback}\nRevise your answer accordingly.`;
}

interface StepState {
  readonly step: WorkflowStep;
  status: 'waiting' | 'running' | 'ok' | 'failed';
  /** Effective dependencies not yet succeeded. */
  waitingOn: number;
  rounds: number;
  /** The step's own messages, templates resolved (the exchange a chain carries). */
  own?: ChatMessage[];
  /** The whole conversation of its last run (reruns append to it). */
  conversation?: ChatMessage[];
  last?: TaskResult;
  usage?: Usage;
  costUsd: number;
  attempts: number;
  startedAt?: number;
  endedAt?: number;
  toolCalls: ToolCallRecord[];
  error?: TaskError;
}

/**
 * Runs a workflow's steps: each starts once every step it depends on has
 * succeeded, up to `concurrency` at once; a step whose dependency failed is
 * never sent (no upstream call, no cost) and ends `dependency_failed`. A
 * validator step judges the step it validates and sends it back with its
 * feedback until it passes or `max_rounds` runs are spent. A step that
 * depends on a validated step also waits for that step's validator, so it
 * only ever sees an answer that passed (unless the validator itself depends
 * on it, which would be a cycle).
 */
export function runWorkflow(wf: Workflow, opts: WorkflowRunOptions): Promise<StepResult[]> {
  const states = new Map<string, StepState>();
  for (const step of wf.steps) states.set(step.id, { step, status: 'waiting', waitingOn: 0, rounds: 0, costUsd: 0, attempts: 0, toolCalls: [] });
  const graph = { ids: wf.steps.map((s) => s.id), dependsOn: (id: string) => states.get(id)!.step.dependsOn };
  const validatorOf = new Map<string, string>();
  for (const s of wf.steps) if (s.validates) validatorOf.set(s.validates, s.id);
  const prefilled = new Map<string, StepResult>();
  for (const [id, r] of opts.finished ?? []) {
    const step = states.get(id)?.step;
    if (!step) continue;
    const partner = step.validates ?? validatorOf.get(id);
    if (partner === undefined || opts.finished!.has(partner)) prefilled.set(id, r);
  }

  const dependents = new Map<string, string[]>();
  for (const s of wf.steps) {
    const deps = new Set(s.dependsOn);
    for (const d of s.dependsOn) {
      const v = validatorOf.get(d);
      if (v && v !== s.id && !ancestors(graph, v).has(s.id)) deps.add(v);
    }
    states.get(s.id)!.waitingOn = deps.size;
    for (const d of deps) {
      const list = dependents.get(d);
      if (list) list.push(s.id);
      else dependents.set(d, [s.id]);
    }
  }

  // a step that succeeded with an empty answer inserts ''
  const contentOf = (id: string) => {
    const last = states.get(id)!.last;
    return last?.ok ? (last.content ?? '') : undefined;
  };
  const chainOrder = new Map<string, string[]>();
  const earlierOf = (step: WorkflowStep): string[] => {
    let ids = chainOrder.get(step.id);
    if (!ids) {
      const before = ancestors(graph, step.id);
      ids = topologicalOrder(graph, [...before]).filter((id) => before.has(id));
      chainOrder.set(step.id, ids);
    }
    return ids;
  };

  /** The request of a step's first run: templates resolved, the chain before it, the verdict shape for validators. */
  const firstRequest = (st: StepState): ChatMessage[] => {
    const step = st.step;
    const own = step.messages.map((m) => ({ ...m, content: resolveTemplate(m.content, wf.input, contentOf) }));
    if (step.validates) {
      const lastUser = own.map((m) => m.role).lastIndexOf('user');
      if (lastUser >= 0) own[lastUser] = { ...own[lastUser], content: `${own[lastUser].content}\n\n${VERDICT_INSTRUCTION}` };
      else own.push({ role: 'user', content: VERDICT_INSTRUCTION });
    }
    st.own = own;
    if (step.context !== 'chain') return own;
    const earlier = earlierOf(step).map((id) => {
      const e = states.get(id)!;
      return { messages: e.own ?? [], content: e.last?.content ?? '' };
    });
    return chainMessages(own, earlier);
  };

  const runOnce = async (st: StepState, messages: ChatMessage[]): Promise<TaskResult> => {
    const step = st.step;
    st.rounds += 1;
    st.startedAt ??= Date.now();
    const id = st.rounds === 1 ? step.id : `${step.id}#${st.rounds}`;
    let r: TaskResult;
    const window = step.context === 'chain' ? opts.windowFor?.(step) : undefined;
    let sent = messages;
    try {
      if (window) sent = trimChain(messages, window, step.maxTokens).messages;
    } catch (e) {
      if (!(e instanceof ContextOverflowError)) throw e;
      r = { id, ok: false, model: window!.model, costUsd: 0, attempts: 0, latencyMs: 0, agentId: opts.agentId, error: { code: 'context_overflow', message: `step '${step.id}': ${e.message}` } };
      return record(st, r, messages);
    }
    const task: Task = {
      id,
      messages: sent,
      ...(step.model ? { model: step.model } : {}),
      ...(step.role ? { role: step.role } : {}),
      ...(step.maxTokens ? { maxTokens: step.maxTokens } : {}),
      ...(step.validates ? { responseSchema: VERDICT_SCHEMA } : {}),
    };
    r = await opts.run(task);
    return record(st, r, messages);
  };

  const record = (st: StepState, r: TaskResult, messages: ChatMessage[]): TaskResult => {
    st.conversation = messages;
    st.last = r;
    st.costUsd += r.costUsd;
    st.attempts += r.attempts;
    if (r.usage) {
      const u = st.usage;
      st.usage = u
        ? { promptTokens: u.promptTokens + r.usage.promptTokens, completionTokens: u.completionTokens + r.usage.completionTokens, totalTokens: u.totalTokens + r.usage.totalTokens }
        : r.usage;
    }
    if (r.toolCalls) st.toolCalls.push(...r.toolCalls);
    st.endedAt = Date.now();
    return r;
  };

  /** A validator's loop: judge, send back with feedback, judge again. */
  const validate = async (st: StepState): Promise<TaskError | undefined> => {
    const target = states.get(st.step.validates!)!;
    let messages = firstRequest(st);
    for (;;) {
      const r = await runOnce(st, messages);
      if (!r.ok) return r.error;
      const verdict = parseVerdict(r.content);
      if (!verdict) {
        return { code: 'bad_response', message: `step '${st.step.id}' answered something that is not a verdict {"pass": boolean, "feedback": string}: ${JSON.stringify((r.content ?? '').slice(0, 200))}` };
      }
      if (verdict.pass) return undefined;
      if (target.rounds >= st.step.maxRounds) {
        return { code: 'validation_failed', message: `step '${target.step.id}' did not pass in ${target.rounds} rounds (max_rounds ${st.step.maxRounds}); last feedback: ${verdict.feedback}` };
      }
      const again = [...target.conversation!, { role: 'assistant' as const, content: target.last!.content ?? '' }, { role: 'user' as const, content: revisionRequest(st.step.id, verdict.feedback) }];
      const tr = await runOnce(target, again);
      if (!tr.ok) {
        target.status = 'failed';
        target.error = tr.error;
        return { code: 'dependency_failed', message: `not judged again: step '${target.step.id}' failed on round ${target.rounds} (${tr.error?.code}: ${tr.error?.message})` };
      }
      // the validator's own prompt sees the revised answer
      messages = firstRequest(st);
    }
  };

  const reported = new Set<string>(prefilled.keys());
  const report = (st: StepState) => {
    if (reported.has(st.step.id)) return;
    reported.add(st.step.id);
    opts.onStep?.(resultOf(st), st.step.index);
  };
  const final = (st: StepState) => prefilled.get(st.step.id) ?? resultOf(st);

  return new Promise<StepResult[]>((resolve, reject) => {
    let running = 0;
    let finished = 0;
    const ready: StepState[] = [];

    // Ends a step and passes the news on: dependents of a success may become
    // ready; dependents of a failure are not run, not billed, and their own
    // dependents follow (a worklist, so a long chain needs no deep stack).
    const done = (first: StepState, firstError: TaskError | undefined) => {
      const work: Array<[StepState, TaskError | undefined]> = [[first, firstError]];
      while (work.length > 0) {
        const [st, error] = work.pop()!;
        st.status = st.status === 'failed' || error ? 'failed' : 'ok';
        if (st.status === 'failed') st.error ??= error;
        finished += 1;
        // final now unless a validator may still send it back; a validator's end makes its step final
        if (!validatorOf.has(st.step.id)) report(st);
        if (st.step.validates) {
          report(states.get(st.step.validates)!);
          report(st);
        }
        for (const d of dependents.get(st.step.id) ?? []) {
          const ds = states.get(d)!;
          if (ds.status !== 'waiting') continue;
          if (st.status === 'failed') {
            ds.status = 'failed'; // claimed now, so a second failed dependency does not end it twice
            work.push([ds, { code: 'dependency_failed', message: `not run: step '${st.step.id}' failed (${st.error?.code ?? 'unknown'})` }]);
          } else if (--ds.waitingOn === 0) {
            ready.push(ds);
          }
        }
      }
    };
    const pump = () => {
      while (running < opts.concurrency && ready.length > 0) {
        const st = ready.shift()!;
        if (st.status !== 'waiting') continue;
        st.status = 'running';
        running += 1;
        // started inside a promise, so a throw while building the request settles the job instead of hanging it
        const work = Promise.resolve().then(() => (st.step.validates ? validate(st) : runOnce(st, firstRequest(st)).then((r) => (r.ok ? undefined : r.error))));
        work.then(
          (error) => {
            running -= 1;
            // a running step is 'running' here; done() marks it ok or failed
            if (st.status === 'running') st.status = 'waiting';
            done(st, error);
            if (finished === wf.steps.length) resolve(wf.steps.map((s) => final(states.get(s.id)!)));
            else pump();
          },
          (e: unknown) => reject(e),
        );
      }
    };
    // steps finished before a resume: their state as if they had just run, in dependency order,
    // so their dependents see their content (templates, chains) and their failures
    for (const id of topologicalOrder(graph, [...prefilled.keys()])) {
      if (!prefilled.has(id)) continue;
      const st = states.get(id)!;
      const r = prefilled.get(id)!;
      if (r.ok) firstRequest(st);
      st.rounds = r.rounds;
      st.last = { id, ok: r.ok, content: r.content, model: r.model, agentId: r.agentId, costUsd: r.costUsd, attempts: r.attempts, latencyMs: r.latencyMs, error: r.error };
      if (!r.ok) st.status = 'failed';
      done(st, r.error);
    }
    for (const s of wf.steps) {
      const st = states.get(s.id)!;
      if (st.status === 'waiting' && st.waitingOn === 0) ready.push(st);
    }
    if (finished === wf.steps.length) resolve(wf.steps.map((s) => final(states.get(s.id)!)));
    else pump();
  });
}

function resultOf(st: StepState): StepResult {
  const ok = st.status === 'ok';
  const last = st.last;
  return {
    id: st.step.id,
    ok,
    ...(st.step.role ? { role: st.step.role } : {}),
    ...(last?.agentId ? { agentId: last.agentId } : {}),
    ...(last?.model ? { model: last.model } : {}),
    ...(ok && last?.content !== undefined ? { content: last.content } : {}),
    rounds: st.rounds,
    ...(st.usage ? { usage: st.usage } : {}),
    costUsd: st.costUsd,
    attempts: st.attempts,
    latencyMs: st.startedAt !== undefined ? (st.endedAt ?? st.startedAt) - st.startedAt : 0,
    ...(st.toolCalls.length > 0 ? { toolCalls: st.toolCalls } : {}),
    ...(ok ? {} : { error: st.error ?? { code: 'internal', message: 'step ended without a result' } }),
  };
}
