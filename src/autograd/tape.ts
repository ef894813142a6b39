/**
 * The tape as plain data: nodes with ids, not closures, so a tape can be listed, drawn and freed.
 * A node keeps only what its op's vjp reads (OpDef.save); inputs are edges to the node that made
 * them, or to a variable (a leaf with a gradient buffer), or null for constants.
 */
import { NDArray, type Counted, type Keeper } from '../engine/ndarray.js';
import type { OpDef, Value } from '../ops/registry.js';
import type { DType } from '../engine/backend.js';
import type { StatementSite } from '../program/site.js';
import { release, releaseNode, unsaveData } from './refs.js';

export type Edge = { node: Node; index: number } | { leaf: NDArray };

let nextNodeId = 1;

/** The saved values of a node that keeps none (or no longer does): one shared, frozen array. */
export const NOTHING_SAVED = Object.freeze([]) as unknown as never[];

/**
 * A node is counted (src/autograd/refs.ts): by the counted arrays it made, by the later nodes
 * whose inputs it made, and by a backward walk over it. At zero it is freed.
 */
export class Node implements Counted {
  readonly id = nextNodeId++;
  freed = false;
  refs = 0;
  readonly born: number;
  /** The statement that recorded the node (anomaly mode's errors point at it). */
  site: StatementSite | null = null;
  constructor(
    readonly keeper: Keeper,
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
  ) {
    this.born = keeper.stamp();
  }

  /**
   * Drops the saved values and the references to its inputs: backward through this node is no
   * longer possible. The edges stay readable (listings), uncounted.
   */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    const { x, y } = this;
    this.x = NOTHING_SAVED;
    this.y = NOTHING_SAVED;
    for (const v of x) if (v instanceof NDArray) unsaveData(v);
    for (const v of y) if (v) unsaveData(v);
    for (const e of this.inputs) {
      if (!e) continue;
      if ('leaf' in e) release(e.leaf);
      else releaseNode(e.node);
    }
    this.tape.dropped(this);
  }

  dispose(): void {
    this.free();
  }
}

export class Tape {
  /** Its nodes in recording order, freed ones included until enough are to compact. */
  readonly nodes: Node[] = [];
  readonly createdAt = new Date();
  /** True while the record scope that opened it is on the stack. */
  open = true;
  /** Nodes not yet freed. */
  live = 0;
  /** Called when the tape is closed and its last node was freed (the session forgets it). */
  onEmpty: ((t: Tape) => void) | null = null;
  constructor(readonly id: string) {}

  get liveNodes(): Node[] {
    return this.nodes.filter((n) => !n.freed);
  }

  add(n: Node): void {
    this.nodes.push(n);
    this.live++;
  }

  dropped(_n: Node): void {
    this.live--;
    // Compacted once half the list is freed: amortised O(1) per node, never a walk per free.
    if (this.live * 2 < this.nodes.length && this.nodes.length > 32) {
      let kept = 0;
      for (const n of this.nodes) if (!n.freed) this.nodes[kept++] = n;
      this.nodes.length = kept;
    }
    if (this.live === 0) {
      this.nodes.length = 0;
      if (!this.open) this.onEmpty?.(this);
    }
  }

  close(): void {
    this.open = false;
    if (this.live === 0) this.onEmpty?.(this);
  }
}
