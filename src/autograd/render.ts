/** A tape as plain JSON and as Graphviz DOT. Array ids are shown with their current names. */
import { NDArray } from '../engine/ndarray.js';
import type { Tape, Node } from './tape.js';

export type NameOf = (arrayId: number) => string | undefined;

function inputRef(n: Node, i: number, nameOf: NameOf) {
  const e = n.inputs[i];
  const id = n.inputIds[i];
  return {
    array: id,
    name: id === null ? null : nameOf(id) ?? null,
    shape: n.shapes[i],
    from: e === null ? 'constant' : 'leaf' in e ? 'variable' : `node ${e.node.id}`,
    ...(id === null ? { scalar: n.x[i] } : {}),
  };
}

export function tapeToJson(t: Tape, nameOf: NameOf) {
  return {
    id: t.id,
    created_at: t.createdAt.toISOString(),
    open: t.open,
    nodes: t.nodes.filter((n) => !n.freed).map((n) => ({
      id: n.id,
      op: n.op.name,
      attrs: n.attrs,
      inputs: n.inputs.map((_, i) => inputRef(n, i, nameOf)),
      outputs: n.outputs.map((o) => ({ array: o.id, name: nameOf(o.id) ?? null, shape: o.shape, dtype: o.dtype })),
      saved: [...n.x, ...n.y].filter((v): v is NDArray => v instanceof NDArray).map((v) => ({ array: v.id, shape: v.shape, dtype: v.dtype })),
    })),
  };
}

const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

export function tapeToDot(t: Tape, nameOf: NameOf): string {
  const lines = [`digraph ${q(t.id)} {`, '  rankdir=LR;', '  node [fontname="Helvetica"];'];
  const arrays = new Set<number>();
  const arrayNode = (id: number, shape: readonly number[] | null, variable: boolean) => {
    if (arrays.has(id)) return;
    arrays.add(id);
    const label = `${nameOf(id) ?? `#${id}`}\\n[${(shape ?? []).join(', ')}]`;
    lines.push(`  a${id} [shape=box, label=${q(label)}${variable ? ', style=filled, fillcolor="#dbeafe"' : ''}];`);
  };
  for (const n of t.nodes) {
    if (n.freed) continue;
    lines.push(`  n${n.id} [shape=ellipse, label=${q(n.op.name)}];`);
    n.inputs.forEach((e, i) => {
      const id = n.inputIds[i];
      if (id === null) return;
      arrayNode(id, n.shapes[i], !!e && 'leaf' in e);
      lines.push(`  a${id} -> n${n.id};`);
    });
    for (const o of n.outputs) {
      arrayNode(o.id, o.shape, false);
      lines.push(`  n${n.id} -> a${o.id};`);
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
