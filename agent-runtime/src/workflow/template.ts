// Templates are two fixed forms, {{input.NAME}} and {{steps.ID.content}}: a
// regular expression states them exactly; a template engine (Handlebars,
// Mustache) would accept helpers, paths and escapes the contract does not
// have, and would HTML-escape what it inserts.

/** Step ids and input names: letters, digits, `_` and `-`, so a reference parses one way only. */
export const NAME_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

const TEMPLATE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const INPUT_REF = /^input\.([A-Za-z0-9_-]{1,64})$/;
const STEP_REF = /^steps\.([A-Za-z0-9_-]{1,64})\.content$/;

export type TemplateRef = { readonly kind: 'input'; readonly name: string } | { readonly kind: 'step'; readonly id: string };

/** The references a text makes, or the first template that is neither form (as `bad`). */
export function templateRefs(text: string): { refs: TemplateRef[]; bad?: string } {
  const refs: TemplateRef[] = [];
  for (const m of text.matchAll(TEMPLATE)) {
    const input = INPUT_REF.exec(m[1]);
    const step = STEP_REF.exec(m[1]);
    if (input) refs.push({ kind: 'input', name: input[1] });
    else if (step) refs.push({ kind: 'step', id: step[1] });
    else return { refs, bad: m[0] };
  }
  return { refs };
}

/**
 * Replaces every reference with its value. Parsing has checked that each
 * one exists, so a missing value here is a bug: it throws rather than
 * sending a prompt with a hole in it.
 */
export function resolveTemplate(text: string, input: Readonly<Record<string, string>>, contentOf: (stepId: string) => string | undefined): string {
  if (!text.includes('{{')) return text;
  return text.replace(TEMPLATE, (whole, ref: string) => {
    const i = INPUT_REF.exec(ref);
    if (i) {
      if (!(i[1] in input)) throw new Error(`template ${whole}: no input '${i[1]}'`);
      return input[i[1]];
    }
    const s = STEP_REF.exec(ref);
    const value = s ? contentOf(s[1]) : undefined;
    if (value === undefined) throw new Error(`template ${whole}: no content to insert`);
    return value;
  });
}
