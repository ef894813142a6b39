/**
 * The tape as plain data: nodes with ids, not closures, so a tape can be listed, drawn and freed.
 * A node keeps only what its op's vjp reads (OpDef.save); inputs are edges to the node that made
 * them, or to a variable (a leaf with a gradient buffer), or null for constants.
 */
import type { NDArray } from '../engine/ndarray.js';
import type { OpDef, Value } from '../ops/registry.js';
import type { DType } from '../engine/backend.js';

export type Edge = { node: Node; index: number } | { leaf: NDArray };

let nextNodeId = 1;

/** The saved values of a node that keeps none (or no longer does): one shared, frozen array. */
export const NOTHING_SAVED = Object.freeze([]) as unknown as never[];

export class Node {
  readonly id = nextNodeId++;
  freed = false;
  constructor(
    readonly tape: Tape,
    readonly op: OpDef,
    readonly attrs: unknown,
    readonly inputs: (Edge | null)[],
    /** Ids of the input arrays (null for scalars), for listings. */
    readonly inputIds: (number | null)[],
    readonly shapes: (readonly number[] | null)[],
    readonly dtypes: (DType | null)[],
    public x: (Value | undefined)[],
    public y: (NDArray | undefined)[],
    readonly outputs: { id: number; shape: readonly number[]; dtype: DType }[],
  ) {}

  /** Drops the saved values: backward through this node is no longer possible. */
  free(): void {
    this.freed = true;
    this.x = NOTHING_SAVED;
    this.y = NOTHING_SAVED;
  }
}

export class Tape {
  readonly nodes: Node[] = [];
  readonly createdAt = new Date();
  /** True while the record scope that opened it is on the stack. */
  open = true;
  constructor(readonly id: string) {}

  get liveNodes(): Node[] {
    return this.nodes.filter((n) => !n.freed);
  }
}
