import Ajv from 'ajv';
import { AgentConfig } from '../config';
import { ChatMessage, Task, TaskResult } from '../types';

/** A 4xx the client can act on. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

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
          messages: {
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
          },
          model: { type: 'string', minLength: 1 },
          max_tokens: { type: 'integer', minimum: 1 },
          role: { type: 'string', minLength: 1 },
        },
      },
    },
    deadline_ms: { type: 'integer', minimum: 1 },
  },
} as const;

const validate = new Ajv({ allErrors: false }).compile(jobSchema);

interface JobBody {
  tasks: Array<{ id?: string; prompt?: string; messages?: ChatMessage[]; model?: string; max_tokens?: number; role?: string }>;
  deadline_ms?: number;
}

/** Parses and checks a POST /v1/jobs body; throws RequestError naming the field. */
export function parseJob(raw: string, config: AgentConfig, now = Date.now()): { tasks: Task[]; deadlineAt: number; deadlineMs: number } {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new RequestError(400, `body is not valid JSON: ${(e as Error).message}`);
  }
  if (!validate(body)) {
    const e = validate.errors![0];
    const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'body';
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    throw new RequestError(400, extra ? `${field}: unknown field '${extra}'` : `${field}: ${e.message}`);
  }
  const job = body as JobBody;
  if (job.tasks.length > config.limits.maxTasksPerJob) {
    throw new RequestError(400, `tasks: ${job.tasks.length} tasks exceed the limit of ${config.limits.maxTasksPerJob} per job; split the job`);
  }
  const deadlineMs = job.deadline_ms ?? config.deadlines.defaultMs;
  if (deadlineMs > config.deadlines.maxMs) {
    throw new RequestError(400, `deadline_ms: ${deadlineMs} exceeds the maximum of ${config.deadlines.maxMs}`);
  }
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
      ...(t.model ? { model: t.model } : {}),
      ...(t.max_tokens ? { maxTokens: t.max_tokens } : {}),
      ...(t.role ? { role: t.role } : {}),
    };
  });
  return { tasks, deadlineAt: now + deadlineMs, deadlineMs };
}

/** The API's snake_case view of a result. */
export function resultJson(r: TaskResult) {
  return {
    id: r.id,
    ok: r.ok,
    model: r.model ?? null,
    content: r.content ?? null,
    usage: r.usage ? { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.totalTokens } : null,
    cost_usd: r.costUsd,
    attempts: r.attempts,
    latency_ms: r.latencyMs,
    agent_id: r.agentId ?? null,
    tool_calls: (r.toolCalls ?? []).map((c) => ({ name: c.name, ok: c.ok, latency_ms: c.latencyMs })),
    error: r.error ?? null,
  };
}
