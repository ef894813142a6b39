/**
 * The native backend against the reference (the living definition of every kernel), on random
 * inputs, for every kernel and every dtype it takes (floats; integers for the elementwise, copy and
 * reduction kernels; float16 for fills, copies and casts); then robustness: bad arguments throw,
 * never crash.
 */
import { describe, it, expect, afterAll } from 'vitest';
import {
  BINARY_KERNELS, DTYPES, REDUCE_KERNELS, UNARY_KERNELS, DTYPE_INFO, itemSize,
  type Backend, type DType, type Storage, type View,
} from '../../src/engine/backend.js';
import { referenceBackend as ref } from '../../src/engine/reference.js';
import { loadNativeAddon, nativeBackend as nat } from '../../src/engine/native.js';
import { rng } from '../helpers/rng.js';
import { F32_ULP_BOUND, floatIndex } from '../helpers/ulp.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');

// ---- helpers -------------------------------------------------------------------------------

/** The dtypes kernels compute on (not float16), and the float ones (GEMM, random). */
const NUMERIC = DTYPES.filter((d) => DTYPE_INFO[d].kind !== 'storage');
const FLOATS = DTYPES.filter((d) => DTYPE_INFO[d].kind === 'float');


const SPECIALS = [0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, NaN, Infinity, -Infinity, 1e-8, 30, -30, 800, -800];

function randomData(n: number, r: () => number, specials = false, lo = -3, hi = 3): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(specials && r() < 0.2 ? SPECIALS[Math.floor(r() * SPECIALS.length)] : lo + (hi - lo) * r());
  }
  return out;
}

const prod = (s: readonly number[]) => s.reduce((p, q) => p * q, 1);
const live: Storage[] = [];

/** The same data in a reference and a native buffer. */
function pair(dtype: DType, data: readonly number[]): [Storage, Storage] {
  const a = ref.alloc(dtype, data.length);
  const b = nat.alloc(dtype, data.length);
  ref.writeNumbers(a, data);
  nat.writeNumbers(b, data);
  live.push(b);
  return [a, b];
}
function outs(dtype: DType, n: number): [Storage, Storage] {
  const b = nat.alloc(dtype, n);
  live.push(b);
  return [ref.alloc(dtype, n), b];
}

/** |a-b| <= tol * max(1, |a|, |b|), NaNs equal, infinities exact. */
function expectClose(want: Float64Array, got: Float64Array, tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = want[i];
    const b = got[i];
    if (Number.isNaN(a) || Number.isNaN(b) || !Number.isFinite(a) || !Number.isFinite(b)) {
      if (!Object.is(a, b) && !(a === b)) expect(`${what}[${i}] = ${b}`).toBe(`${what}[${i}] = ${a}`);
      continue;
    }
    if (Math.abs(a - b) > tol * Math.max(1, Math.abs(a), Math.abs(b))) {
      expect(`${what}[${i}] = ${b}`).toBe(`${what}[${i}] = ${a}`);
    }
  }
}
const compare = (r: Storage, n: Storage, tol: number, what: string) =>
  expectClose(ref.readNumbers(r), nat.readNumbers(n), tol, what);

// Elementwise float32 results may differ by an ulp where libm and V8 round differently.
// Integers are exact (the reference's int64 is exact below 2^53, where these tests stay).
const ELEM_TOL: Record<DType, number> = { float32: 2.5e-7, float64: 1e-12, int32: 0, int64: 0, uint8: 0, float16: 0 };
const ACC_TOL: Record<DType, number> = { float32: 1e-5, float64: 1e-12, int32: 0, int64: 0, uint8: 0, float16: 0 };

/**
 * float32 exp, log, tanh, sigmoid, expm1, log1p and softrelu run float32-native SIMD kernels (src/native/kernels/unary_f32.h)
 * within F32_ULP_BOUND ulps of the exact value, where the reference rounds the double result once
 * (half an ulp): so the two may be bound + 1/2 ulp apart, which below a power of two is one float
 * more. They are compared as float32 neighbours, at most bound + 1 apart, specials exactly.
 */
const F32_SIMD_ULP: Partial<Record<string, number>> = F32_ULP_BOUND;
function expectUlps(want: Float64Array, got: Float64Array, ulps: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = want[i];
    const b = got[i];
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      if (!Object.is(a, b)) expect(`${what}[${i}] = ${b}`).toBe(`${what}[${i}] = ${a}`);
    } else if (Math.abs(floatIndex(a) - floatIndex(b)) > ulps) {
      expect(`${what}[${i}] = ${b} (${floatIndex(b) - floatIndex(a)} floats off)`).toBe(`${what}[${i}] = ${a}`);
    }
  }
}
/** A unary kernel's outputs: float32 SIMD transcendentals by ulps, everything else by ELEM_TOL. */
function compareUnary(op: string, dtype: DType, r: Storage, n: Storage, what: string): void {
  const bound = F32_SIMD_ULP[op];
  if (dtype === 'float32' && bound !== undefined) expectUlps(ref.readNumbers(r), nat.readNumbers(n), bound + 1, what);
  else compare(r, n, ELEM_TOL[dtype], what);
}

/** A random strided view of `shape` into a fresh buffer: broadcast, stepped, flipped, permuted, offset. */
function randomView(shape: readonly number[], r: () => number, allowBroadcast = true): { len: number; view: View } {
  const rank = shape.length;
  const order = [...Array(rank).keys()].sort(() => r() - 0.5);
  const strides = new Array<number>(rank).fill(0);
  let stride = 1;
  for (let q = rank - 1; q >= 0; q--) {
    const d = order[q];
    if (allowBroadcast && r() < 0.25) continue; // stride 0
    const step = r() < 0.3 ? 2 : 1;
    strides[d] = stride * step;
    stride *= shape[d] * step + (r() < 0.3 ? 1 : 0);
  }
  let offset = Math.floor(r() * 3);
  const len = stride + offset + 2;
  for (let d = 0; d < rank; d++) {
    if (strides[d] !== 0 && r() < 0.3) {
      offset += (shape[d] - 1) * strides[d];
      strides[d] = -strides[d];
    }
  }
  return { len, view: { shape: [...shape], strides, offset } };
}

afterAll(() => {
  for (const s of live) nat.free(s);
});

// ---- storage -------------------------------------------------------------------------------

describe('native storage', () => {
  it('allocates zero-filled buffers and frees them deterministically', () => {
    const before = addon.nativeBytesLive();
    for (const dtype of DTYPES) {
      const s = nat.alloc(dtype, 1000);
      expect(s.alive).toBe(true);
      expect(s.length).toBe(1000);
      expect(s.dtype).toBe(dtype);
      expect(addon.nativeBytesLive()).toBe(before + 1000 * itemSize(dtype));
      expect(Array.from(nat.readNumbers(s)).every((v) => v === 0)).toBe(true);
      nat.free(s);
      nat.free(s); // idempotent
      expect(s.alive).toBe(false);
      expect(addon.nativeBytesLive()).toBe(before);
    }
    const empty = nat.alloc('float64', 0);
    expect(nat.readNumbers(empty).length).toBe(0);
    expect(nat.readBytes(empty).length).toBe(0);
    nat.free(empty);
  });

  it('round-trips bytes and numbers like the reference', () => {
    const r = rng(1);
    for (const dtype of DTYPES) {
      const data = randomData(37, r, true);
      const [a, b] = pair(dtype, data);
      const bytes = nat.readBytes(b);
      expect(bytes).toBeInstanceOf(Uint8Array);
      expect(Array.from(bytes)).toEqual(Array.from(ref.readBytes(a)));
      bytes[0] ^= 0xff; // a copy: the buffer is untouched
      expect(Array.from(nat.readBytes(b))).toEqual(Array.from(ref.readBytes(a)));
      const [, c] = outs(dtype, 37);
      nat.writeBytes(c, ref.readBytes(a));
      expect(Array.from(nat.readNumbers(c))).toEqual(Array.from(ref.readNumbers(a)));
      nat.writeNumbers(c, Float64Array.from(data));
      expect(Array.from(nat.readNumbers(c))).toEqual(Array.from(ref.readNumbers(a)));
    }
  });

  it('reads a byte range like the reference, and refuses ranges outside the buffer', () => {
    for (const dtype of DTYPES) {
      const [a, b] = pair(dtype, randomData(37, rng(2), true));
      const total = 37 * itemSize(dtype);
      for (const [off, len] of [[0, total], [0, 0], [3, 17], [total - 5, 5], [total, 0]]) {
        expect(Array.from(nat.readBytes(b, off, len))).toEqual(Array.from(ref.readBytes(a, off, len)));
      }
      for (const [off, len] of [[-1, 4], [0, total + 1], [total - 3, 4], [total + 1, 0], [1.5, 2], [0, -1], [2 ** 53, 1], [NaN, 1]]) {
        expect(() => nat.readBytes(b, off, len), `${off}, ${len}`).toThrow();
        expect(() => ref.readBytes(a, off, len), `${off}, ${len}`).toThrow();
      }
    }
  });
});

// ---- creation ------------------------------------------------------------------------------

describe('creation kernels', () => {
  it('fill, arange and eye match', () => {
    for (const dtype of DTYPES) {
      const [a, b] = outs(dtype, 100);
      ref.fill(a, 0.1); nat.fill(b, 0.1);
      compare(a, b, 0, 'fill');
      ref.arange(a, -3.3, 0.07); nat.arange(b, -3.3, 0.07);
      compare(a, b, 0, 'arange');
      for (const [rows, cols, k] of [[10, 10, 0], [5, 20, 3], [20, 5, -2], [4, 25, 30], [25, 4, -30]]) {
        ref.eye(a, rows, cols, k); nat.eye(b, rows, cols, k);
        compare(a, b, 0, `eye ${rows}x${cols} k=${k}`);
      }
    }
  });

  it('a large arange (threaded) is exact', () => {
    const [a, b] = outs('float64', 200_000);
    ref.arange(a, 1.5, 1 / 3); nat.arange(b, 1.5, 1 / 3);
    compare(a, b, 0, 'arange');
  });
});

describe('random', () => {
  it('uniform bits are identical to the reference', () => {
    for (const dtype of FLOATS) {
      for (const [seed, counter] of [[0, 0], [42, 7], [-5, 3], [4294967295, 2 ** 31 - 3], [123.7, 2 ** 40 + 5]]) {
        const [a, b] = outs(dtype, 5000);
        ref.randomUniform(a, seed, counter, -2, 3); nat.randomUniform(b, seed, counter, -2, 3);
        expect(Array.from(nat.readNumbers(b)), `uniform ${dtype} ${seed} ${counter}`).toEqual(Array.from(ref.readNumbers(a)));
      }
    }
  });

  it('a large uniform draw (threaded) matches exactly', () => {
    const [a, b] = outs('float64', 300_000);
    ref.randomUniform(a, 9, 11, 0, 1); nat.randomUniform(b, 9, 11, 0, 1);
    expect(Array.from(nat.readNumbers(b))).toEqual(Array.from(ref.readNumbers(a)));
  });

  it('normals match to 1e-12 (float64) and an ulp (float32)', () => {
    for (const dtype of FLOATS) {
      for (const [seed, counter] of [[1, 0], [77, 1000], [2 ** 31, 2 ** 35]]) {
        const [a, b] = outs(dtype, 5000);
        ref.randomNormal(a, seed, counter, 0.5, 2); nat.randomNormal(b, seed, counter, 0.5, 2);
        compare(a, b, ELEM_TOL[dtype], `normal ${dtype} ${seed}`);
      }
    }
  });
});

// ---- elementwise ---------------------------------------------------------------------------

describe('unary kernels', () => {
  for (const dtype of NUMERIC) {
    it(`every unary kernel matches (${dtype})`, () => {
      const r = rng(2);
      const data = [...SPECIALS, ...randomData(300, r, true)];
      const [x, y] = pair(dtype, data);
      for (const op of UNARY_KERNELS) {
        const [a, b] = outs(dtype, data.length);
        ref.unary(op, x, a); nat.unary(op, y, b);
        compareUnary(op, dtype, a, b, `${op} ${dtype}`);
      }
    });
  }

  it('works in place and over the threaded path', () => {
    const data = randomData(100_000, rng(3));
    const [x, y] = pair('float64', data);
    ref.unary('tanh', x, x); nat.unary('tanh', y, y);
    compare(x, y, 1e-12, 'tanh in place');
  });
});

describe('SIMD elementwise paths (exp, contiguous binary)', () => {
  const levels = ['sse2', 'avx2', 'avx512f'];
  const threads0 = addon.getThreads();
  afterAll(() => { addon.setSimdCap('avx512f'); addon.setThreads(threads0); });
  // Values around every range edge of the vector exp (|x| <= 708 goes vector, the rest libm),
  // plus float32 overflow and underflow edges, at lengths that leave every possible tail.
  const EDGES = [...SPECIALS, 707.9, 708, 708.1, -708, -708.1, -709.5, 709.7, 709.8, -745.1, -745.2, 88.72, 88.73,
    -87.3, -103.9, -104, 1e-300, -1e-300, 5e-324, 0.34657, -0.34657, 0.3466, 700.5, -700.5];
  for (const dtype of FLOATS) {
    it(`exp and add/sub/mul/div/maximum/minimum match on every SIMD level, in place, any length (${dtype})`, () => {
      const r = rng(21);
      for (const level of levels) {
        if (levels.indexOf(addon.setSimdCap(level)) < levels.indexOf(level)) continue; // not on this CPU
        for (const n of [1, 3, 7, 8, 9, 15, 16, 17, 33, 1000, 70_001]) {
          const data = randomData(n, r, true, -750, 750).map((v, i) => (i % 5 === 0 ? EDGES[(i / 5) % EDGES.length] : v));
          const small = randomData(n, r, true);
          const [x, y] = pair(dtype, data);
          const [u, w] = pair(dtype, small);
          const [a, b] = outs(dtype, n);
          ref.unary('exp', x, a); nat.unary('exp', y, b);
          compareUnary('exp', dtype, a, b, `exp ${dtype} ${level} n=${n}`);
          const v = { shape: [n], strides: [1], offset: 0 };
          for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
            ref.binary(op, x, v, u, v, a); nat.binary(op, y, v, w, v, b);
            compare(a, b, 0, `${op} ${dtype} ${level} n=${n}`);
            ref.binaryScalar(op, u, 1.5, false, a); nat.binaryScalar(op, w, 1.5, false, b);
            compare(a, b, 0, `${op} scalar ${dtype} ${level} n=${n}`);
            ref.binaryScalar(op, u, -0.25, true, a); nat.binaryScalar(op, w, -0.25, true, b);
            compare(a, b, 0, `scalar ${op} ${dtype} ${level} n=${n}`);
          }
          // In place: out is an input.
          const [c, d] = pair(dtype, small);
          ref.binary('mul', c, v, x, v, c); nat.binary('mul', d, v, y, v, d);
          compare(c, d, 0, `mul in place ${dtype} ${level} n=${n}`);
          ref.unary('exp', u, u); nat.unary('exp', w, w);
          compareUnary('exp', dtype, u, w, `exp in place ${dtype} ${level} n=${n}`);
        }
      }
    });

    it(`large contiguous binary ops (streamed stores) match (${dtype})`, { timeout: 60_000 }, () => {
      // Past 16 MiB of output the AVX2 path writes with non-temporal stores; odd length and an
      // offset view so that neither the chunks nor the inputs are aligned.
      const n = (16 << 20) / itemSize(dtype) + 13;
      const r = rng(23);
      const [x, y] = pair(dtype, randomData(n + 1, r, true));
      const [u, w] = pair(dtype, randomData(n, r, true));
      const [a, b] = outs(dtype, n);
      const av = { shape: [n], strides: [1], offset: 1 }, bv = { shape: [n], strides: [1], offset: 0 };
      ref.binary('div', x, av, u, bv, a); nat.binary('div', y, av, w, bv, b);
      compare(a, b, 0, `large div ${dtype}`);
      ref.binaryScalar('sub', u, 3, true, a); nat.binaryScalar('sub', w, 3, true, b);
      compare(a, b, 0, `large scalar sub ${dtype}`);
      ref.binary('add', u, bv, u, bv, u); nat.binary('add', w, bv, w, bv, w);
      compare(u, w, 0, `large add in place ${dtype}`);
    });

    it(`exp and add give the same bits on 1 and 2 threads, inline or queued (${dtype})`, () => {
      const n = 300_007;
      const data = randomData(n, rng(22), true, -720, 720);
      const [, y] = pair(dtype, data);
      const v = { shape: [n], strides: [1], offset: 0 };
      const run = (threads: number, limit: number) => {
        addon.setThreads(threads);
        const prev = addon.setInlineLimit(limit);
        const [, e] = outs(dtype, n);
        const [, s] = outs(dtype, n);
        nat.unary('exp', y, e);
        nat.binary('add', e, v, y, v, s);
        addon.sync();
        addon.setInlineLimit(prev);
        return [nat.readBytes(e), nat.readBytes(s)];
      };
      const [e1, s1] = run(1, 1e12);
      const [e2, s2] = run(2, 0);
      expect(Buffer.compare(Buffer.from(e1), Buffer.from(e2))).toBe(0);
      expect(Buffer.compare(Buffer.from(s1), Buffer.from(s2))).toBe(0);
    });
  }
});

describe('packed view buffers', () => {
  it('a view whose getter re-enters the backend while packing still reads its own values', () => {
    const [x, y] = pair('float64', [1, 2, 3, 4, 5, 6]);
    const [a, b] = outs('float64', 6);
    const [, inner] = outs('float64', 3);
    const [, inner6] = outs('float64', 6);
    const plain = { shape: [2, 3], strides: [3, 1], offset: 0 };
    const tricky = { shape: [2, 3], strides: [1, 2], offset: 0 } as View;
    const strides = [1, 2];
    Object.defineProperty(tricky, 'strides', {
      get() {
        // Packs other views (ranks 1 and 2) into the shared buffers mid-way through this call.
        nat.binary('add', y, { shape: [3], strides: [2], offset: 1 }, y, { shape: [3], strides: [1], offset: 3 }, inner);
        nat.binary('mul', y, { shape: [2, 3], strides: [1, 2], offset: 0 }, y, plain, inner6);
        return strides;
      },
    });
    ref.binary('sub', x, plain, x, { shape: [2, 3], strides: [1, 2], offset: 0 }, a);
    nat.binary('sub', y, plain, y, tricky, b);
    compare(a, b, 0, 'sub with a re-entrant view');
    expect(Array.from(nat.readNumbers(inner))).toEqual([6, 9, 12]);
  });
});

const VIEW_SHAPES: number[][] = [[], [7], [3, 4], [2, 3, 5], [4, 1, 3, 2], [0, 3], [3, 0, 2]];

describe('binary kernels', () => {
  for (const dtype of NUMERIC) {
    it(`every binary kernel matches on random views (${dtype})`, () => {
      const r = rng(4);
      for (const shape of VIEW_SHAPES) {
        for (let trial = 0; trial < 4; trial++) {
          const va = randomView(shape, r);
          const vb = randomView(shape, r);
          const [a1, a2] = pair(dtype, randomData(va.len, r, true));
          const [b1, b2] = pair(dtype, randomData(vb.len, r, true));
          for (const op of BINARY_KERNELS) {
            const [o1, o2] = outs(dtype, prod(shape));
            ref.binary(op, a1, va.view, b1, vb.view, o1);
            nat.binary(op, a2, va.view, b2, vb.view, o2);
            compare(o1, o2, ELEM_TOL[dtype], `${op} ${dtype} ${JSON.stringify([va.view, vb.view])}`);
          }
        }
      }
    });

    it(`binaryScalar matches, both orders (${dtype})`, () => {
      const data = [...SPECIALS, ...randomData(200, rng(5), true)];
      const [x, y] = pair(dtype, data);
      for (const op of BINARY_KERNELS) {
        for (const s of [0.1, -2, 0, 2.5, NaN, Infinity]) {
          for (const first of [false, true]) {
            const [o1, o2] = outs(dtype, data.length);
            ref.binaryScalar(op, x, s, first, o1);
            nat.binaryScalar(op, y, s, first, o2);
            compare(o1, o2, ELEM_TOL[dtype], `${op} ${dtype} ${s} ${first}`);
          }
        }
      }
    });
  }

  it('a large broadcast add (threaded) matches', () => {
    const r = rng(6);
    const shape = [300, 400];
    const [a1, a2] = pair('float32', randomData(120_000, r));
    const [b1, b2] = pair('float32', randomData(400, r));
    const av = { shape, strides: [400, 1], offset: 0 };
    const bv = { shape, strides: [0, 1], offset: 0 };
    const [o1, o2] = outs('float32', 120_000);
    ref.binary('add', a1, av, b1, bv, o1); nat.binary('add', a2, av, b2, bv, o2);
    compare(o1, o2, 0, 'add');
  });

  for (const dtype of NUMERIC) {
    it(`where matches on random views (${dtype})`, () => {
      const r = rng(7);
      for (const shape of VIEW_SHAPES) {
        const vc = randomView(shape, r);
        const va = randomView(shape, r);
        const vb = randomView(shape, r);
        const cdata = randomData(vc.len, r).map((v) => (v > 0 ? 1 : v < -2 ? NaN : 0));
        const [c1, c2] = pair(dtype, cdata);
        const [a1, a2] = pair(dtype, randomData(va.len, r, true));
        const [b1, b2] = pair(dtype, randomData(vb.len, r, true));
        const [o1, o2] = outs(dtype, prod(shape));
        ref.where(c1, vc.view, a1, va.view, b1, vb.view, o1);
        nat.where(c2, vc.view, a2, va.view, b2, vb.view, o2);
        compare(o1, o2, 0, `where ${JSON.stringify(shape)}`);
      }
    });
  }
});

describe('strided copies', () => {
  for (const dtype of NUMERIC) {
    it(`copyStrided and scatterAddStrided match on random views (${dtype})`, () => {
      const r = rng(8);
      for (const shape of [...VIEW_SHAPES, [50, 40, 40]]) {
        for (let trial = 0; trial < 5; trial++) {
          const v = randomView(shape, r);
          const [x1, x2] = pair(dtype, randomData(v.len, r, true));
          const [o1, o2] = outs(dtype, prod(shape));
          ref.copyStrided(x1, v.view, o1); nat.copyStrided(x2, v.view, o2);
          compare(o1, o2, 0, `copy ${JSON.stringify(v.view)}`);

          // Scatter with broadcasting views sums several elements into one.
          const [g1, g2] = pair(dtype, randomData(prod(shape), r));
          const [t1, t2] = pair(dtype, randomData(v.len, r));
          ref.scatterAddStrided(g1, t1, v.view); nat.scatterAddStrided(g2, t2, v.view);
          compare(t1, t2, ELEM_TOL[dtype], `scatter ${JSON.stringify(v.view)}`);
        }
      }
    });
  }
});

describe('scatter-add over threads', () => {
  for (const dtype of ['float32', 'float64', 'int32'] as const) {
    it(`a view whose batch axis keeps writes apart runs threaded with the serial sums' bits (${dtype})`, () => {
      // A convolution's windows laid out [C, KH, KW, N, OH, OW] over [N, C, H, W]: windows overlap
      // within an image, never across images.
      const [N, C, H, W, K] = [64, 3, 12, 12, 3];
      const v: View = { shape: [C, K, K, N, H - K + 1, W - K + 1], strides: [H * W, W, 1, C * H * W, W, 1], offset: 0 };
      const r = rng(23);
      const [g1, g2] = pair(dtype, randomData(prod(v.shape), r));
      const [t1, t2] = pair(dtype, randomData(N * C * H * W, r));
      ref.scatterAddStrided(g1, t1, v); nat.scatterAddStrided(g2, t2, v);
      compare(t1, t2, 0, 'col2im');
      // An axis whose stride does not clear the others' spread is not split (rows that overlap).
      const overlap: View = { shape: [200, 700], strides: [3, 1], offset: 0 };
      const [h1, h2] = pair(dtype, randomData(200 * 700, r));
      const [u1, u2] = pair(dtype, randomData(199 * 3 + 700, r));
      ref.scatterAddStrided(h1, u1, overlap); nat.scatterAddStrided(h2, u2, overlap);
      compare(u1, u2, 0, 'overlapping rows');
    });
  }
});

// ---- indexed kernels -----------------------------------------------------------------------

/** The windows of [N, C, H, W] data as one view [N, C, OH, OW, KH, KW] (pooling's geometry). */
function windows(n: number, c: number, h: number, w: number, k: [number, number], s: [number, number], d: [number, number]): View {
  const oh = Math.floor((h - d[0] * (k[0] - 1) - 1) / s[0]) + 1;
  const ow = Math.floor((w - d[1] * (k[1] - 1) - 1) / s[1]) + 1;
  return { shape: [n, c, oh, ow, k[0], k[1]], strides: [c * h * w, h * w, s[0] * w, s[1], d[0] * w, d[1]], offset: 0 };
}

describe('indexed kernels', () => {
  const geometries: [number, number, number, number, [number, number], [number, number], [number, number]][] = [
    [2, 3, 6, 6, [2, 2], [2, 2], [1, 1]], [1, 2, 7, 5, [3, 2], [2, 1], [1, 1]], [3, 1, 9, 9, [3, 3], [1, 1], [2, 2]],
    [2, 2, 24, 24, [2, 2], [2, 2], [1, 1]], [1, 1, 4, 4, [4, 4], [1, 1], [1, 1]],
  ];
  for (const dtype of NUMERIC) {
    it(`windowMax finds each window's maximum and its first position, with ties and NaN (${dtype})`, () => {
      const r = rng(21);
      for (const [n, c, h, w, k, s, d] of geometries) {
        const data = randomData(n * c * h * w, r).map((v) => Math.round(v * 2) / 2); // ties
        if (DTYPE_INFO[dtype].kind === 'float') for (let i = 3; i < data.length; i += 41) data[i] = NaN;
        const [x1, x2] = pair(dtype, data);
        const v = windows(n, c, h, w, k, s, d);
        const count = prod(v.shape.slice(0, 4));
        const [o1, o2] = outs(dtype, count);
        const [i1, i2] = outs('int64', count);
        ref.windowMax(x1, v, 2, o1, i1); nat.windowMax(x2, v, 2, o2, i2);
        const what = `windowMax ${JSON.stringify(v)}`;
        compare(o1, o2, 0, what);
        compare(i1, i2, 0, `${what} positions`);
      }
    });

    it(`indexTake and indexScatterAdd match, repeated positions summing in order (${dtype})`, () => {
      const r = rng(22);
      for (const [len, count] of [[7, 30], [1, 5], [5000, 70000]]) {
        const [x1, x2] = pair(dtype, randomData(len, r));
        const pos = Array.from({ length: count }, () => Math.floor(r() * len));
        const [p1, p2] = pair('int64', pos);
        const [t1, t2] = outs(dtype, count);
        ref.indexTake(x1, p1, t1); nat.indexTake(x2, p2, t2);
        compare(t1, t2, 0, `take ${len} by ${count}`);
        const [g1, g2] = pair(dtype, randomData(count, r));
        const [s1, s2] = pair(dtype, randomData(len, r));
        ref.indexScatterAdd(g1, p1, s1); nat.indexScatterAdd(g2, p2, s2);
        compare(s1, s2, ELEM_TOL[dtype], `scatter ${count} into ${len}`);
      }
    });
  }

  it('fails a kernel given a position outside the data (checked when it runs), and refuses positions that are not int64', () => {
    const x = nat.alloc('float32', 4);
    nat.writeNumbers(x, [1, 2, 3, 4]);
    const o = nat.alloc('float32', 3);
    nat.writeNumbers(o, [7, 8, 9]);
    for (const bad of [[0, 4, 1], [-1, 0, 0], [2 ** 40, 0, 0]]) {
      const p = nat.alloc('int64', 3);
      nat.writeNumbers(p, bad);
      expect(() => { nat.indexTake(x, p, o); nat.readNumbers(o); }, JSON.stringify(bad)).toThrow(/indexTake: index -?\d+ at position \d is out of range for 4 elements/);
      const acc = nat.alloc('float32', 4);
      expect(() => { nat.indexScatterAdd(nat.alloc('float32', 3), p, acc); nat.readNumbers(acc); }).toThrow(/out of range for 4 elements/);
      nat.free(p);
    }
    const f = nat.alloc('float64', 3);
    expect(() => nat.indexTake(x, f, o)).toThrow(/int64/);
    expect(() => nat.indexScatterAdd(o, f, x)).toThrow(/int64/);
    const win = { shape: [2, 2], strides: [2, 1], offset: 0 };
    expect(() => nat.windowMax(x, win, 1, nat.alloc('float32', 2), nat.alloc('float32', 2))).toThrow(/int64/);
    expect(() => nat.windowMax(x, win, 3, nat.alloc('float32', 2), nat.alloc('int64', 2))).toThrow(/kdims/);
    expect(() => nat.windowMax(x, win, 1, nat.alloc('float32', 3), nat.alloc('int64', 3))).toThrow(/one element per window/);
    expect(() => nat.windowMax(x, { shape: [2, 0], strides: [2, 1], offset: 0 }, 1, nat.alloc('float32', 2), nat.alloc('int64', 2))).toThrow(/empty/);
    expect(() => nat.windowMax(x, { shape: [2, 3], strides: [2, 1], offset: 0 }, 1, nat.alloc('float32', 2), nat.alloc('int64', 2))).toThrow(Error);
    nat.free(x); nat.free(f);
  });
});

// ---- reductions ----------------------------------------------------------------------------

function subsets(rank: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << rank; mask++) out.push([...Array(rank).keys()].filter((d) => mask & (1 << d)));
  return out;
}

describe('reductions', () => {
  for (const dtype of NUMERIC) {
    it(`reduce over every subset of axes (${dtype})`, () => {
      const r = rng(9);
      const shapes = [[3, 4, 5], [1, 6, 1], [2, 1, 7], [0, 3, 2], [4, 0, 1], [40, 50, 36]];
      for (const shape of shapes) {
        for (const withNaN of [false, true]) {
          const data = randomData(prod(shape), r, false, 0.5, 1.5);
          if (withNaN && data.length > 10) data[7] = NaN;
          const [x1, x2] = pair(dtype, data);
          for (const axes of subsets(shape.length)) {
            const kept = shape.filter((_, d) => !axes.includes(d));
            for (const op of REDUCE_KERNELS) {
              const [o1, o2] = outs(dtype, prod(kept));
              ref.reduce(op, x1, shape, axes, o1); nat.reduce(op, x2, shape, axes, o2);
              compare(o1, o2, ACC_TOL[dtype], `${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} nan=${withNaN}`);
            }
          }
        }
      }
    });

    it(`argmax and argmin along every axis, with ties and NaN (${dtype})`, () => {
      const r = rng(10);
      for (const shape of [[3, 4, 5], [1, 7, 1], [300, 5, 3], [2, 600]]) {
        const data = randomData(prod(shape), r).map((v) => Math.round(v * 2) / 2); // ties
        for (let i = 5; i < data.length; i += 37) data[i] = NaN;
        const [x1, x2] = pair(dtype, data);
        for (let axis = 0; axis < shape.length; axis++) {
          const kept = shape.filter((_, d) => d !== axis);
          for (const op of ['argmax', 'argmin'] as const) {
            const [o1, o2] = outs(dtype, prod(kept));
            ref.argReduce(op, x1, shape, axis, o1); nat.argReduce(op, x2, shape, axis, o2);
            compare(o1, o2, 0, `${op} ${JSON.stringify(shape)} axis ${axis}`);
          }
        }
      }
    });
  }
});

// ---- gemm ----------------------------------------------------------------------------------

function checkGemm(backendTol: number, dtype: DType, batch: number, m: number, n: number, k: number,
  ta: boolean, tb: boolean, sharedA: boolean, sharedB: boolean, r: () => number): void {
  const sa = sharedA ? 0 : m * k + 3;
  const sb = sharedB ? 0 : k * n + 1;
  const [a1, a2] = pair(dtype, randomData(Math.max(0, batch - 1) * sa + m * k, r, false, -1, 1));
  const [b1, b2] = pair(dtype, randomData(Math.max(0, batch - 1) * sb + k * n, r, false, -1, 1));
  const [o1, o2] = outs(dtype, batch * m * n);
  nat.fill(o2, 12345); // every element must be overwritten
  ref.gemm(a1, b1, o1, batch, m, n, k, ta, tb, sa, sb);
  nat.gemm(a2, b2, o2, batch, m, n, k, ta, tb, sa, sb);
  compare(o1, o2, backendTol, `gemm ${dtype} b${batch} ${m}x${n}x${k} ta=${ta} tb=${tb} sa=${sa} sb=${sb}`);
}

describe('gemm', () => {
  const levels = ['sse2', 'avx2', 'avx512f'];
  afterAll(() => { addon.setSimdCap('avx512f'); });
  for (const dtype of FLOATS) {
    // Generous timeouts: the sanitizer build (.ci/run) runs these several times slower.
    it(`all transposes, batch strides and sizes (${dtype})`, { timeout: 120_000 }, () => {
      const r = rng(11);
      // Narrow products too (n of one or two vectors, read in place): rows past a run of 16, two
      // vectors wide, exactly two vectors, and depth past the 16384 of B packed at once. With few
      // rows and B untransposed, B's whole slivers are read in place and a partial one packed
      // (a batched convolution's 6 filters by 25 x 576 windows).
      const sizes = [[1, 1, 1], [2, 3, 4], [7, 5, 9], [37, 53, 300], [13, 70, 29], [64, 64, 64], [0, 4, 3], [3, 0, 2], [4, 5, 0],
        [37, 10, 300], [100, 17, 50], [20, 32, 40], [5, 3, 17000], [6, 576, 25], [16, 100, 150], [200, 40, 300]];
      for (const level of levels) {
        if (levels.indexOf(addon.setSimdCap(level)) < levels.indexOf(level)) continue; // not on this CPU
        for (const [m, n, k] of sizes) {
          for (const ta of [false, true]) {
            for (const tb of [false, true]) {
              // Rounding grows with the depth: sums of 256 terms (both paths' blocks), added in order;
              // float32's spread over a few thousand elements reaches 3 of ACC_TOL's 1e-5 at k = 300.
              const tol = 3 * ACC_TOL[dtype] * Math.sqrt(Math.max(1, k / 256));
              checkGemm(tol, dtype, 1, m, n, k, ta, tb, false, false, r);
              checkGemm(tol, dtype, 3, m, n, k, ta, tb, true, false, r);
              checkGemm(tol, dtype, 2, m, n, k, ta, tb, false, true, r);
            }
          }
        }
      }
    });

    it(`large products split over threads (${dtype})`, () => {
      const r = rng(12);
      checkGemm(ACC_TOL[dtype], dtype, 1, 260, 300, 270, false, false, false, false, r);
      checkGemm(ACC_TOL[dtype], dtype, 1, 20, 700, 200, true, true, false, false, r);
      checkGemm(ACC_TOL[dtype], dtype, 5, 60, 70, 80, false, true, false, true, r);
    });
  }

  it('small products along a long depth (a convolution\'s weight gradient) on every SIMD level, the same bits on 1 and 2 threads', { timeout: 120_000 }, () => {
    const r = rng(15);
    const threads0 = addon.getThreads();
    try {
      // A m x k and B n x k, both along the depth: each value of C a dot product. Tiles cut
      // short on both sides, depths past a vector and past a chunk of 4096.
      for (const level of levels) {
        if (levels.indexOf(addon.setSimdCap(level)) < levels.indexOf(level)) continue; // not on this CPU
        for (const dtype of FLOATS) {
          for (const [m, n, k] of [[25, 6, 20007], [7, 13, 9001], [1, 1, 4099], [64, 64, 2049], [3, 6, 147456]]) {
            const tol = ACC_TOL[dtype] * Math.sqrt(k / 256);
            const [a1, a2] = pair(dtype, randomData(m * k, r, false, -1, 1));
            const [b1, b2] = pair(dtype, randomData(n * k, r, false, -1, 1));
            const [o1, o2] = outs(dtype, m * n);
            ref.gemm(a1, b1, o1, 1, m, n, k, false, true, 0, 0);
            const bits: string[] = [];
            for (const t of [1, 2]) {
              addon.setThreads(t);
              nat.fill(o2, 12345);
              nat.gemm(a2, b2, o2, 1, m, n, k, false, true, 0, 0);
              compare(o1, o2, tol, `${level} ${dtype} ${m}x${n}x${k} on ${t} threads`);
              bits.push(Buffer.from(nat.readBytes(o2)).toString('hex'));
            }
            expect(bits[1], `${level} ${dtype} ${m}x${n}x${k}: 2 threads vs 1`).toBe(bits[0]);
          }
        }
      }
    } finally {
      addon.setThreads(threads0);
    }
  });

  it('an output aliasing an operand is still correct', () => {
    const r = rng(13);
    const data = randomData(64 * 64, r, false, -1, 1);
    const [a1, a2] = pair('float64', data);
    const [o1] = outs('float64', 64 * 64);
    ref.gemm(a1, a1, o1, 1, 64, 64, 64, false, false, 0, 0);
    nat.gemm(a2, a2, a2, 1, 64, 64, 64, false, false, 0, 0);
    compare(o1, a2, 1e-12, 'aliased gemm');
  });
});

describe('cast', () => {
  it('converts both directions like the reference', () => {
    const data = randomData(500, rng(14), true).map((v) => v * 1e30);
    for (const [from, to] of DTYPES.flatMap((f) => DTYPES.map((t) => [f, t] as const))) {
      const [x1, x2] = pair(from, data);
      const [o1, o2] = outs(to, data.length);
      ref.cast(x1, o1); nat.cast(x2, o2);
      compare(o1, o2, 0, `cast ${from}->${to}`);
    }
  });
});

// ---- robustness ----------------------------------------------------------------------------

describe('robustness', () => {
  const view = (shape: number[], strides: number[], offset: number): View => ({ shape, strides, offset });

  it('rejects inconsistent lengths', () => {
    const x = nat.alloc('float64', 6);
    const y = nat.alloc('float64', 5);
    const f = nat.alloc('float32', 6);
    expect(() => nat.unary('exp', x, y)).toThrow(Error);
    expect(() => nat.unary('exp', x, f)).toThrow(/dtype/);
    expect(() => nat.cast(x, y)).toThrow(Error);
    expect(() => nat.writeBytes(x, new Uint8Array(47))).toThrow(/byte length/);
    expect(() => nat.writeNumbers(x, [1, 2, 3])).toThrow(/length/);
    expect(() => nat.eye(x, 2, 4, 0)).toThrow(Error);
    expect(() => nat.binaryScalar('add', x, 1, false, y)).toThrow(Error);
    expect(() => nat.binary('add', x, view([2, 3], [3, 1], 0), x, view([2, 3], [3, 1], 0), y)).toThrow(/length/);
    expect(() => nat.binary('add', x, view([2, 3], [3, 1], 0), x, view([3, 2], [2, 1], 0), x)).toThrow(/shape/);
    expect(() => nat.reduce('sum', x, [2, 2], [0], y)).toThrow(Error);
    expect(() => nat.reduce('sum', x, [2, 3], [0], y)).toThrow(Error);
    expect(() => nat.reduce('sum', x, [2, 3], [1, 0], nat.alloc('float64', 1))).toThrow(/sorted/);
    expect(() => nat.reduce('sum', x, [2, 3], [2], y)).toThrow(/axis/);
    expect(() => nat.argReduce('argmax', x, [2, 3], 2, y)).toThrow(/axis/);
    expect(() => nat.argReduce('argmax', x, [2, 3], -1, y)).toThrow(/axis/);
    expect(() => nat.argReduce('argmax', x, [6, 0], 1, nat.alloc('float64', 6))).toThrow(Error);
    expect(() => nat.gemm(x, x, y, 1, 2, 3, 3, false, false, 0, 0)).toThrow(/length/);
    expect(() => nat.gemm(x, x, x, 1, 2, 3, 4, false, false, 0, 0)).toThrow(/bounds/);
    expect(() => nat.gemm(x, x, nat.alloc('float64', 8), 2, 2, 2, 3, false, false, 6, 0)).toThrow(/bounds/);
    expect(() => nat.gemm(x, x, y, 1, 2, 3, 3, false, false, -1, 0)).toThrow(Error);
    for (const s of [x, y, f]) nat.free(s);
  });

  it('rejects out-of-bounds views and negative offsets', () => {
    const x = nat.alloc('float64', 6);
    const o = nat.alloc('float64', 6);
    const ok = view([2, 3], [3, 1], 0);
    for (const bad of [
      view([2, 3], [3, 1], 1), view([2, 3], [3, 1], -1), view([2, 3], [-3, 1], 0), view([2, 3], [3, 2], 0),
      view([6], [1], 2 ** 60), view([2, 3], [2 ** 52, 1], 0), view([2, 3], [3, 1], 0.5),
      view([2, 3], [3], 0), view([-2, -3], [3, 1], 0),
    ]) {
      expect(() => nat.copyStrided(x, bad, o), JSON.stringify(bad)).toThrow(Error);
      expect(() => nat.scatterAddStrided(o, x, bad), JSON.stringify(bad)).toThrow(Error);
      expect(() => nat.binary('add', x, bad, x, ok, o), JSON.stringify(bad)).toThrow(Error);
      expect(() => nat.binary('add', x, ok, x, bad, o), JSON.stringify(bad)).toThrow(Error);
      expect(() => nat.where(x, bad, x, ok, x, ok, o), JSON.stringify(bad)).toThrow(Error);
    }
    expect(() => nat.copyStrided(x, { shape: [2], strides: [1] } as unknown as View, o)).toThrow(Error);
    expect(() => nat.copyStrided(x, null as unknown as View, o)).toThrow(Error);
    const deep = { shape: new Array(40).fill(1), strides: new Array(40).fill(0), offset: 0 };
    expect(() => nat.copyStrided(x, deep, nat.alloc('float64', 1))).toThrow(Error);
    nat.free(x); nat.free(o);
  });

  it('rejects freed and foreign storages on every method', () => {
    const dead = nat.alloc('float64', 4);
    const good = nat.alloc('float64', 4);
    nat.free(dead);
    const v = view([4], [1], 0);
    const foreign = [dead, ref.alloc('float64', 4), { dtype: 'float64', length: 4, alive: true } as Storage, null as unknown as Storage];
    for (const s of foreign) {
      const calls: Array<() => unknown> = [
        () => nat.writeBytes(s, new Uint8Array(32)), () => nat.readBytes(s), () => nat.writeNumbers(s, [1, 2, 3, 4]),
        () => nat.readNumbers(s), () => nat.fill(s, 1), () => nat.arange(s, 0, 1), () => nat.eye(s, 2, 2, 0),
        () => nat.randomUniform(s, 1, 0, 0, 1), () => nat.randomNormal(s, 1, 0, 0, 1), () => nat.unary('neg', s, good),
        () => nat.unary('neg', good, s), () => nat.binary('add', s, v, good, v, good), () => nat.binary('add', good, v, good, v, s),
        () => nat.binaryScalar('add', s, 1, false, good), () => nat.where(s, v, good, v, good, v, good),
        () => nat.copyStrided(s, v, good), () => nat.scatterAddStrided(good, s, v), () => nat.reduce('sum', s, [4], [0], good),
        () => nat.argReduce('argmax', s, [4], 0, good), () => nat.gemm(s, good, good, 1, 2, 2, 2, false, false, 0, 0),
        () => nat.cast(s, good),
      ];
      for (const call of calls) expect(call).toThrow(Error);
    }
    nat.free(good);
  });

  it('rejects bad names, numbers and sizes', () => {
    const x = nat.alloc('float64', 4);
    expect(() => nat.unary('nope' as never, x, x)).toThrow(/unknown/);
    expect(() => nat.binary('nope' as never, x, view([4], [1], 0), x, view([4], [1], 0), x)).toThrow(/unknown/);
    expect(() => nat.reduce('nope' as never, x, [4], [0], nat.alloc('float64', 1))).toThrow(/unknown/);
    expect(() => nat.argReduce('nope' as never, x, [4], 0, nat.alloc('float64', 1))).toThrow(/unknown/);
    expect(() => nat.alloc('int8' as DType, 4)).toThrow(Error);
    expect(() => nat.alloc('float64', -1)).toThrow(Error);
    expect(() => nat.alloc('float64', 1.5)).toThrow(Error);
    expect(() => nat.alloc('float64', NaN)).toThrow(Error);
    expect(() => nat.alloc('float64', 2 ** 60)).toThrow(Error);
    expect(() => nat.alloc('float64', 2 ** 49)).toThrow(/memory/);
    expect(() => nat.fill(x, 'a' as unknown as number)).toThrow(Error);
    expect(() => nat.gemm(x, x, x, 1, 2, 2, 1.5, false, false, 0, 0)).toThrow(Error);
    expect(() => nat.gemm(x, x, x, 1, 2, 2, 1, 0 as unknown as boolean, false, 0, 0)).toThrow(Error);
    expect(() => nat.writeNumbers(x, [1, 2, 'x', 4] as unknown as number[])).toThrow(Error);
    expect(() => nat.writeNumbers(x, 'abcd' as unknown as number[])).toThrow(Error);
    nat.free(x);
  });

  it('survives a getter that frees a storage mid-call', () => {
    const x = nat.alloc('float64', 4);
    const o = nat.alloc('float64', 4);
    const sneaky = { shape: [4], strides: [1], get offset() { nat.free(x); return 0; } };
    expect(() => nat.copyStrided(x, sneaky, o)).toThrow(/freed/);
    nat.free(o);
  });

  it('returns every byte it allocated', () => {
    const before = addon.nativeBytesLive();
    const made: Storage[] = [];
    for (let i = 0; i < 50; i++) made.push(nat.alloc(i % 2 ? 'float32' : 'float64', i * 10));
    for (const s of made) nat.free(s);
    expect(addon.nativeBytesLive()).toBe(before);
  });
});

// Keep the Backend type honest: the native object implements the full interface.
const _check: Backend = nat;
void _check;
