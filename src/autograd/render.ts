/** A tape as plain JSON and as Graphviz DOT. Array ids are shown with their current names. */
import { NDArray } from '../engine/ndarray.js';
import type { Tape, Node } from './tape.js';
import { gradReqOf } from './slot.js';
import { wrapLongGraph, type Edge } from './layout.js';

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
/** A multi-line DOT label: each line escaped, then joined with DOT's centred line break. */
const label = (...lines: string[]) => `"${lines.map((l) => l.replace(/["\\]/g, '\\$&')).join('\\n')}"`;

/** The attrs worth printing under an op's name: set, short, at most four of them. */
function attrLines(attrs: unknown): string[] {
  if (!attrs || typeof attrs !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(attrs as Record<string, unknown>)) {
    if (v === null || v === undefined || v === false) continue;
    const text = Array.isArray(v) ? `(${v.join(', ')})` : String(v);
    if (typeof v === 'object' && !Array.isArray(v)) continue;
    if (text.length > 24) continue;
    out.push(`${k}=${text}`);
  }
  return out.slice(0, 4);
}

const VARIABLE = 'style="filled,bold", fillcolor="#fde68a", color="#b45309"';
const NAMED = 'style=filled, fillcolor="#dbeafe"';
const OP = 'shape=ellipse, style=filled, fillcolor="#f3f4f6"';

/**
 * The tape as a Graphviz digraph, data flowing left to right: ops are grey ellipses (with their
 * set attributes), arrays are boxes labelled with their name (or #id), shape and dtype, and
 * variables (arrays with a gradient buffer, where backward stops) are bold amber boxes that also
 * show their grad_req. Scalars appear as plain text. Node ids are stable: `n<node>`, `a<array>`.
 */
export function tapeToDot(t: Tape, nameOf: NameOf): string {
  const lines = [
    `digraph ${q(t.id)} {`,
    '  rankdir=LR;',
    `  label=${q(`tape ${t.id}${t.open ? ' (recording)' : ''}`)}; labelloc=t; fontname="Helvetica";`,
    '  node [fontname="Helvetica", fontsize=11];',
    '  edge [color="#6b7280"];',
  ];
  const nodes: string[] = [];
  const edges: Edge[] = [];
  const edge = (from: string, to: string) => { edges.push([from, to]); lines.push(`  ${from} -> ${to};`); };
  const arrays = new Set<number>();
  const arrayNode = (id: number, shape: readonly number[] | null, dtype: string | null, leaf: NDArray | null, constant: boolean) => {
    if (arrays.has(id)) return;
    arrays.add(id);
    const name = nameOf(id);
    const text = [name ?? (constant ? 'constant' : `#${id}`), `[${(shape ?? []).join(', ')}]${dtype ? ` ${dtype}` : ''}`];
    const req = leaf ? gradReqOf(leaf) : null;
    if (req) text.push(`variable, grad_req=${req}`);
    const style = req ? VARIABLE : name ? NAMED : 'style=dashed';
    nodes.push(`a${id}`);
    lines.push(`  a${id} [shape=box, label=${label(...text)}, ${style}];`);
  };
  for (const n of t.nodes) {
    if (n.freed) continue;
    nodes.push(`n${n.id}`);
    lines.push(`  n${n.id} [${OP}, label=${label(n.op.name, ...attrLines(n.attrs))}];`);
    n.inputs.forEach((e, i) => {
      const id = n.inputIds[i];
      if (id === null) {
        const v = n.x[i];
        if (typeof v !== 'number') return;
        nodes.push(`s${n.id}_${i}`);
        lines.push(`  s${n.id}_${i} [shape=plaintext, label=${q(String(v))}];`);
        edge(`s${n.id}_${i}`, `n${n.id}`);
        return;
      }
      arrayNode(id, n.shapes[i], n.dtypes[i], e && 'leaf' in e ? e.leaf : null, e === null);
      edge(`a${id}`, `n${n.id}`);
    });
    for (const o of n.outputs) {
      arrayNode(o.id, o.shape, o.dtype, null, false);
      edge(`n${n.id}`, `a${o.id}`);
    }
  }
  const wrap = wrapLongGraph(nodes, edges);
  if (wrap) lines.splice(1, 1, `  rankdir=${wrap.rankdir};`, ...wrap.statements);
  lines.push('}');
  return lines.join('\n') + '\n';
}

let viz: Promise<{ renderString(src: string, o: { format: string }): string }> | null = null;

/**
 * DOT to SVG with Graphviz compiled to WebAssembly. The module is loaded on first use (it takes
 * a few hundred milliseconds) and kept for the life of the process.
 */
export async function dotToSvg(dot: string): Promise<string> {
  viz ??= import('@viz-js/viz').then((m) => m.instance());
  return (await viz).renderString(dot, { format: 'svg' });
}
