/**
 * NDArray: a shape and dtype over a backend Storage, plus the autograd bookkeeping a session needs.
 * Several NDArrays may share one Storage (reshape is a view); the session frees a Storage once no
 * name, gradient or live tape reaches it (src/session/memory.ts).
 */
import type { DType, Storage } from './backend.js';
import type { Node } from '../autograd/tape.js';

export type GradReq = 'write' | 'add' | 'null';

let nextId = 1;

export class NDArray {
  readonly id = nextId++;
  /** The op that produced this array while recording, or null (a leaf or a constant). */
  node: Node | null = null;
  /** Which output of `node` this array is. */
  outputIndex = 0;
  /** Set by attach-grad: this array is a variable. */
  gradReq: GradReq | null = null;
  grad: NDArray | null = null;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  get size(): number {
    return sizeOf(this.shape);
  }

  get isVariable(): boolean {
    return this.gradReq !== null;
  }

  /** True while the array has history backward can still walk. */
  get recorded(): boolean {
    return this.node !== null && !this.node.freed;
  }
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
