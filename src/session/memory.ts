/**
 * A session's native memory: every buffer it allocates is counted against its quota and the
 * process's, and freed deterministically by a mark-and-sweep from the session's roots (names,
 * gradient buffers, and the tapes they reach) at the end of each request. Reference counting
 * would free earlier, but one sweep per request cannot get a count wrong.
 */
import { itemSize, type Backend, type DType, type Storage } from '../engine/backend.js';
import { NDArray, sizeOf, shapeStr } from '../engine/ndarray.js';
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

export class SessionMemory implements Allocator {
  /**
   * Every buffer held, in allocation order, with its size in bytes (parallel arrays: a request
   * may allocate thousands of tiny buffers, and appending is cheaper than hashing).
   */
  private readonly held: Storage[] = [];
  private readonly heldBytes: number[] = [];
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
    if (this.held.length >= this.maxBuffers) {
      throw fail('quota_exceeded', `this session holds ${this.held.length} arrays, its limit (GRADSERVE_MAX_SESSION_ARRAYS); delete arrays you no longer need, or keep many small ones as one larger array`, { limit: 'session_arrays', value: this.held.length });
    }
    if (this.proc.buffers >= this.proc.maxBuffers) {
      throw fail('quota_exceeded', `the server holds ${this.proc.buffers} arrays, its limit (GRADSERVE_MAX_TOTAL_ARRAYS); try again later`, { limit: 'total_arrays', value: this.proc.buffers });
    }
    const s = this.backend.alloc(dtype, n);
    this.proc.buffers++;
    this.held.push(s);
    this.heldBytes.push(b);
    this.bytes += b;
    this.proc.bytes += b;
    this.allocated += b;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    return new NDArray(s, shape, dtype);
  }

  view(of: NDArray, shape: readonly number[]): NDArray {
    this.checkShape(shape);
    return new NDArray(of.storage, shape, of.dtype);
  }

  /** Frees every buffer not in `live`; the rest stay, in allocation order. */
  sweep(live: Set<Storage>): void {
    const held = this.held;
    const sizes = this.heldBytes;
    let kept = 0;
    let i = 0;
    try {
      for (; i < held.length; i++) {
        const s = held[i];
        const b = sizes[i];
        if (!live.has(s)) {
          this.backend.free(s);
          this.bytes -= b;
          this.proc.bytes -= b;
          this.proc.buffers--;
          continue;
        }
        held[kept] = s;
        sizes[kept] = b;
        kept++;
      }
    } finally {
      // A free that throws leaves its buffer, and those after it, held (and counted).
      for (; i < held.length; i++, kept++) {
        held[kept] = held[i];
        sizes[kept] = sizes[i];
      }
      held.length = kept;
      sizes.length = kept;
    }
  }

  freeAll(): void {
    this.sweep(new Set());
  }

  get buffers(): number {
    return this.held.length;
  }
}
