/**
 * MXNet's recording rule: while recording, an op with a vjp gets a tape node when some input is
 * a variable (attach-grad) or has history; an op on constants only records nothing. The session
 * plugs `recordOp` into the ops layer's environment (OpEnv.record).
 */
import { NDArray } from '../engine/ndarray.js';
import type { DType } from '../engine/backend.js';
import type { OpDef, Value } from '../ops/registry.js';
import { Node, NOTHING_SAVED, type Edge, type Tape } from './tape.js';
import { isRecorded, isVariable, setHistory } from './slot.js';
import { retain, retainNode, saveData } from './refs.js';
import type { StatementSite } from '../program/site.js';

/** Where nodes go: the tape of the innermost record scope, counted against the session's quota. */
export interface RecordTarget {
  tape(): Tape;
  /** Called before a node is added: enforces the session's tape-node quota. */
  onRecord(tape: Tape): void;
  /** The statement running, which the node remembers. */
  site(): StatementSite | null;
}

function edgeOf(v: Value): Edge | null {
  if (!(v instanceof NDArray)) return null;
  if (isRecorded(v)) return { node: v.autograd!.node!, index: v.autograd!.outputIndex };
  if (isVariable(v)) return { leaf: v };
  return null;
}

/** Records the op when some input has history or is a variable; answers the node, or null. */
export function recordOp(target: RecordTarget, def: OpDef, attrs: unknown, inputs: Value[], outs: NDArray[]): Node | null {
  const n = inputs.length;
  const edges = new Array<Edge | null>(n);
  let anyEdge = false;
  for (let i = 0; i < n; i++) {
    edges[i] = edgeOf(inputs[i]);
    if (edges[i]) anyEdge = true;
  }
  if (!anyEdge) return null;
  const tape = target.tape();
  target.onRecord(tape);
  const si = def.save.inputs;
  // One pass over the inputs fills every per-input column of the node. Scalars are always kept:
  // listings show them and they cost nothing.
  const x = new Array<Value | undefined>(n);
  const ids = new Array<number | null>(n);
  const shapes = new Array<readonly number[] | null>(n);
  const dtypes = new Array<DType | null>(n);
  for (let i = 0; i < n; i++) {
    const v = inputs[i];
    const saved = typeof v === 'number' || si === true || (Array.isArray(si) && si.includes(i));
    x[i] = saved ? v : undefined;
    if (!(v instanceof NDArray)) {
      ids[i] = shapes[i] = dtypes[i] = null;
    } else {
      ids[i] = v.id;
      shapes[i] = v.shape;
      dtypes[i] = v.dtype;
    }
  }
  const outputs = new Array<{ id: number; shape: readonly number[]; dtype: DType }>(outs.length);
  for (let i = 0; i < outs.length; i++) outputs[i] = { id: outs[i].id, shape: outs[i].shape, dtype: outs[i].dtype };
  const y = def.save.outputs ? outs.slice() : NOTHING_SAVED;
  // The node holds the data it saves and its inputs' history; nothing holds the node yet, so its
  // keeper frees it at the next safe point unless an output is bound by then.
  for (const v of x) if (v instanceof NDArray) saveData(v);
  for (const v of y) saveData(v);
  for (const e of edges) {
    if (!e) continue;
    if ('leaf' in e) retain(e.leaf);
    else retainNode(e.node);
  }
  const keeper = outs.length ? outs[0].cell.keeper : firstArray(inputs).cell.keeper;
  const node = new Node(keeper, tape, def, attrs, edges, ids, shapes, dtypes, x, y, outputs);
  node.site = target.site();
  for (let i = 0; i < outs.length; i++) setHistory(outs[i], node, i);
  tape.add(node);
  keeper.pend(node);
  return node;
}

function firstArray(vs: Value[]): NDArray {
  for (const v of vs) if (v instanceof NDArray) return v;
  throw new Error('record: a node with neither outputs nor array inputs');
}
