/**
 * Buffers that request bodies are read into, kept for the next body of their size class.
 *
 * V8 counts every ArrayBuffer as external memory, and each 64 MiB of it allocated starts a full
 * collection (marking the whole heap). A training loop that uploads a 256x784 float32 batch a step
 * allocated its body anew each time: a mark-compact every 13 steps, and the body, alive across its
 * request's event-loop turns, was promoted before it died. Reused buffers are allocated once, so
 * in steady state a body costs the collector only the socket's reads, which are copied out as they
 * arrive and die young.
 *
 * A buffer is given back only after its last use. One never given back (its connection gone while
 * the response was written) is an ordinary garbage Buffer: a missed give costs a reuse, not memory.
 */

/** Smaller bodies share node's pool. */
export const STAGING_MIN_BYTES = 64 * 1024;

export class StagingPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Only buffers made here come back: a view of node's shared pool must never be reused. */
  private readonly ours = new WeakSet<ArrayBufferLike>();
  private cached = 0;
  private usedSinceTrim = false;
  /** Takes served from the pool, and takes that allocated. */
  hits = 0;
  misses = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes held for reuse. */
  get cachedBytes(): number {
    return this.cached;
  }

  /** A buffer of at least n bytes (as long as n's size class, a power of two). */
  take(n: number): Buffer {
    const size = sizeClass(n);
    this.usedSinceTrim = true;
    const kept = this.free.get(size)?.pop();
    if (kept) {
      this.cached -= size;
      this.hits++;
      return Buffer.from(kept);
    }
    this.misses++;
    const buf = Buffer.allocUnsafeSlow(size);
    this.ours.add(buf.buffer);
    return buf;
  }

  /** Keeps the buffer behind view (one take returned) for the next take of its class, if there is room. */
  give(view: Uint8Array): void {
    const ab = view.buffer;
    if (!this.ours.has(ab) || this.cached + ab.byteLength > this.limitBytes) return;
    const list = this.free.get(ab.byteLength) ?? [];
    if (list.includes(ab as ArrayBuffer)) return;
    list.push(ab as ArrayBuffer);
    this.free.set(ab.byteLength, list);
    this.cached += ab.byteLength;
  }

  /** Drops every kept buffer; with idleOnly, only if nothing was taken since the last trim. */
  trim(idleOnly = false): void {
    if (!(idleOnly && this.usedSinceTrim)) {
      this.free.clear();
      this.cached = 0;
    }
    this.usedSinceTrim = false;
  }
}

function sizeClass(n: number): number {
  return n <= STAGING_MIN_BYTES ? STAGING_MIN_BYTES : 2 ** Math.ceil(Math.log2(n));
}
