/** The graph of a workflow's `depends_on`, by step id. */
export interface StepGraph {
  readonly ids: readonly string[];
  dependsOn(id: string): readonly string[];
}

/**
 * A cycle in `depends_on` as the ids along it, first id repeated at the end
 * (`a → b → a`), or undefined. Depth-first with an explicit stack so a long
 * chain of steps cannot overflow the call stack.
 */
export function findCycle(g: StepGraph): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  for (const root of g.ids) {
    if (state.has(root)) continue;
    const path: string[] = [];
    const stack: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    state.set(root, 'open');
    path.push(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const deps = g.dependsOn(top.id);
      if (top.next >= deps.length) {
        state.set(top.id, 'done');
        stack.pop();
        path.pop();
        continue;
      }
      const d = deps[top.next++];
      const s = state.get(d);
      if (s === 'open') return [...path.slice(path.indexOf(d)), d];
      if (s === 'done') continue;
      state.set(d, 'open');
      path.push(d);
      stack.push({ id: d, next: 0 });
    }
  }
  return undefined;
}

/** Every step `id` depends on, directly or transitively (the graph has no cycle). */
export function ancestors(g: StepGraph, id: string): Set<string> {
  const out = new Set<string>();
  const todo = [...g.dependsOn(id)];
  while (todo.length > 0) {
    const d = todo.pop()!;
    if (out.has(d)) continue;
    out.add(d);
    todo.push(...g.dependsOn(d));
  }
  return out;
}

/**
 * The ids in an order where each comes after its dependencies (depth-first
 * post-order, roots taken in the given order). The graph has no cycle.
 */
export function topologicalOrder(g: StepGraph, ids: readonly string[] = g.ids): string[] {
  const placed = new Set<string>();
  const out: string[] = [];
  for (const root of ids) {
    if (placed.has(root)) continue;
    const stack: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    placed.add(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const deps = g.dependsOn(top.id);
      if (top.next >= deps.length) {
        out.push(top.id);
        stack.pop();
        continue;
      }
      const d = deps[top.next++];
      if (!placed.has(d)) {
        placed.add(d);
        stack.push({ id: d, next: 0 });
      }
    }
  }
  return out;
}
