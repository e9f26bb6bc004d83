// Synth-time problems, one line each. cdk8s prints the construct path in
// front of every line a construct's validation returns, so the lines here
// carry only the field, the problem and the fix: the path appears once.

/** `field: problem. Fix: fix.` */
export function problem(field: string, what: string, fix: string): string {
  return `${field}: ${what}. Fix: ${fix}.`;
}

/** Problems of an autoscaler's replica bounds. */
export function replicaBoundProblems(min: number, max: number): string[] {
  const out: string[] = [];
  if (!Number.isInteger(min) || min < 1) out.push(problem('minReplicas', `${min} is not a whole number >= 1`, 'set minReplicas to 1 or more'));
  if (!Number.isInteger(max)) out.push(problem('maxReplicas', `${max} is not a whole number`, 'set a whole number'));
  if (min > max) out.push(problem('minReplicas', `minReplicas ${min} exceeds maxReplicas ${max}`, `lower minReplicas to at most ${max} or raise maxReplicas`));
  return out;
}
