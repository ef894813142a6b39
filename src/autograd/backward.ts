/**
 * The backward walk, generic over ops: it visits only the nodes between the heads and the
 * variables that want a gradient, in reverse topological order, calls each op's vjp, sums
 * broadcast gradients down to their input's shape once, and accumulates per edge. It never looks
 * at an op's name.
 */
import { NDArray, sameShape, shapeStr } from '../engine/ndarray.js';
import { F } from './apply.js';
import type { Node } from './tape.js';
import { fail } from '../errors.js';

export interface BackwardRequest {
  heads: NDArray[];
  /** Aligned with heads; null means ones (the gradient of the head's sum). */
  headGrads: (NDArray | null)[];
  retainGraph: boolean;
  /**
   * For autograd.grad: gradients are returned for exactly these arrays instead of being written
   * into the variables' buffers.
   */
  variables?: NDArray[];
}

export interface BackwardResult {
  /** For backward: the variables whose buffers were written. For grad: one per variable. */
  grads: Map<NDArray, NDArray>;
}

/** Sums g over the axes it was broadcast along, so that it has `shape`. */
export function unbroadcast(g: NDArray, shape: readonly number[]): NDArray {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length ? F.sum(g, { axis: axes, keepdims: true }) : g;
  return sameShape(s.shape, shape) ? s : F.reshape(s, { shape: [...shape] });
}

function headName(i: number, n: number): string {
  return n === 1 ? 'the head' : `head ${i}`;
}

export function backward(req: BackwardRequest): BackwardResult {
  const { heads, headGrads } = req;
  const targets = req.variables ? new Set(req.variables) : null;
  const wants = (leaf: NDArray): boolean =>
    targets ? targets.has(leaf) : leaf.gradReq === 'write' || leaf.gradReq === 'add';

  heads.forEach((h, i) => {
    if (h.node?.freed) {
      throw fail('graph_freed', `${headName(i, heads.length)} was already used in a backward pass that freed its graph; record it again, or pass retain_graph: true to the first backward`);
    }
    if (!h.node && !(targets && targets.has(h))) {
      throw fail('no_graph', `${headName(i, heads.length)} has no recorded history; compute it inside a record scope (POST /autograd/record, or "record": true on /ops) from an array with attach-grad`);
    }
  });

  // Topological order of the nodes reachable from the heads (iterative DFS: graphs can be deep).
  const order: Node[] = [];
  const seen = new Set<Node>();
  const stack: [Node, number][] = [];
  for (const h of heads) if (h.node && !seen.has(h.node)) { seen.add(h.node); stack.push([h.node, 0]); }
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const e = node.inputs[i];
      if (e && 'node' in e && !seen.has(e.node)) {
        if (e.node.freed) throw fail('graph_freed', 'part of the graph behind the heads was freed by an earlier backward; record it again, or pass retain_graph: true to the earlier backward');
        seen.add(e.node);
        stack.push([e.node, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }

  // A node matters only if some path from it reaches a variable that wants a gradient.
  const useful = new Set<Node>();
  for (const node of order) {
    if (node.inputs.some((e) => e && ('leaf' in e ? wants(e.leaf) : useful.has(e.node)))) useful.add(node);
  }
  if (!targets && !heads.some((h) => h.node && useful.has(h.node))) {
    throw fail('no_grad', 'the heads do not depend on any array with a gradient buffer (grad_req write or add); call attach-grad on the inputs before recording');
  }

  const nodeGrads = new Map<Node, (NDArray | null)[]>();
  const leafGrads = new Map<NDArray, NDArray>();
  const addLeaf = (leaf: NDArray, g: NDArray): void => {
    const prev = leafGrads.get(leaf);
    leafGrads.set(leaf, prev ? F.add(prev, g) : g);
  };
  const addNode = (node: Node, index: number, g: NDArray): void => {
    let gs = nodeGrads.get(node);
    if (!gs) { gs = node.outputs.map(() => null); nodeGrads.set(node, gs); }
    const prev = gs[index];
    gs[index] = prev ? F.add(prev, g) : g;
  };

  heads.forEach((h, i) => {
    const hg = headGrads[i];
    if (hg && !sameShape(hg.shape, h.shape)) {
      throw fail('shape_mismatch', `head_grads[${i}] has shape ${shapeStr(hg.shape)} but ${headName(i, heads.length)} has shape ${shapeStr(h.shape)}; they must match exactly`);
    }
    if (hg && hg.dtype !== h.dtype) throw fail('dtype_mismatch', `head_grads[${i}] is ${hg.dtype} but the head is ${h.dtype}`);
    const g = hg ?? F.ones_like(h);
    if (h.node && useful.has(h.node)) addNode(h.node, h.outputIndex, g);
    else if (targets?.has(h)) addLeaf(h, g);
  });

  for (let oi = order.length - 1; oi >= 0; oi--) {
    const node = order[oi];
    if (!useful.has(node)) continue;
    const gs = nodeGrads.get(node);
    if (!gs) continue;
    const g = gs.map((x, i) => x ?? F.zeros({ shape: [...node.outputs[i].shape], dtype: node.outputs[i].dtype }));
    const needs = node.inputs.map((e) => !!e && ('leaf' in e ? wants(e.leaf) : useful.has(e.node)));
    const dx = node.op.vjp!({ g, x: node.x, y: node.y, attrs: node.attrs, shapes: node.shapes, dtypes: node.dtypes, needs });
    node.inputs.forEach((e, i) => {
      const d = dx[i];
      if (!e || !needs[i] || !d) return;
      const shape = node.shapes[i]!;
      const gi = unbroadcast(d, shape);
      if ('leaf' in e) addLeaf(e.leaf, gi);
      else addNode(e.node, e.index, gi);
    });
    nodeGrads.delete(node);
  }

  if (!req.retainGraph) for (const node of order) node.free();
  return { grads: leafGrads };
}
