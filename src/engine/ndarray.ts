/**
 * NDArray: a shape and dtype over a backend Storage. Several NDArrays may share one Storage
 * (reshape is a view); the session frees a Storage once no name, gradient or live tape reaches it
 * (src/session/memory.ts).
 */
import type { DType, Storage } from './backend.js';

/**
 * Room on an array for the layer above: autograd declares the fields (src/autograd/slot.ts) by
 * merging into this interface, so the engine neither knows nor reads them.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ArraySlot {}

let nextId = 1;

export class NDArray {
  readonly id = nextId++;
  /** Autograd's state of this array (history, gradient buffer); null until it has any. */
  autograd: ArraySlot | null = null;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  get size(): number {
    return sizeOf(this.shape);
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
