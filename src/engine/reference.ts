/**
 * The reference backend: every kernel of backend.ts in plain TypeScript, written for clarity, not
 * speed. It is the specification the native engine is tested against (test/engine), and it runs the
 * server when GRADSERVE_BACKEND=reference.
 */
import type {
  Backend, BinaryKernel, DType, ReduceKernel, Storage, UnaryKernel, View,
} from './backend.js';
import { contiguousStrides } from './layout.js';

type Data = Float32Array | Float64Array;

class RefStorage implements Storage {
  alive = true;
  constructor(readonly dtype: DType, public data: Data) {}
  get length(): number { return this.data.length; }
}

function live(s: Storage): Data {
  const r = s as RefStorage;
  if (!(r instanceof RefStorage) || !r.alive) throw new Error('reference backend: buffer is freed or foreign');
  return r.data;
}

function fmix(x: number): number {
  x ^= x >>> 16; x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15; x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Word j (uint32) of the stream of `seed` (uint32). The native engine implements the same function. */
export function randomWord(seed: number, j: number): number {
  return fmix((fmix((j + Math.imul(seed, 0x9e3779b9)) >>> 0) ^ seed) >>> 0);
}

/** A double in [0, 1) from words 2q and 2q+1 of the stream, with 53 random bits. */
export function randomUnit(seed: number, q: number): number {
  const hi = randomWord(seed, (2 * q) >>> 0) >>> 5;
  const lo = randomWord(seed, (2 * q + 1) >>> 0) >>> 6;
  return (hi * 67108864 + lo) / 9007199254740992;
}

const UNARY: Record<UnaryKernel, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN),
  square: (x) => x * x,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  exp: Math.exp,
  expm1: Math.expm1,
  log: Math.log,
  log1p: Math.log1p,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  arcsin: Math.asin,
  arccos: Math.acos,
  arctan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  arcsinh: Math.asinh,
  arccosh: Math.acosh,
  arctanh: Math.atanh,
  relu: (x) => (x > 0 ? x : x === x ? 0 : NaN),
  // Split by sign so neither branch overflows: exp(-|x|) is at most 1.
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  softrelu: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))),
  floor: Math.floor,
  ceil: Math.ceil,
  // MXNet and C's round(): halves away from zero (Math.round rounds -2.5 to -2).
  round: (x) => Math.sign(x) * Math.round(Math.abs(x)),
};

const BINARY: Record<BinaryKernel, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

/** Calls visit(outIndex, offsets...) for every element of `shape`, in row-major order. */
function forEachStrided(shape: readonly number[], views: readonly View[], visit: (i: number, offs: number[]) => void): void {
  const n = shape.reduce((p, d) => p * d, 1);
  if (n === 0) return;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = views.map((v) => v.offset);
  for (let i = 0; i < n; i++) {
    visit(i, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let v = 0; v < views.length; v++) offs[v] += views[v].strides[d];
      if (idx[d] < shape[d]) break;
      for (let v = 0; v < views.length; v++) offs[v] -= views[v].strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

function checkView(len: number, v: View, what: string): void {
  let lo = v.offset;
  let hi = v.offset;
  for (let d = 0; d < v.shape.length; d++) {
    if (v.shape[d] === 0) return;
    const span = (v.shape[d] - 1) * v.strides[d];
    if (span > 0) hi += span; else lo += span;
  }
  if (lo < 0 || hi >= len) throw new Error(`reference backend: view of ${what} is out of bounds`);
}

const REDUCE_INIT: Record<ReduceKernel, number> = { sum: 0, prod: 1, max: -Infinity, min: Infinity };
const REDUCE_STEP: Record<ReduceKernel, (acc: number, x: number) => number> = {
  sum: (a, x) => a + x,
  prod: (a, x) => a * x,
  max: (a, x) => (a !== a || x !== x ? NaN : x > a ? x : a),
  min: (a, x) => (a !== a || x !== x ? NaN : x < a ? x : a),
};

const ARRAYS: Record<DType, new (n: number) => Data> = { float32: Float32Array, float64: Float64Array };

function make(dtype: DType, n: number): Data {
  return new ARRAYS[dtype](n);
}

export const referenceBackend: Backend = {
  name: 'reference',

  alloc(dtype, length) {
    if (!Number.isInteger(length) || length < 0) throw new Error('reference backend: bad length');
    return new RefStorage(dtype, make(dtype, length));
  },
  free(s) {
    const r = s as RefStorage;
    r.alive = false;
    r.data = make(r.dtype, 0);
  },
  writeBytes(s, bytes) {
    const d = live(s);
    if (bytes.byteLength !== d.byteLength) throw new Error('reference backend: byte length mismatch');
    new Uint8Array(d.buffer, d.byteOffset, d.byteLength).set(bytes);
  },
  readBytes(s, offset, length) {
    const d = live(s);
    if (offset === undefined) return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length! < 0 || offset + length! > d.byteLength) {
      throw new RangeError('reference backend: readBytes range outside the buffer');
    }
    return new Uint8Array(d.buffer.slice(d.byteOffset + offset, d.byteOffset + offset + length!));
  },
  writeNumbers(s, data) {
    const d = live(s);
    if (data.length !== d.length) throw new Error('reference backend: length mismatch');
    for (let i = 0; i < d.length; i++) d[i] = data[i];
  },
  readNumbers(s) {
    return Float64Array.from(live(s));
  },

  fill(out, value) { live(out).fill(value); },
  arange(out, start, step) {
    const d = live(out);
    for (let i = 0; i < d.length; i++) d[i] = start + i * step;
  },
  eye(out, rows, cols, k) {
    const d = live(out);
    if (rows * cols !== d.length) throw new Error('reference backend: eye shape mismatch');
    d.fill(0);
    for (let i = 0; i < rows; i++) {
      const j = i + k;
      if (j >= 0 && j < cols) d[i * cols + j] = 1;
    }
  },
  randomUniform(out, seed, counter, low, high) {
    const d = live(out);
    for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * randomUnit(seed >>> 0, (counter + i) * 2);
  },
  randomNormal(out, seed, counter, loc, scale) {
    const d = live(out);
    for (let i = 0; i < d.length; i++) {
      const u1 = randomUnit(seed >>> 0, (counter + i) * 2);
      const u2 = randomUnit(seed >>> 0, (counter + i) * 2 + 1);
      d[i] = loc + scale * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }
  },

  unary(op, x, out) {
    const xd = live(x);
    const od = live(out);
    if (xd.length !== od.length) throw new Error('reference backend: unary length mismatch');
    const f = UNARY[op];
    if (!f) throw new Error(`reference backend: unknown unary kernel ${op}`);
    for (let i = 0; i < xd.length; i++) od[i] = f(xd[i]);
  },
  binary(op, a, av, b, bv, out) {
    const ad = live(a);
    const bd = live(b);
    const od = live(out);
    const f = BINARY[op];
    if (!f) throw new Error(`reference backend: unknown binary kernel ${op}`);
    checkView(ad.length, av, 'a');
    checkView(bd.length, bv, 'b');
    if (av.shape.reduce((p, q) => p * q, 1) !== od.length) throw new Error('reference backend: binary out length mismatch');
    forEachStrided(av.shape, [av, bv], (i, [oa, ob]) => { od[i] = f(ad[oa], bd[ob]); });
  },
  binaryScalar(op, x, scalar, scalarFirst, out) {
    const xd = live(x);
    const od = live(out);
    if (xd.length !== od.length) throw new Error('reference backend: binary length mismatch');
    const f = BINARY[op];
    if (!f) throw new Error(`reference backend: unknown binary kernel ${op}`);
    // Round the scalar to the buffer's dtype first, as the native engine does.
    const s = xd instanceof Float32Array ? Math.fround(scalar) : scalar;
    for (let i = 0; i < xd.length; i++) od[i] = scalarFirst ? f(s, xd[i]) : f(xd[i], s);
  },
  where(cond, cv, a, av, b, bv, out) {
    const cd = live(cond);
    const ad = live(a);
    const bd = live(b);
    const od = live(out);
    checkView(cd.length, cv, 'cond');
    checkView(ad.length, av, 'a');
    checkView(bd.length, bv, 'b');
    forEachStrided(cv.shape, [cv, av, bv], (i, [oc, oa, ob]) => { od[i] = cd[oc] !== 0 ? ad[oa] : bd[ob]; });
  },

  copyStrided(x, xv, out) {
    const xd = live(x);
    const od = live(out);
    checkView(xd.length, xv, 'x');
    if (xv.shape.reduce((p, q) => p * q, 1) !== od.length) throw new Error('reference backend: copy out length mismatch');
    forEachStrided(xv.shape, [xv], (i, [o]) => { od[i] = xd[o]; });
  },
  scatterAddStrided(x, out, ov) {
    const xd = live(x);
    const od = live(out);
    checkView(od.length, ov, 'out');
    if (ov.shape.reduce((p, q) => p * q, 1) !== xd.length) throw new Error('reference backend: scatter length mismatch');
    forEachStrided(ov.shape, [ov], (i, [o]) => { od[o] += xd[i]; });
  },

  reduce(op, x, shape, axes, out) {
    const xd = live(x);
    const od = live(out);
    if (shape.reduce((p, q) => p * q, 1) !== xd.length) throw new Error('reference backend: reduce shape mismatch');
    const keep = shape.map((_, d) => !axes.includes(d));
    const outShape = shape.filter((_, d) => keep[d]);
    if (outShape.reduce((p, q) => p * q, 1) !== od.length) throw new Error('reference backend: reduce out length mismatch');
    // Strides of out seen from x's index space: 0 along reduced axes.
    const ostr = new Array<number>(shape.length).fill(0);
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) if (keep[d]) { ostr[d] = s; s *= shape[d]; }
    const acc = new Float64Array(od.length).fill(REDUCE_INIT[op]);
    const step = REDUCE_STEP[op];
    const xstr = contiguousStrides(shape);
    forEachStrided(shape, [{ shape, strides: xstr, offset: 0 }, { shape, strides: ostr, offset: 0 }], (_i, [ox, oo]) => {
      acc[oo] = step(acc[oo], xd[ox]);
    });
    od.set(acc);
  },
  argReduce(op, x, shape, axis, out) {
    const xd = live(x);
    const od = live(out);
    const outer = shape.slice(0, axis).reduce((p, q) => p * q, 1);
    const n = shape[axis];
    const inner = shape.slice(axis + 1).reduce((p, q) => p * q, 1);
    if (outer * n * inner !== xd.length || outer * inner !== od.length) throw new Error('reference backend: argReduce shape mismatch');
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0;
        let bv = xd[o * n * inner + i];
        for (let j = 1; j < n; j++) {
          const v = xd[(o * n + j) * inner + i];
          if (bv !== bv) break; // NaN wins, as in NumPy
          if (v !== v || (op === 'argmax' ? v > bv : v < bv)) { best = j; bv = v; }
        }
        od[o * inner + i] = best;
      }
    }
  },

  gemm(a, b, out, batch, m, n, k, transA, transB, strideA, strideB) {
    const ad = live(a);
    const bd = live(b);
    const od = live(out);
    if (od.length !== batch * m * n) throw new Error('reference backend: gemm out length mismatch');
    if (batch > 0 && ((batch - 1) * strideA + m * k > ad.length || (batch - 1) * strideB + k * n > bd.length)) {
      throw new Error('reference backend: gemm operand out of bounds');
    }
    for (let p = 0; p < batch; p++) {
      const ao = p * strideA;
      const bo = p * strideB;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let q = 0; q < k; q++) {
            const av = transA ? ad[ao + q * m + i] : ad[ao + i * k + q];
            const bv = transB ? bd[bo + j * k + q] : bd[bo + q * n + j];
            acc += av * bv;
          }
          od[p * m * n + i * n + j] = acc;
        }
      }
    }
  },

  flush: () => Promise.resolve(),

  cast(x, out) {
    const xd = live(x);
    const od = live(out);
    if (xd.length !== od.length) throw new Error('reference backend: cast length mismatch');
    for (let i = 0; i < xd.length; i++) od[i] = xd[i];
  },
};
