/**
 * What autograd keeps on an array (in the engine's opaque `NDArray.autograd` slot): the node that
 * made it while recording, and, for a variable, its grad_req and gradient buffer. Everything
 * reads and writes it through these functions.
 */
import type { NDArray } from '../engine/ndarray.js';
import type { GradReq } from '../program/format.js';
import type { Node } from './tape.js';
import { swap, swapNode } from './refs.js';

declare module '../engine/ndarray.js' {
  interface ArraySlot {
    /** The op that produced the array while recording, or null (a leaf or a constant). */
    node: Node | null;
    /** Which output of `node` the array is. */
    outputIndex: number;
    /** Set by attach-grad: the array is a variable. */
    gradReq: GradReq | null;
    grad: NDArray | null;
    /** MXNet's fresh_grad: the gradient buffer was written by a backward since last cleared. */
    freshGrad: boolean;
  }
}

function slotOf(a: NDArray): NonNullable<NDArray['autograd']> {
  return (a.autograd ??= { node: null, outputIndex: 0, gradReq: null, grad: null, freshGrad: false });
}

/** A variable: attach-grad was called on it. */
export function isVariable(a: NDArray): boolean {
  return a.autograd !== null && a.autograd.gradReq !== null;
}

/** True while the array has history backward can still walk. */
export function isRecorded(a: NDArray): boolean {
  const s = a.autograd;
  return s !== null && s.node !== null && !s.node.freed;
}

/** The node that made the array (even one already freed by backward), or null. */
export function nodeOf(a: NDArray): Node | null {
  return a.autograd?.node ?? null;
}

export function outputIndexOf(a: NDArray): number {
  return a.autograd?.outputIndex ?? 0;
}

export function gradOf(a: NDArray): NDArray | null {
  return a.autograd?.grad ?? null;
}

export function gradReqOf(a: NDArray): GradReq | null {
  return a.autograd?.gradReq ?? null;
}

/** Records that output `index` of `node` is `a`. */
export function setHistory(a: NDArray, node: Node | null, index = 0): void {
  if (node === null && a.autograd === null) return;
  const s = slotOf(a);
  // A counted array holds its history: the count moves with it.
  if (a.refs > 0) swapNode(s.node, node);
  s.node = node;
  s.outputIndex = index;
}

/** `to` takes `from`'s history (an in-place write keeps the target's identity and gradient buffer). */
export function takeHistory(to: NDArray, from: NDArray): void {
  setHistory(to, nodeOf(from), outputIndexOf(from));
}

/**
 * attach_grad: the array becomes a variable with the given buffer. As in MXNet 1.x, attaching to
 * an array with history cuts it: the array becomes a fresh leaf.
 */
export function attachGrad(a: NDArray, req: GradReq, grad: NDArray): void {
  const s = slotOf(a);
  if (a.refs > 0) {
    swap(s.grad, grad);
    swapNode(s.node, null);
  }
  s.node = null;
  s.gradReq = req;
  s.grad = grad;
  s.freshGrad = false;
}

/** Whether a variable's gradient was written by a backward since it was last cleared (MXNet _fresh_grad). */
export function isFreshGrad(a: NDArray): boolean {
  return a.autograd?.freshGrad ?? false;
}

export function setFreshGrad(a: NDArray, fresh: boolean): void {
  if (a.autograd !== null || fresh) slotOf(a).freshGrad = fresh;
}
