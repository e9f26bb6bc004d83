import Ajv, { ErrorObject } from 'ajv';
import { AgentConfig, callsUpstream } from '../config';
import { ChatMessage, Task, TaskResult } from '../types';
import { ancestors, findCycle } from '../workflow/dag';
import { NAME_PATTERN, templateRefs } from '../workflow/template';
import { ChainWindow } from '../workflow/chain';
import { StepResult } from '../workflow/engine';
import { StepContext, Workflow, WorkflowStep } from '../workflow/types';

/** A 4xx the client can act on. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const messagesSchema = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['role', 'content'],
    properties: {
      role: { enum: ['system', 'user', 'assistant', 'tool'] },
      content: { type: 'string' },
      name: { type: 'string' },
    },
  },
} as const;

const jobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['tasks'],
  properties: {
    tasks: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 200 },
          prompt: { type: 'string', minLength: 1 },
          messages: messagesSchema,
          model: { type: 'string', minLength: 1 },
          max_tokens: { type: 'integer', minimum: 1 },
          role: { type: 'string', minLength: 1 },
        },
      },
    },
    deadline_ms: { type: 'integer', minimum: 1 },
    budget_usd: { type: 'number', exclusiveMinimum: 0 },
  },
} as const;

/** A job of `steps` (a workflow) instead of `tasks`. */
const stepsJobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['steps'],
  properties: {
    steps: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: {
          id: { type: 'string', pattern: NAME_PATTERN },
          role: { type: 'string', minLength: 1 },
          prompt: { type: 'string', minLength: 1 },
          messages: messagesSchema,
          depends_on: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true },
          model: { type: 'string', minLength: 1 },
          max_tokens: { type: 'integer', minimum: 1 },
          validates: { type: 'string', minLength: 1 },
          max_rounds: { type: 'integer', minimum: 1, maximum: 10 },
          context: { enum: ['isolated', 'chain'] },
        },
      },
    },
    input: {
      type: 'object',
      propertyNames: { pattern: NAME_PATTERN },
      additionalProperties: { type: ['string', 'number', 'boolean'] },
    },
    context: { enum: ['isolated', 'chain'] },
    deadline_ms: { type: 'integer', minimum: 1 },
    budget_usd: { type: 'number', exclusiveMinimum: 0 },
  },
} as const;

const ajv = new Ajv({ allErrors: false, allowUnionTypes: true });
const validate = ajv.compile(jobSchema);
const validateSteps = ajv.compile(stepsJobSchema);

/** Runs of a validated step when its validator sets no max_rounds. */
export const DEFAULT_MAX_ROUNDS = 3;

interface JobBody {
  tasks: Array<{ id?: string; prompt?: string; messages?: ChatMessage[]; model?: string; max_tokens?: number; role?: string }>;
  deadline_ms?: number;
  budget_usd?: number;
}

interface StepBody {
  id: string;
  role?: string;
  prompt?: string;
  messages?: ChatMessage[];
  depends_on?: string[];
  model?: string;
  max_tokens?: number;
  validates?: string;
  max_rounds?: number;
  context?: StepContext;
}

interface StepsJobBody {
  steps: StepBody[];
  input?: Record<string, string | number | boolean>;
  context?: StepContext;
  deadline_ms?: number;
  budget_usd?: number;
}

/**
 * A checked POST /v1/jobs body: a batch of tasks, or a workflow of steps.
 * `budgetUsd`: the job's `budget_usd` (the most all its upstream calls may
 * cost together), when it gives one.
 */
export type ParsedJob =
  | { kind: 'tasks'; tasks: Task[]; deadlineAt: number; deadlineMs: number; budgetUsd?: number }
  | { kind: 'steps'; workflow: Workflow; deadlineAt: number; deadlineMs: number; budgetUsd?: number };

/** `/steps/2/max_rounds` → `steps.2.max_rounds`, with the unknown field when there is one. */
function schemaMessage(e: ErrorObject, name: (field: string) => string = (f) => f): string {
  const field = name(e.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'body');
  const extra = (e.params as { additionalProperty?: string }).additionalProperty;
  return extra ? `${field}: unknown field '${extra}'` : `${field}: ${e.message}`;
}

/**
 * The model a task or step gets when it names neither a model nor a role:
 * the cluster's default, so the answer does not depend on which worker has
 * room (each worker's own default may differ).
 */
export function deterministicModel(config: AgentConfig): string {
  return config.models.clusterDefault ?? config.models.default;
}

/** Roles a job may name at this entry: what its callees reach, and itself when it calls the upstream. */
export function reachableRoles(config: AgentConfig): string[] {
  const roles = new Set(config.peers.flatMap((p) => p.roles ?? [p.role]));
  // a worker always runs its own tasks; a mesh peer reaches itself through its peer list when it has one
  if (callsUpstream(config.kind) && (config.kind === 'worker' || config.peers.length === 0)) roles.add(config.role);
  return [...roles];
}

/** Parses and checks a POST /v1/jobs body; throws RequestError naming the field. */
export function parseJob(raw: string, config: AgentConfig, now = Date.now()): ParsedJob {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new RequestError(400, `body is not valid JSON: ${(e as Error).message}`);
  }
  if (body !== null && typeof body === 'object' && 'steps' in body) {
    if ('tasks' in body) throw new RequestError(400, "body: give either 'tasks' or 'steps', not both");
    return parseSteps(body, config, now);
  }
  if (!validate(body)) throw new RequestError(400, schemaMessage(validate.errors![0]));
  const job = body as JobBody;
  if (job.tasks.length > config.limits.maxTasksPerJob) {
    throw new RequestError(400, `tasks: ${job.tasks.length} tasks exceed the limit of ${config.limits.maxTasksPerJob} per job; split the job`);
  }
  const deadlineMs = deadlineOf(job.deadline_ms, config);
  const fixedModel = deterministicModel(config);
  const seen = new Set<string>();
  const tasks = job.tasks.map((t, i): Task => {
    if ((t.prompt === undefined) === (t.messages === undefined)) {
      throw new RequestError(400, `tasks.${i}: give exactly one of 'prompt' or 'messages'`);
    }
    const id = t.id ?? `t${i}`;
    if (seen.has(id)) throw new RequestError(400, `tasks.${i}.id: '${id}' is used twice; task ids must be unique in a job`);
    seen.add(id);
    return {
      id,
      messages: t.messages ?? [{ role: 'user', content: t.prompt! }],
      ...(t.model ? { model: t.model } : t.role ? {} : { model: fixedModel }),
      ...(t.max_tokens ? { maxTokens: t.max_tokens } : {}),
      ...(t.role ? { role: t.role } : {}),
    };
  });
  return { kind: 'tasks', tasks, deadlineAt: now + deadlineMs, deadlineMs, ...budgetOf(job.budget_usd) };
}

function budgetOf(usd: number | undefined): { budgetUsd?: number } {
  if (usd === undefined) return {};
  // ledgers count whole nano-USD: a budget below one has no room for any call
  if (usd < 1e-9) throw new RequestError(400, `budget_usd: ${usd} is below the smallest amount counted (0.000000001 USD)`);
  return { budgetUsd: usd };
}

function deadlineOf(requested: number | undefined, config: AgentConfig): number {
  const deadlineMs = requested ?? config.deadlines.defaultMs;
  if (deadlineMs > config.deadlines.maxMs) {
    throw new RequestError(400, `deadline_ms: ${deadlineMs} exceeds the maximum of ${config.deadlines.maxMs}`);
  }
  return deadlineMs;
}

/**
 * Checks a workflow: the schema, then the rules across steps (ids, the
 * graph, validators, templates, roles). Every message names the step
 * (`step 'draft' (steps.1)`) and the field.
 */
function parseSteps(body: object, config: AgentConfig, now: number): ParsedJob {
  const rawSteps = (body as { steps?: unknown }).steps;
  const stepName = (i: number) => {
    const id = Array.isArray(rawSteps) ? (rawSteps[i] as { id?: unknown } | undefined)?.id : undefined;
    return typeof id === 'string' && id !== '' ? `step '${id}' (steps.${i})` : `steps.${i}`;
  };
  if (!validateSteps(body)) {
    throw new RequestError(400, schemaMessage(validateSteps.errors![0], (f) => f.replace(/^steps\.(\d+)(\.|$)/, (_, i: string, dot: string) => `${stepName(Number(i))}${dot ? ' ' : ''}`)));
  }
  const job = body as StepsJobBody;
  const at = (i: number, field: string) => `${stepName(i)} ${field}`;
  if (job.steps.length > config.limits.maxTasksPerJob) {
    throw new RequestError(400, `steps: ${job.steps.length} steps exceed the limit of ${config.limits.maxTasksPerJob} per job; split the workflow`);
  }
  const deadlineMs = deadlineOf(job.deadline_ms, config);

  const index = new Map<string, number>();
  job.steps.forEach((s, i) => {
    const first = index.get(s.id);
    if (first !== undefined) throw new RequestError(400, `${at(i, 'id')}: '${s.id}' is already the id of steps.${first}; step ids must be unique`);
    index.set(s.id, i);
  });
  const roles = reachableRoles(config);
  const validatorOf = new Map<string, string>();
  job.steps.forEach((s, i) => {
    if ((s.prompt === undefined) === (s.messages === undefined)) throw new RequestError(400, `${at(i, 'prompt')}: give exactly one of 'prompt' or 'messages'`);
    for (const d of s.depends_on ?? []) {
      if (d === s.id) throw new RequestError(400, `${at(i, 'depends_on')}: a step cannot depend on itself`);
      if (!index.has(d)) throw new RequestError(400, `${at(i, 'depends_on')}: no step has the id '${d}' (ids: ${[...index.keys()].join(', ')})`);
    }
    if (s.role !== undefined && !roles.includes(s.role)) {
      throw new RequestError(400, `${at(i, 'role')}: role '${s.role}' is not in the topology or not reachable from the entry '${config.role}' (reachable: ${roles.join(', ') || 'none'})`);
    }
    if (s.max_rounds !== undefined && s.validates === undefined) throw new RequestError(400, `${at(i, 'max_rounds')}: only a step that validates another has rounds; add 'validates' or remove it`);
    if (s.validates !== undefined) {
      if (!index.has(s.validates)) throw new RequestError(400, `${at(i, 'validates')}: no step has the id '${s.validates}'`);
      if (!(s.depends_on ?? []).includes(s.validates)) {
        throw new RequestError(400, `${at(i, 'validates')}: the step validates '${s.validates}' but does not depend on it; add '${s.validates}' to its depends_on`);
      }
      const other = validatorOf.get(s.validates);
      if (other !== undefined) throw new RequestError(400, `${at(i, 'validates')}: '${s.validates}' is already validated by step '${other}'; one validator per step`);
      validatorOf.set(s.validates, s.id);
    }
  });
  const graph = { ids: job.steps.map((s) => s.id), dependsOn: (id: string) => job.steps[index.get(id)!].depends_on ?? [] };
  const cycle = findCycle(graph);
  if (cycle) throw new RequestError(400, `${at(index.get(cycle[0])!, 'depends_on')}: the steps form a cycle: ${cycle.join(' → ')}; remove one of these dependencies`);

  const input: Record<string, string> = {};
  for (const [k, v] of Object.entries(job.input ?? {})) input[k] = String(v);
  const fixedModel = deterministicModel(config);
  const steps = job.steps.map((s, i): WorkflowStep => {
    const messages: ChatMessage[] = s.messages ?? [{ role: 'user', content: s.prompt! }];
    let reachable: Set<string> | undefined;
    messages.forEach((m, j) => {
      const field = s.prompt !== undefined ? 'prompt' : `messages.${j}.content`;
      const { refs, bad } = templateRefs(m.content);
      if (bad) throw new RequestError(400, `${at(i, field)}: ${bad} is not a template; use {{input.NAME}} or {{steps.ID.content}}`);
      for (const r of refs) {
        if (r.kind === 'input' && !(r.name in input)) {
          throw new RequestError(400, `${at(i, field)}: {{input.${r.name}}} names no input (inputs: ${Object.keys(input).join(', ') || 'none'}); add it to 'input'`);
        }
        if (r.kind === 'step') {
          reachable ??= ancestors(graph, s.id);
          if (!reachable.has(r.id)) {
            const why = index.has(r.id) ? `step '${s.id}' does not depend on '${r.id}'; add it to depends_on` : `no step has the id '${r.id}'`;
            throw new RequestError(400, `${at(i, field)}: {{steps.${r.id}.content}}: ${why}`);
          }
        }
      }
    });
    return {
      id: s.id,
      index: i,
      messages,
      dependsOn: s.depends_on ?? [],
      ...(s.role ? { role: s.role } : {}),
      ...(s.model ? { model: s.model } : s.role ? {} : { model: fixedModel }),
      ...(s.max_tokens ? { maxTokens: s.max_tokens } : {}),
      ...(s.validates ? { validates: s.validates } : {}),
      maxRounds: s.max_rounds ?? DEFAULT_MAX_ROUNDS,
      context: s.context ?? job.context ?? 'isolated',
    };
  });
  return { kind: 'steps', workflow: { input, steps }, deadlineAt: now + deadlineMs, deadlineMs, ...budgetOf(job.budget_usd) };
}

/** The API's snake_case view of a result. */
/** A result's usage as the API shows it (OpenAI's field names); cached prompt tokens, when the upstream reported any, as `prompt_tokens_details.cached_tokens`. */
export function usageJson(u: TaskResult['usage']) {
  if (!u) return null;
  const base = { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.totalTokens };
  return u.cachedPromptTokens ? { ...base, prompt_tokens_details: { cached_tokens: u.cachedPromptTokens } } : base;
}

export function resultJson(r: TaskResult) {
  return {
    id: r.id,
    ok: r.ok,
    model: r.model ?? null,
    content: r.content ?? null,
    usage: usageJson(r.usage),
    cost_usd: r.costUsd,
    attempts: r.attempts,
    latency_ms: r.latencyMs,
    agent_id: r.agentId ?? null,
    tool_calls: (r.toolCalls ?? []).map((c) => ({ name: c.name, ok: c.ok, latency_ms: c.latencyMs })),
    error: r.error ?? null,
  };
}

/**
 * The window a chain step is trimmed to at the entry: that of the model the
 * step will use, when the entry can name it (the step's model; the default
 * of the role it names when that role is a direct callee or the entry itself:
 * a callee's first listed model is its default, as the constructs render it)
 * and its catalog holds the model. Otherwise undefined: the chain travels
 * whole and the worker trims it to its own model's window, oldest first, the
 * system prompt kept, the same way.
 */
export function chainWindowFor(config: AgentConfig): (step: WorkflowStep) => (ChainWindow & { model: string }) | undefined {
  return (step) => {
    let model = step.model;
    if (!model && step.role) {
      const peer = config.peers.find((p) => p.role === step.role && (p.roles === undefined || (p.roles.length === 1 && p.roles[0] === p.role)));
      if (peer?.models?.length) model = peer.models[0];
      else if (step.role === config.role && !peer) model = config.models.default;
    }
    const entry = model ? config.catalog[model] : undefined;
    return entry && model ? { model, contextWindowTokens: entry.contextWindowTokens, reserveTokens: entry.reserveTokens, tokenizer: entry.tokenizer } : undefined;
  };
}

/** The API's snake_case view of a step's result. */
export function stepJson(r: StepResult) {
  return {
    id: r.id,
    ok: r.ok,
    role: r.role ?? null,
    agent_id: r.agentId ?? null,
    model: r.model ?? null,
    content: r.content ?? null,
    rounds: r.rounds,
    usage: usageJson(r.usage),
    cost_usd: r.costUsd,
    attempts: r.attempts,
    latency_ms: r.latencyMs,
    error: r.error ?? null,
    ...(r.toolCalls ? { tool_calls: r.toolCalls.map((c) => ({ name: c.name, ok: c.ok, latency_ms: c.latencyMs })) } : {}),
  };
}

/** The response to a `steps` job: steps in the order given. */
export function workflowJson(jobId: string, results: readonly StepResult[], latencyMs: number) {
  const ok = results.filter((r) => r.ok).length;
  return {
    job_id: jobId,
    steps: results.map(stepJson),
    success_rate: results.length ? ok / results.length : 0,
    total_cost_usd: results.reduce((sum, r) => sum + r.costUsd, 0),
    latency_ms: latencyMs,
  };
}
