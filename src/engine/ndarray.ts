/**
 * NDArray: a shape and dtype over a backend Storage. Several NDArrays may share one Storage
 * (reshape is a view) through one Cell, which counts the references to the buffer; the session
 * frees the buffer when the count drops to zero (src/session/memory.ts, src/autograd/refs.ts).
 */
import type { DType, Storage } from './backend.js';

/**
 * Room on an array for the layer above: autograd declares the fields (src/autograd/slot.ts) by
 * merging into this interface, so the engine neither knows nor reads them.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ArraySlot {}

let nextId = 1;

/**
 * Something freed when its count of references drops to zero: a buffer's Cell, or a tape node.
 * It is not freed at once but handed to its keeper, which frees it at the next safe point if
 * nothing took a new reference meanwhile: code that just made an array holds it in a local
 * variable before anything counts it.
 */
export interface Counted {
  readonly refs: number;
  /** When it was made, in its keeper's sequence (see Keeper.stamp). */
  readonly born: number;
  /** Frees it (idempotent). */
  dispose(): void;
}

/** Where counted things go when their count drops to zero (the session's memory). */
export interface Keeper {
  pend(x: Counted): void;
  /** A number larger than that of everything made so far. */
  stamp(): number;
  /** Gives the cell's buffer back to the backend and uncounts its bytes. */
  free(c: Cell): void;
}

/**
 * One buffer and its references: each counted NDArray over it (a name, a gradient slot, a
 * program temporary, a tape's leaf edge) and each tape node that saves it for backward.
 */
export class Cell implements Counted {
  refs = 0;
  /** How many of `refs` are tape nodes saving the buffer (in-place writes must not touch it). */
  saves = 0;
  dead = false;
  /** Its place in the keeper's list of held buffers (-1 once freed): removal is a swap, not a hash. */
  slot = -1;
  readonly born: number;
  constructor(
    readonly storage: Storage,
    readonly bytes: number,
    readonly keeper: Keeper,
  ) {
    this.born = keeper.stamp();
  }

  dispose(): void {
    this.keeper.free(this);
  }
}

export class NDArray {
  readonly id = nextId++;
  /** Autograd's state of this array (history, gradient buffer); null until it has any. */
  autograd: ArraySlot | null = null;
  /** Counted references to this array (src/autograd/refs.ts); while positive it holds its cell. */
  refs = 0;

  constructor(
    readonly cell: Cell,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  get storage(): Storage {
    return this.cell.storage;
  }

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
