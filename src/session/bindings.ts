/**
 * A session's names: a Map whose entries hold a counted reference to their array, so rebinding
 * or deleting a name releases the old array at once (src/autograd/refs.ts).
 */
import type { NDArray } from '../engine/ndarray.js';
import { release, retain } from '../autograd/refs.js';

export class Bindings extends Map<string, NDArray> {
  /** While a request runs (Session.run): the names it bound, in order of first binding. */
  touched: Set<string> | null = null;

  override set(name: string, a: NDArray): this {
    const prev = super.get(name);
    if (prev === a) return this;
    retain(a);
    super.set(name, a);
    this.touched?.add(name);
    if (prev) release(prev);
    return this;
  }

  override delete(name: string): boolean {
    const prev = super.get(name);
    if (!prev) return false;
    super.delete(name);
    release(prev);
    return true;
  }

  override clear(): void {
    const all = [...super.values()];
    super.clear();
    for (const a of all) release(a);
  }
}
