/**
 * Answers that carry arrays as raw bytes (.npy, a safetensors export) copy them out of native
 * memory in chunks, yielding to the event loop between them: copying the largest array (512 MiB)
 * at once held the loop for 1.5 s on the busy test box, and a whole session's export would hold
 * it longer. The chunks are sent one after another, never joined into one Buffer.
 *
 * The copy runs inside the session's turn (a Deferred read by Session.run), so no request of the
 * session can change or free the arrays meanwhile; only a shutdown can close the session.
 */
import type { NDArray } from '../engine/ndarray.js';
import { itemSize } from '../engine/backend.js';
import { fail } from '../errors.js';
import type { Session } from './session.js';

/** Bytes copied per turn of the event loop. */
export const CHUNK_BYTES = 8 * 2 ** 20;

export class ChunkedCopy {
  readonly parts: Uint8Array[] = [];
  private sinceYield = 0;

  constructor(private readonly s: Session) {}

  /** Bytes already at hand (a header). */
  push(bytes: Uint8Array): void {
    this.parts.push(bytes);
  }

  /** Appends the array's little-endian bytes. */
  async array(a: NDArray): Promise<void> {
    const be = this.s.memory.backend;
    const total = a.size * itemSize(a.dtype);
    for (let off = 0; off < total; off += CHUNK_BYTES) {
      if (this.sinceYield >= CHUNK_BYTES) {
        await new Promise((r) => setImmediate(r));
        this.sinceYield = 0;
        if (this.s.closed) throw fail('not_found', `session ${this.s.id} was deleted`);
      }
      const n = Math.min(CHUNK_BYTES, total - off);
      this.parts.push(be.readBytes(a.storage, off, n));
      this.sinceYield += n;
    }
  }
}
