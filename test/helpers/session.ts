/** In-process sessions for tests of the op table and autograd, without HTTP. */
import { SessionStore } from '../../src/session/store.js';
import { loadConfig } from '../../src/config.js';
import { NDArray } from '../../src/engine/ndarray.js';
import type { Session } from '../../src/session/session.js';
import type { DType } from '../../src/engine/backend.js';
import { backendUnderTest } from './server.js';
import '../../src/ops/index.js';

export function newSession(backend = backendUnderTest(), seed = 7): Session {
  const store = new SessionStore(backend, loadConfig({}).limits);
  return store.create({ apiKey: null, seed, default_dtype: 'float64' }).session;
}

export function fromValues(s: Session, values: ArrayLike<number>, shape: number[], dtype: DType = 'float64'): NDArray {
  const a = s.k.alloc(dtype, shape);
  s.memory.backend.writeNumbers(a.storage, values);
  return a;
}

export function values(s: Session, a: NDArray): number[] {
  return Array.from(s.memory.backend.readNumbers(a.storage));
}

/** Deterministic pseudo-random numbers in [lo, hi) for test inputs. */
export function rand(n: number, lo: number, hi: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return lo + (hi - lo) * (x / 4294967296);
  });
}

export function close(actual: number[], expected: number[], rtol: number, atol: number): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} vs ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) return `element ${i}: ${a} vs ${e}`;
  }
  return null;
}
