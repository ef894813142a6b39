/**
 * The backward walk, generic over ops: it visits only the nodes between the heads and the
 * variables that want a gradient, in reverse topological order, calls each op's vjp, sums
 * broadcast gradients down to their input's shape once, and accumulates per edge. It never looks
 * at an op's name.
 */
import { NDArray, sameShape, shapeStr } from '../engine/ndarray.js';
import { F, checkGradient, detectingAnomalies, duringBackward } from '../ops/dispatch.js';
import type { Node } from './tape.js';
import { gradReqOf, nodeOf, outputIndexOf } from './slot.js';
import { fail } from '../errors.js';
import { release, releaseNode, retain, retainNode } from './refs.js';

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
  /**
   * Called between nodes: frees what nothing references. The walk holds counted references to
   * what it still needs (the nodes it visits, the gradients it has summed so far).
   */
  reclaim?(): void;
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
  return duringBackward(() => walk(req));
}

function walk(req: BackwardRequest): BackwardResult {
  const { heads, headGrads } = req;
  const targets = req.variables ? new Set(req.variables) : null;
  const wants = (leaf: NDArray): boolean =>
    targets ? targets.has(leaf) : gradReqOf(leaf) === 'write' || gradReqOf(leaf) === 'add';

  const headNodes = heads.map(nodeOf);
  heads.forEach((h, i) => {
    if (headNodes[i]?.freed) {
      throw fail('graph_freed', `${headName(i, heads.length)} was already used in a backward pass that freed its graph; record it again, or pass retain_graph: true to the first backward`);
    }
    if (!headNodes[i] && !(targets && targets.has(h))) {
      throw fail('no_graph', `${headName(i, heads.length)} has no recorded history; compute it inside a record scope (POST /autograd/record, or "record": true on /ops) from an array with attach-grad`);
    }
  });

  // Topological order of the nodes reachable from the heads (iterative DFS: graphs can be deep).
  // Each node gets a slot number when first seen; the walk's per-node state lives in arrays
  // indexed by slot rather than in maps keyed by node.
  const slotOf = new Map<Node, number>();
  const nodes: Node[] = [];
  const order: number[] = [];
  const stackSlot: number[] = [];
  const stackNext: number[] = [];
  const discover = (node: Node): void => {
    slotOf.set(node, nodes.length);
    stackSlot.push(nodes.length);
    stackNext.push(0);
    nodes.push(node);
  };
  for (const n of headNodes) if (n && !slotOf.has(n)) discover(n);
  while (stackSlot.length) {
    const top = stackSlot.length - 1;
    const slot = stackSlot[top];
    const node = nodes[slot];
    const i = stackNext[top];
    if (i < node.inputs.length) {
      stackNext[top]++;
      const e = node.inputs[i];
      if (e && 'node' in e && !slotOf.has(e.node)) {
        if (e.node.freed) throw fail('graph_freed', 'part of the graph behind the heads was freed by an earlier backward; record it again, or pass retain_graph: true to the earlier backward');
        discover(e.node);
      }
    } else {
      stackSlot.pop();
      stackNext.pop();
      order.push(slot);
    }
  }

  // needs[slot][i]: input i of the node leads to a variable that wants a gradient. A node is
  // useful when some input needs one; inputs come first in `order`, so one pass settles it.
  const needs: boolean[][] = new Array(nodes.length);
  const useful = new Uint8Array(nodes.length);
  for (const slot of order) {
    const ins = nodes[slot].inputs;
    const need = new Array<boolean>(ins.length);
    for (let i = 0; i < ins.length; i++) {
      const e = ins[i];
      need[i] = e !== null && ('leaf' in e ? wants(e.leaf) : useful[slotOf.get(e.node)!] === 1);
      if (need[i]) useful[slot] = 1;
    }
    needs[slot] = need;
  }
  const isUseful = (node: Node): boolean => {
    const slot = slotOf.get(node);
    return slot !== undefined && useful[slot] === 1;
  };
  if (!targets && !headNodes.some((n) => n && isUseful(n))) {
    throw fail('no_grad', 'the heads do not depend on any array with a gradient buffer (grad_req write or add); call attach-grad on the inputs before recording');
  }

  // The walk holds every node it visits, every gradient it keeps and every leaf it returns one
  // for, by a counted reference, so that a reclaim between nodes frees only what the walk and
  // its caller are done with.
  for (const n of nodes) retainNode(n);
  const held: NDArray[] = [];
  const hold = (a: NDArray): NDArray => {
    retain(a);
    held.push(a);
    return a;
  };
  for (const h of heads) hold(h);
  for (const g of headGrads) if (g) hold(g);
  if (req.variables) for (const v of req.variables) hold(v);

  // Gradients of each node's outputs, summed over its consumers (null: none arrived yet); each
  // one held by a counted reference until it is consumed.
  const nodeGrads: ((NDArray | null)[] | undefined)[] = new Array(nodes.length);
  const leafGrads = new Map<NDArray, NDArray>();
  const sum = (prev: NDArray | null | undefined, g: NDArray): NDArray => {
    const next = prev ? F.add(prev, g) : g;
    retain(next);
    if (prev) release(prev);
    return next;
  };
  const addLeaf = (leaf: NDArray, g: NDArray): void => {
    // The leaf too: its only holder may be the edge of the node just visited, which frees it
    // (retain_graph false) before the caller writes the leaf's gradient buffer.
    if (!leafGrads.has(leaf)) hold(leaf);
    leafGrads.set(leaf, sum(leafGrads.get(leaf), g));
  };
  const addNode = (node: Node, index: number, g: NDArray): void => {
    const slot = slotOf.get(node)!;
    let gs = nodeGrads[slot];
    if (!gs) {
      gs = [];
      for (let i = 0; i < node.outputs.length; i++) gs.push(null);
      nodeGrads[slot] = gs;
    }
    gs[index] = sum(gs[index], g);
  };

  // Anomaly mode checks what each node sends on, once it is summed down to its input's shape.
  const checking = detectingAnomalies();
  try {
    heads.forEach((h, i) => {
      const hg = headGrads[i];
      if (hg && !sameShape(hg.shape, h.shape)) {
        throw fail('shape_mismatch', `head_grads[${i}] has shape ${shapeStr(hg.shape)} but ${headName(i, heads.length)} has shape ${shapeStr(h.shape)}; they must match exactly`);
      }
      if (hg && hg.dtype !== h.dtype) throw fail('dtype_mismatch', `head_grads[${i}] is ${hg.dtype} but the head is ${h.dtype}`);
      const g = hg ?? F.ones_like(h);
      const n = headNodes[i];
      if (n && isUseful(n)) addNode(n, outputIndexOf(h), g);
      else if (targets?.has(h)) addLeaf(h, g);
    });

    for (let oi = order.length - 1; oi >= 0; oi--) {
      const slot = order[oi];
      const gs = nodeGrads[slot];
      if (!useful[slot] || !gs) continue;
      nodeGrads[slot] = undefined;
      const node = nodes[slot];
      const given = gs.slice();
      try {
        // Outputs no consumer used get zeros: a vjp sees one gradient per output.
        for (let i = 0; i < gs.length; i++) {
          gs[i] ??= F.zeros({ shape: [...node.outputs[i].shape], dtype: node.outputs[i].dtype });
        }
        const need = needs[slot];
        const dx = node.op.vjp!({ g: gs as NDArray[], x: node.x, y: node.y, attrs: node.attrs, shapes: node.shapes, dtypes: node.dtypes, needs: need });
        const sent: (NDArray | null)[] | null = checking ? new Array<NDArray | null>(node.inputs.length).fill(null) : null;
        for (let i = 0; i < node.inputs.length; i++) {
          const e = node.inputs[i];
          const d = dx[i];
          if (!e || !need[i] || !d) continue;
          const gi = unbroadcast(d, node.shapes[i]!);
          if (sent) sent[i] = gi;
          if ('leaf' in e) addLeaf(e.leaf, gi);
          else addNode(e.node, e.index, gi);
        }
        if (sent) checkGradient({ node, g: gs as NDArray[], x: node.x, y: node.y, shapes: node.shapes, dtypes: node.dtypes, dx: sent });
      } finally {
        for (const g of given) if (g) release(g);
      }
      // Each node is visited once: without retain_graph its saved values are dead from here on.
      if (!req.retainGraph) node.free();
      req.reclaim?.();
    }

    if (!req.retainGraph) for (const node of nodes) node.free();
    return { grads: new Map(leafGrads) };
  } finally {
    // Released, not freed: the caller reads the gradients before the session's next reclaim.
    for (const gs of nodeGrads) if (gs) for (const g of gs) if (g) release(g);
    for (const g of leafGrads.values()) release(g);
    for (const a of held) release(a);
    for (const n of nodes) releaseNode(n);
  }
}
