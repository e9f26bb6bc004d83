/** A validator's judgement of the step it validates. */
export interface Verdict {
  readonly pass: boolean;
  readonly feedback: string;
}

/** The structured answer a validator step asks its model for (Task.responseSchema). */
export const VERDICT_SCHEMA = {
  name: 'verdict',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['pass', 'feedback'],
    properties: {
      pass: { type: 'boolean', description: 'true when the answer is acceptable as it is' },
      feedback: { type: 'string', description: 'what to change when it is not; a short reason when it is' },
    },
  },
} as const;

/**
 * Appended to a validator's last user message: models (or workers) that
 * ignore response_format still learn the shape from the prompt. The mock
 * upstream recognises a verdict request by this line as well.
 */
export const VERDICT_INSTRUCTION = 'Reply with a JSON object only: {"pass": true or false, "feedback": "what must change, or why it passes"}.';

/**
 * The verdict in a validator's reply, or undefined when the reply is not
 * one. A worker on an older build may not enforce the schema, so the entry
 * checks again: anything that is not exactly a verdict is never a pass. A
 * Markdown code fence around the JSON is tolerated (models add them).
 */
export function parseVerdict(content: string | undefined): Verdict | undefined {
  if (content === undefined) return undefined;
  const text = content.trim().replace(/^```(?:json)?\s*\n?([\s\S]*?)\n?```$/, '$1').trim();
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { pass, feedback } = v as { pass?: unknown; feedback?: unknown };
  if (typeof pass !== 'boolean' || typeof feedback !== 'string') return undefined;
  return { pass, feedback };
}

/** Words every revision request carries (the mock upstream counts rounds by them). */
export const REVISION_MARKER = 'did not accept this answer';
