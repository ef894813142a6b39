/**
 * Reference counts, as MXNet and PyTorch free an NDArray: names, gradient slots, program
 * temporaries, tape edges and saved tensors hold references; what drops to zero is handed to the
 * session's keeper and freed at its next safe point (between statements, between backward nodes,
 * after a request's answer is read), whatever the session's size.
 *
 * The graph is acyclic by construction: a counted array holds its cell, its gradient buffer and
 * the node that made it; a node holds the cells it saves (data only, never the saved array's
 * history, or an op saving its own output would hold itself) and its input edges, which point
 * to older nodes and to leaves.
 */
import type { Cell, NDArray } from '../engine/ndarray.js';
import type { Node } from './tape.js';

const bug = (what: string): Error => new Error(`refs: ${what}`);

function retainCell(c: Cell): void {
  if (c.dead) throw bug('a freed buffer was referenced again');
  c.refs++;
}

function releaseCell(c: Cell): void {
  if (c.refs <= 0) throw bug('a buffer was released more often than retained');
  if (--c.refs === 0) c.keeper.pend(c);
}

/**
 * A new reference to `a`: the first one takes references to its cell, gradient and history
 * (iteratively: a gradient buffer may itself be a variable, as deep as a client chains them).
 */
export function retain(a: NDArray): void {
  let x: NDArray | null = a;
  while (x) {
    if (x.refs++ > 0) return;
    retainCell(x.cell);
    const s: NDArray['autograd'] = x.autograd;
    if (s?.node) retainNode(s.node);
    x = s?.grad ?? null;
  }
}

/** Drops a reference to `a`; the last one drops what it held (iteratively: gradient chains). */
export function release(a: NDArray): void {
  const stack = [a];
  while (stack.length) {
    const x = stack.pop()!;
    if (x.refs <= 0) throw bug(`array ${x.id} was released more often than retained`);
    if (--x.refs > 0) continue;
    releaseCell(x.cell);
    const s = x.autograd;
    if (!s) continue;
    if (s.grad) stack.push(s.grad);
    if (s.node) releaseNode(s.node);
  }
}

export function retainNode(n: Node): void {
  n.refs++;
}

export function releaseNode(n: Node): void {
  if (n.refs <= 0) throw bug(`node ${n.id} was released more often than retained`);
  if (--n.refs === 0) n.keeper.pend(n);
}

/** A tape node saving `a`'s data for its vjp. */
export function saveData(a: NDArray): void {
  retainCell(a.cell);
  a.cell.saves++;
}

export function unsaveData(a: NDArray): void {
  a.cell.saves--;
  releaseCell(a.cell);
}

/** Replaces what a counted holder points at: the new reference is taken before the old is dropped. */
export function swap(prev: NDArray | null | undefined, next: NDArray | null | undefined): void {
  if (next) retain(next);
  if (prev) release(prev);
}

/** Replaces a node reference held by a counted array. */
export function swapNode(prev: Node | null, next: Node | null): void {
  if (next) retainNode(next);
  if (prev) releaseNode(prev);
}
