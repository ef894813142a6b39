/**
 * The NDArray-level kernels (src/engine/kernels.ts) that ops use instead of the backend: creation,
 * random, in-place writes and scatters, on both backends, with their checks; and that ops, which
 * see only `Kernels`, cannot reach the backend through it.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, DType } from '../../src/engine/backend.js';
import { makeKernels, type Allocator } from '../../src/engine/kernels.js';
import { Cell, NDArray, sizeOf, type Keeper } from '../../src/engine/ndarray.js';
import { randomUnit, referenceBackend } from '../../src/engine/reference.js';
import { loadNativeBackend } from '../../src/engine/native.js';

const native = loadNativeBackend();
if (!native) throw new Error('native addon missing: run `npm run install` first');

/** A keeper that never frees: these tests hold a handful of small buffers for the process's life. */
let stamps = 0;
const keeper: Keeper = { pend: () => undefined, stamp: () => ++stamps, free: () => undefined };

/** An allocator straight over a backend that refuses arrays of more than `max` elements. */
function allocator(backend: Backend, max = Infinity): Allocator {
  return {
    backend,
    alloc(dtype: DType, shape: readonly number[]) {
      if (sizeOf(shape) > max) throw new Error(`refused: ${sizeOf(shape)} elements`);
      return new NDArray(new Cell(backend.alloc(dtype, sizeOf(shape)), 0, keeper), shape, dtype);
    },
    view: (of: NDArray, shape: readonly number[]) => new NDArray(of.cell, shape, of.dtype),
  };
}

for (const [name, backend] of [['reference', referenceBackend], ['native', native]] as const) {
  const k = makeKernels(allocator(backend));
  const values = (a: NDArray) => Array.from(backend.readNumbers(a.storage));

  describe(`kernels over the ${name} backend`, () => {
    it('arange and eye', () => {
      const a = k.arange('float64', 4, 1, 0.5);
      expect(a.shape).toEqual([4]);
      expect(values(a)).toEqual([1, 1.5, 2, 2.5]);
      const e = k.eye('float32', 2, 3, 1);
      expect(e.shape).toEqual([2, 3]);
      expect(values(e)).toEqual([0, 1, 0, 0, 0, 1]);
    });

    it('random kernels draw from the stream once the array exists, and not when it is refused', () => {
      const drawn: number[] = [];
      const draws = (n: number) => { drawn.push(n); return { seed: 9, counter: 4 }; };
      const u = k.randomUniform('float64', [2, 3], 2, 4, draws);
      expect(u.shape).toEqual([2, 3]);
      expect(values(u)).toEqual([0, 1, 2, 3, 4, 5].map((i) => 2 + 2 * randomUnit(9, (4 + i) * 2)));
      const z = k.randomNormal('float64', [5], 1, 0.5, draws);
      expect(z.shape).toEqual([5]);
      expect(drawn).toEqual([6, 5]);
      const small = makeKernels(allocator(backend, 3));
      expect(() => small.randomNormal('float64', [4], 0, 1, draws)).toThrow(/refused/);
      expect(() => small.randomUniform('float64', [4], 0, 1, draws)).toThrow(/refused/);
      expect(drawn).toEqual([6, 5]);
    });

    it('fromNumbers and fromBytes make arrays of their values, and refuse the wrong count', () => {
      const a = k.fromNumbers('float32', [2, 2], [1, 2, 3, 0.1]);
      expect(values(a)).toEqual([1, 2, 3, Math.fround(0.1)]);
      const bytes = new Uint8Array(Float64Array.of(5, -6).buffer);
      expect(values(k.fromBytes('float64', [2], bytes))).toEqual([5, -6]);
      expect(() => k.fromNumbers('float64', [3], [1, 2])).toThrow('kernels: 2 values for shape [3]');
      expect(() => k.fromBytes('float32', [2], bytes)).toThrow('kernels: 16 bytes for a float32 array of shape [2]');
    });

    it('assign and fill write in place; assign refuses another dtype or size', () => {
      const dst = k.full('float64', [2, 2], 7);
      k.assign(k.fromNumbers('float64', [4], [1, 2, 3, 4]), dst);
      expect(values(dst)).toEqual([1, 2, 3, 4]);
      k.assign(dst, dst);
      expect(values(dst)).toEqual([1, 2, 3, 4]);
      k.fill(dst, -1);
      expect(values(dst)).toEqual([-1, -1, -1, -1]);
      expect(() => k.assign(k.full('float32', [4], 1), dst)).toThrow('kernels: assign of float32 into float64; cast first');
      expect(() => k.assign(k.full('float64', [3], 1), dst)).toThrow('kernels: assign of [3] into [2, 2]');
    });

    it('scatterAdd adds through a view, and refuses a view of another size or dtype', () => {
      const into = k.full('float64', [2, 3], 1);
      k.scatterAdd(k.fromNumbers('float64', [2], [10, 20]), into, { shape: [2], strides: [3], offset: 1 });
      expect(values(into)).toEqual([1, 11, 1, 1, 21, 1]);
      expect(() => k.scatterAdd(k.full('float64', [3], 1), into, { shape: [2], strides: [3], offset: 0 }))
        .toThrow('kernels: scatterAdd of [3] through a view of shape [2]');
      expect(() => k.scatterAdd(k.full('float32', [2], 1), into, { shape: [2], strides: [3], offset: 0 }))
        .toThrow('kernels: scatterAdd of float32 into float64');
      // The backend still refuses a view out of bounds.
      expect(() => k.scatterAdd(k.full('float64', [2], 1), into, { shape: [2], strides: [3], offset: 4 })).toThrow();
    });

    it('scatter is zeros with x added at the view', () => {
      const s = k.scatter(k.fromNumbers('float64', [2], [3, 4]), [2, 2], { shape: [2], strides: [2], offset: 1 });
      expect(values(s)).toEqual([0, 3, 0, 4]);
    });
  });
}

describe('what ops see', () => {
  it('Kernels holds no backend: every field is a function of NDArrays', () => {
    const k = makeKernels(allocator(referenceBackend));
    expect('backend' in k).toBe(false);
    for (const [field, v] of Object.entries(k)) {
      expect(typeof v, field).toBe('function');
      expect(v as unknown, field).not.toBe(referenceBackend);
    }
  });
});
