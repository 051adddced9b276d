/**
 * A span profile as the demo shows it: Pyroscope's flame graph (the
 * `flamegraph` of a SelectMergeSpanProfile answer) as a tree, printed as
 * indented text, measured for how much of it is the app's own code.
 */
import type { Flamegraph } from '../../e2e/harness/pyroscope';

export interface FlameNode {
  name: string;
  /** Nanoseconds of CPU in this frame and what it called. */
  total: number;
  /** Nanoseconds of CPU in this frame itself. */
  self: number;
  children: FlameNode[];
}

/** Pyroscope's levels (per node: offset from the previous node's end, total, self, name index) as a tree. */
export function flameTree(fg: Flamegraph): FlameNode | undefined {
  const names = fg.flamegraph?.names ?? [];
  let parents: { x: number; node: FlameNode }[] = [];
  let root: FlameNode | undefined;
  for (const level of fg.flamegraph?.levels ?? []) {
    const v = level.values.map(Number);
    const placed: { x: number; node: FlameNode }[] = [];
    let x = 0;
    for (let i = 0; i + 3 < v.length; i += 4) {
      x += v[i]!;
      const node: FlameNode = { name: names[v[i + 3]!] ?? '?', total: v[i + 1]!, self: v[i + 2]!, children: [] };
      const parent = parents.find((p) => x >= p.x && x < p.x + p.node.total);
      if (parent !== undefined) parent.node.children.push(node);
      else root ??= node;
      placed.push({ x, node });
      x += v[i + 1]!;
    }
    parents = placed;
  }
  return root;
}

/**
 * The CPU spent in the app's functions and in what they called: each stack
 * counted once, at its outermost frame named in `app`.
 */
export function appTime(node: FlameNode, app: ReadonlySet<string>): number {
  if (app.has(node.name)) return node.total;
  return node.children.reduce((sum, child) => sum + appTime(child, app), 0);
}

/** Names of the app's functions that appear in the tree, heaviest first. */
export function appFunctions(node: FlameNode, app: ReadonlySet<string>): string[] {
  const totals = new Map<string, number>();
  const walk = (n: FlameNode): void => {
    if (app.has(n.name)) totals.set(n.name, (totals.get(n.name) ?? 0) + n.total);
    n.children.forEach(walk);
  };
  walk(node);
  return [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([name]) => name);
}

/**
 * The tree as indented lines: frames with at least `min` of the time,
 * heaviest first; anonymous functions are folded into their callers.
 */
export function flameLines(root: FlameNode, min = 0.05): string[] {
  const lines: string[] = [];
  const walk = (node: FlameNode, depth: number): void => {
    const share = node.total / root.total;
    if (share < min || depth > 30) return;
    const shown = !node.name.startsWith('(anonymous');
    if (shown) lines.push(`${'  '.repeat(depth)}${node.name}  ${(share * 100).toFixed(0)}%  ${'\u2588'.repeat(Math.max(1, Math.round(share * 30)))}`);
    for (const child of [...node.children].sort((a, b) => b.total - a.total)) walk(child, shown ? depth + 1 : depth);
  };
  walk(root, 0);
  return lines;
}
