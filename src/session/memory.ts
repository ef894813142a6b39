/**
 * A session's native memory: every buffer it allocates is counted against its quota and the
 * process's, and freed when its reference count drops to zero (src/autograd/refs.ts). What drops
 * to zero, and what was just made and is not yet held, waits in `pending` until the next safe
 * point (`drain`: between statements, between backward nodes, after an answer is read), so the
 * cost of freeing is in proportion to the work done, never to what the session holds.
 */
import { itemSize, type Backend, type DType } from '../engine/backend.js';
import { Cell, NDArray, sameShape, sizeOf, shapeStr, type Counted, type Keeper } from '../engine/ndarray.js';
import type { Allocator } from '../engine/kernels.js';
import { fail } from '../errors.js';

/**
 * Bytes and buffers held by all sessions of the process, against GRADSERVE_MAX_TOTAL_BYTES and
 * GRADSERVE_MAX_TOTAL_ARRAYS. Buffers are counted because each array costs about a kilobyte of
 * JavaScript heap (its handle, its name, the tape nodes that save it) whatever its size: 700,000
 * arrays of one element held 36 MB of native memory and exhausted a 4 GB heap.
 */
export class ProcessMemory {
  bytes = 0;
  buffers = 0;
  constructor(readonly maxBytes: number, readonly maxBuffers = Infinity) {}
}

export class SessionMemory implements Allocator, Keeper {
  /**
   * Every buffer not yet freed (for freeAll and the debug check), each at its `slot`. An array
   * with swap-removal, not a Set: a chain of small ops adds and deletes thousands a request, and
   * a Set rehashed and reallocated its table as it grew and shrank.
   */
  private readonly heldCells: Cell[] = [];
  /** Counted things at zero references, to free at the next drain unless retained by then. */
  private pending: Counted[] = [];
  bytes = 0;
  /** The most bytes held at once (benchmarks compare it with the process's peak RSS). */
  peakBytes = 0;
  /** Bytes allocated over the session's life: the program runner reclaims after every so many. */
  allocated = 0;

  constructor(
    readonly backend: Backend,
    private readonly proc: ProcessMemory,
    private readonly maxBytes: number,
    private readonly maxElements: number,
    private readonly maxFlops = Infinity,
    private readonly maxBuffers = Infinity,
  ) {}

  /**
   * Dimensions are non-negative integers whose product, counting a 0 as 1, stays within the
   * element limit: an empty array of shape [0, 2^31, 2^31] holds nothing, but its strides would
   * overflow what kernels index with.
   */
  private checkShape(shape: readonly number[]): void {
    let extent = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw fail('invalid_argument', `shape ${shapeStr(shape)} has a dimension that is not a non-negative integer`);
      extent *= Math.max(d, 1);
    }
    if (extent > this.maxElements) {
      throw fail('array_too_large', `shape ${shapeStr(shape)} spans ${extent} elements counting its empty axes as 1; the limit is ${this.maxElements} (GRADSERVE_MAX_ARRAY_ELEMENTS)`, { limit: 'array_elements', value: extent });
    }
  }

  checkFlops(flops: number, what: string): void {
    if (flops > this.maxFlops) {
      throw fail('array_too_large', `this ${what} needs ${flops} multiply-adds; the limit is ${this.maxFlops} (GRADSERVE_MAX_KERNEL_FLOPS). Split it into smaller products`, { limit: 'kernel_flops', value: flops });
    }
  }

  alloc(dtype: DType, shape: readonly number[]): NDArray {
    this.checkShape(shape);
    const n = sizeOf(shape);
    if (n > this.maxElements) {
      throw fail('array_too_large', `an array of shape ${shapeStr(shape)} has ${n} elements; the limit is ${this.maxElements} (GRADSERVE_MAX_ARRAY_ELEMENTS)`, { limit: 'array_elements', value: n });
    }
    const b = n * itemSize(dtype);
    if (this.bytes + b > this.maxBytes) {
      throw fail('quota_exceeded', `this session would hold ${this.bytes + b} bytes; its limit is ${this.maxBytes} (GRADSERVE_MAX_SESSION_BYTES). Delete arrays or tapes you no longer need`, { limit: 'session_bytes', value: this.bytes + b });
    }
    if (this.proc.bytes + b > this.proc.maxBytes) {
      throw fail('quota_exceeded', `the server holds ${this.proc.bytes} bytes and its limit is ${this.proc.maxBytes} (GRADSERVE_MAX_TOTAL_BYTES); try again later`, { limit: 'total_bytes', value: this.proc.bytes + b });
    }
    if (this.heldCells.length >= this.maxBuffers) {
      throw fail('quota_exceeded', `this session holds ${this.heldCells.length} arrays, its limit (GRADSERVE_MAX_SESSION_ARRAYS); delete arrays you no longer need, or keep many small ones as one larger array`, { limit: 'session_arrays', value: this.heldCells.length });
    }
    if (this.proc.buffers >= this.proc.maxBuffers) {
      throw fail('quota_exceeded', `the server holds ${this.proc.buffers} arrays, its limit (GRADSERVE_MAX_TOTAL_ARRAYS); try again later`, { limit: 'total_arrays', value: this.proc.buffers });
    }
    const s = this.backend.alloc(dtype, n);
    const cell = new Cell(s, b, this);
    this.proc.buffers++;
    cell.slot = this.heldCells.length;
    this.heldCells.push(cell);
    this.pending.push(cell);
    this.bytes += b;
    this.proc.bytes += b;
    this.allocated += b;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    return new NDArray(cell, shape, dtype);
  }

  view(of: NDArray, shape: readonly number[]): NDArray {
    this.checkShape(shape);
    return new NDArray(of.cell, shape, of.dtype);
  }

  /** The buffer the running op may write its output over (see donate); taken by the first reuse. */
  private donated: Cell | null = null;
  /** Outputs written over a dying input instead of a new buffer, over the session's life. */
  reused = 0;

  /**
   * Offers c (the buffer of an input that dies with the op about to run, and that nothing else
   * references) to the op's output; null withdraws the offer.
   */
  donate(c: Cell | null): void {
    this.donated = c;
  }

  reuse(x: NDArray, dtype: DType, shape: readonly number[]): NDArray | null {
    if (this.donated === null || x.cell !== this.donated) return null;
    const r = this.take(x, dtype, shape);
    if (r) this.donated = null;
    return r;
  }

  /** The array a statement's output name held, dying with the statement, offered to its output (null withdraws it). */
  private replaced: NDArray | null = null;

  donateReplaced(x: NDArray | null): void {
    this.replaced = x;
  }

  /** The replaced array's buffer, for an output of its dtype and shape that reads none of it. */
  reuseReplaced(dtype: DType, shape: readonly number[]): NDArray | null {
    const r = this.replaced === null ? null : this.take(this.replaced, dtype, shape);
    if (r) this.replaced = null;
    return r;
  }

  /** x's buffer as an output of dtype and shape, or null when they differ from x's. */
  private take(x: NDArray, dtype: DType, shape: readonly number[]): NDArray | null {
    // Same shape, not only the same size: an elementwise kernel then reads x at the index it writes.
    if (x.dtype !== dtype || !sameShape(x.shape, shape)) return null;
    this.reused++;
    return new NDArray(x.cell, x.shape, dtype);
  }

  pend(x: Counted): void {
    this.pending.push(x);
  }

  private seq = 0;
  stamp(): number {
    return ++this.seq;
  }

  free(c: Cell): void {
    if (c.dead) return;
    c.dead = true;
    if (this.heldCells[c.slot] === c) {
      const last = this.heldCells.pop()!;
      if (last !== c) {
        this.heldCells[c.slot] = last;
        last.slot = c.slot;
      }
    }
    c.slot = -1;
    this.bytes -= c.bytes;
    this.proc.bytes -= c.bytes;
    this.proc.buffers--;
    this.backend.free(c.storage);
  }

  /**
   * Frees whatever is pending and still unreferenced. Only at a safe point: an array made since
   * the last one and not yet held by anything counted is freed too. With `floor`, what was made
   * at or before that stamp is kept for a later drain: a walk that reclaims as it goes frees only
   * what it made, not its caller's arrays that nothing counts yet.
   */
  drain(floor = -1): void {
    const kept: Counted[] = [];
    let examined = 0;
    // Freeing a node releases what it held, which may append to the list: loop until it is empty.
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      examined += batch.length;
      for (let i = 0; i < batch.length; i++) {
        const x = batch[i];
        if (x.refs !== 0) continue;
        if (x.born <= floor) {
          kept.push(x);
          continue;
        }
        try {
          x.dispose();
        } catch (e) {
          // A free that throws leaves the rest for the next drain.
          for (let j = i + 1; j < batch.length; j++) this.pending.push(batch[j]);
          for (const k of kept) this.pending.push(k);
          throw e;
        }
      }
    }
    this.pending = kept;
    this.examined += examined;
  }

  /** Pending entries drains have looked at, over the session's life (tests: the cost of freeing). */
  examined = 0;

  /** Frees every buffer the session holds (deleting the session). */
  freeAll(): void {
    this.pending = [];
    for (const c of [...this.heldCells]) this.free(c);
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  get buffers(): number {
    return this.heldCells.length;
  }

  /** The buffers not yet freed, in no particular order. */
  get held(): readonly Cell[] {
    return this.heldCells;
  }
}
