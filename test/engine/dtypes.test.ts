/**
 * Integer and float16 elements, with known values, on both backends: the conversion rule
 * (truncate, NaN to 0, wrap), integer arithmetic (wrapping, truncating division, x / 0 = 0,
 * INT_MIN / -1), float16 rounding (ties to even, subnormals, overflow), int64 bytes beyond 2^53
 * (native only: the reference holds int64 in doubles), and the kernels that refuse a dtype.
 */
import { describe, it, expect } from 'vitest';
import type { Backend, DType } from '../../src/engine/backend.js';
import { referenceBackend } from '../../src/engine/reference.js';
import { nativeBackend } from '../../src/engine/native.js';
import { halfBits, halfValue, toDType } from '../../src/engine/convert.js';

const BACKENDS: [string, Backend][] = [['reference', referenceBackend], ['native', nativeBackend]];

function make(be: Backend, dtype: DType, data: number[]) {
  const s = be.alloc(dtype, data.length);
  be.writeNumbers(s, data);
  return s;
}
const read = (be: Backend, s: ReturnType<Backend['alloc']>) => [...be.readNumbers(s)];
const flat = (n: number) => ({ shape: [n], strides: [1], offset: 0 });

describe.each(BACKENDS)('%s backend', (_name, be) => {
  it('converts numbers to integers by truncation, NaN and infinities to 0, wrapping out of range', () => {
    const data = [2.7, -2.7, NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31) - 1, 300, -1, 1e20];
    expect(read(be, make(be, 'int32', data))).toEqual([2, -2, 0, 0, 0, -(2 ** 31), 2 ** 31 - 1, 300, -1, 1661992960]);
    expect(read(be, make(be, 'uint8', data))).toEqual([2, 254, 0, 0, 0, 0, 255, 44, 255, 0]);
    expect(read(be, make(be, 'int64', data))).toEqual([2, -2, 0, 0, 0, 2 ** 31, -(2 ** 31) - 1, 300, -1, 1e20 - 2 ** 64 * 5]);
  });

  it('integer arithmetic wraps and division truncates, with x / 0 = 0 and INT_MIN / -1 = INT_MIN', () => {
    const a = make(be, 'int32', [7, -7, 5, -(2 ** 31), 2 ** 31 - 1, 65536]);
    const b = make(be, 'int32', [2, 2, 0, -1, 1, 65536]);
    const out = be.alloc('int32', 6);
    be.binary('div', a, flat(6), b, flat(6), out);
    expect(read(be, out)).toEqual([3, -3, 0, -(2 ** 31), 2 ** 31 - 1, 1]);
    be.binary('add', a, flat(6), b, flat(6), out);
    expect(read(be, out)).toEqual([9, -5, 5, 2 ** 31 - 1, -(2 ** 31), 131072]);
    be.binary('mul', a, flat(6), b, flat(6), out);
    expect(read(be, out)).toEqual([14, -14, 0, -(2 ** 31), 2 ** 31 - 1, 0]);
    be.unary('neg', a, out);
    expect(read(be, out)).toEqual([-7, 7, -5, -(2 ** 31), -(2 ** 31) + 1, -65536]);
    const u = make(be, 'uint8', [200, 3, 0]);
    const uo = be.alloc('uint8', 3);
    be.binaryScalar('add', u, 100, false, uo);
    expect(read(be, uo)).toEqual([44, 103, 100]);
    be.binaryScalar('sub', u, 1, false, uo);
    expect(read(be, uo)).toEqual([199, 2, 255]);
  });

  it('integer scalars are truncated to the dtype first, as MXNet does DType(scalar)', () => {
    const a = make(be, 'int32', [7, 8, 9]);
    const out = be.alloc('int32', 3);
    be.binaryScalar('div', a, 2.9, false, out);
    expect(read(be, out)).toEqual([3, 4, 4]);
    be.binaryScalar('eq', a, 8.5, false, out);
    expect(read(be, out)).toEqual([0, 1, 0]);
  });

  it('comparisons and reductions keep the integer dtype', () => {
    const a = make(be, 'int64', [3, 1, 4, 1, 5, 9]);
    const out = be.alloc('int64', 2);
    be.reduce('sum', a, [2, 3], [1], out);
    expect(read(be, out)).toEqual([8, 15]);
    be.reduce('max', a, [2, 3], [1], out);
    expect(read(be, out)).toEqual([4, 9]);
    be.argReduce('argmax', a, [2, 3], 1, out);
    expect(read(be, out)).toEqual([2, 2]);
  });

  it('float16 rounds to nearest, ties to even, through subnormals and to infinity', () => {
    const data = [1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, -0.1, NaN];
    const want = [1, 1, 1 + 2 ** -9, 65504, 65504, Infinity, 2 ** -24, 0, 2 ** -23, -0.0999755859375, NaN];
    const h = make(be, 'float16', data);
    expect(read(be, h)).toEqual(want);
    expect([...be.readBytes(h).slice(0, 4)]).toEqual([0x00, 0x3c, 0x00, 0x3c]);
    const f = be.alloc('float32', data.length);
    be.cast(h, f);
    expect(read(be, f)).toEqual(want);
  });

  it('casts between integers wrap; floats to integers truncate', () => {
    const x = make(be, 'int64', [2 ** 32 + 5, -1, 256 + 7]);
    const i32 = be.alloc('int32', 3);
    const u8 = be.alloc('uint8', 3);
    be.cast(x, i32);
    be.cast(x, u8);
    expect(read(be, i32)).toEqual([5, -1, 263]);
    expect(read(be, u8)).toEqual([5, 255, 7]);
    const f = make(be, 'float32', [-3.9, 3.9, 255.5]);
    be.cast(f, u8);
    expect(read(be, u8)).toEqual([253, 3, 255]);
  });

  it('refuses float16 in kernels that compute, and integers in GEMM and random', () => {
    const h = make(be, 'float16', [1, 2]);
    expect(() => be.unary('exp', h, be.alloc('float16', 2))).toThrow(/float16/);
    const i = make(be, 'int32', [1, 2, 3, 4]);
    expect(() => be.gemm(i, i, be.alloc('int32', 4), 1, 2, 2, 2, false, false, 0, 0)).toThrow(/int32/);
    expect(() => be.randomUniform(be.alloc('int32', 4), 1, 0, 0, 1)).toThrow(/int32/);
  });

  it('reads int64 bytes from a view at any offset of a larger buffer', () => {
    const whole = new Uint8Array(3 + 16);
    whole.set(new Uint8Array(BigInt64Array.from([-5n, 2n ** 40n]).buffer), 3);
    const s = be.alloc('int64', 2);
    be.writeBytes(s, whole.subarray(3));
    expect(read(be, s)).toEqual([-5, 2 ** 40]);
    expect([...new BigInt64Array(be.readBytes(s).slice().buffer)]).toEqual([-5n, 2n ** 40n]);
  });

  it('copies float16 elements through strided views as they are', () => {
    const h = make(be, 'float16', [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
    const t = be.alloc('float16', 6);
    be.copyStrided(h, { shape: [3, 2], strides: [1, 3], offset: 0 }, t);
    expect(read(be, t)).toEqual([0.5, 3.5, 1.5, 4.5, 2.5, 5.5]);
  });
});

describe('int64 beyond 2^53 (native)', () => {
  it('keeps every bit through bytes, integer casts and arithmetic', () => {
    const be = nativeBackend;
    const big = [2n ** 62n + 1n, -(2n ** 63n), 2n ** 63n - 1n];
    const s = be.alloc('int64', 3);
    be.writeBytes(s, new Uint8Array(BigInt64Array.from(big).buffer));
    const back = new BigInt64Array(be.readBytes(s).slice().buffer);
    expect([...back]).toEqual(big);
    const out = be.alloc('int64', 3);
    be.binaryScalar('add', s, 1, false, out);
    expect([...new BigInt64Array(be.readBytes(out).slice().buffer)]).toEqual([2n ** 62n + 2n, -(2n ** 63n) + 1n, -(2n ** 63n)]);
  });
});

describe('conversion helpers', () => {
  it('float16 bits round-trip every finite half', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) continue; // NaNs
      expect(halfBits(halfValue(h))).toBe(h);
    }
    expect(toDType.float16(0.1)).toBe(0.0999755859375);
  });
});

describe('native agrees with the reference over whole integer ranges', () => {
  const ref = referenceBackend;
  const nat = nativeBackend;
  /** Integers spread over [lo, hi], with the ends and zero among them. */
  function ints(n: number, lo: number, hi: number, seed: number): number[] {
    let x = seed;
    const out = [lo, hi, 0, -1, 1].filter((v) => v >= lo && v <= hi);
    while (out.length < n) {
      x = (x * 1103515245 + 12345) % 2147483648;
      out.push(Math.floor(lo + (hi - lo + 1) * (x / 2147483648)));
    }
    return out;
  }
  // int64 stays within +-2^26 so that products, sums and quotients are exact in the reference's doubles.
  const RANGES: [DType, number, number][] = [['int32', -(2 ** 31), 2 ** 31 - 1], ['uint8', 0, 255], ['int64', -(2 ** 26), 2 ** 26]];
  const OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
  it.each(RANGES)('%s: binary, scalar and unary kernels, reductions and casts', (dtype, lo, hi) => {
    const n = 400;
    const a = ints(n, lo, hi, 1);
    const b = ints(n, lo, hi, 2);
    const both = <T>(f: (be: Backend) => T) => [f(ref), f(nat)] as const;
    for (const op of OPS) {
      const [r, g] = both((be) => {
        const out = be.alloc(dtype, n);
        be.binary(op, make(be, dtype, a), flat(n), make(be, dtype, b), flat(n), out);
        return read(be, out);
      });
      expect(g, op).toEqual(r);
      const [rs, gs] = both((be) => {
        const out = be.alloc(dtype, n);
        be.binaryScalar(op, make(be, dtype, a), -7.5, true, out);
        return read(be, out);
      });
      expect(gs, `${op} scalar`).toEqual(rs);
    }
    for (const op of ['neg', 'abs', 'sign', 'square', 'relu', 'floor'] as const) {
      const [r, g] = both((be) => {
        const out = be.alloc(dtype, n);
        be.unary(op, make(be, dtype, a), out);
        return read(be, out);
      });
      expect(g, op).toEqual(r);
    }
    for (const op of ['sum', 'max', 'min'] as const) {
      const [r, g] = both((be) => {
        const out = be.alloc(dtype, 20);
        be.reduce(op, make(be, dtype, a), [20, 20], [1], out);
        return read(be, out);
      });
      expect(g, op).toEqual(r);
    }
    for (const to of ['int32', 'int64', 'uint8', 'float32', 'float64', 'float16'] as const) {
      const [r, g] = both((be) => {
        const out = be.alloc(to, n);
        be.cast(make(be, dtype, a), out);
        return read(be, out);
      });
      expect(g, `cast to ${to}`).toEqual(r);
    }
  });
});
