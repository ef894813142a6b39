/**
 * The reference backend: every kernel of backend.ts in plain TypeScript, written for clarity, not
 * speed. It is the specification the native engine is tested against (test/engine), and it runs the
 * server when GRADSERVE_BACKEND=reference.
 *
 * Integer buffers are Int32Array and Uint8Array (whose assignment is the conversion rule of
 * convert.ts) and, for int64, a Float64Array of integral values kept converted by `settle`: int64
 * here is exact up to 2^53 only, where the native engine holds all 64 bits. float16 buffers are
 * Uint16Array of bits: only the kernels that move or convert elements accept them.
 */
import type {
  Backend, BinaryKernel, DType, ReduceKernel, Storage, UnaryKernel, View,
} from './backend.js';
import { contiguousStrides } from './layout.js';
import { DTYPE_INFO } from './backend.js';
import { halfBits, halfValue, toDType, toInt64 } from './convert.js';

type Data = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

class RefStorage implements Storage {
  alive = true;
  constructor(readonly dtype: DType, public data: Data) {}
  get length(): number { return this.data.length; }
}

function ref(s: Storage): RefStorage {
  const r = s as RefStorage;
  if (!(r instanceof RefStorage) || !r.alive) throw new Error('reference backend: buffer is freed or foreign');
  return r;
}

/** Any buffer, for the kernels that move elements as they are (float16 as its bits). */
function live(s: Storage): Data {
  return ref(s).data;
}

/** A buffer that kernels compute on: not float16, which is storage only. */
function num(s: Storage): Data {
  const r = ref(s);
  if (r.dtype === 'float16') throw new Error('reference backend: float16 is storage only');
  return r.data;
}

/** A buffer of a float dtype (GEMM, random). */
function real(s: Storage): Data {
  const r = ref(s);
  if (DTYPE_INFO[r.dtype].kind !== 'float') throw new Error(`reference backend: this kernel does not take ${r.dtype}`);
  return r.data;
}

/** After a kernel wrote out: int64 elements converted to integers (the typed arrays do the rest). */
function settle(out: Storage): void {
  const r = ref(out);
  if (r.dtype !== 'int64') return;
  const d = r.data;
  for (let i = 0; i < d.length; i++) d[i] = toInt64(d[i]);
}

function indices(s: Storage): Data {
  if (ref(s).dtype !== 'int64') throw new Error(`reference backend: indices must be int64, got ${s.dtype}`);
  return ref(s).data;
}

function checkIndices(id: Data, bound: number): void {
  for (let i = 0; i < id.length; i++) {
    if (!(id[i] >= 0 && id[i] < bound)) throw new Error(`reference backend: index ${id[i]} at position ${i} is out of range for ${bound} elements`);
  }
}

const isInt = (s: Storage): boolean => DTYPE_INFO[s.dtype].kind === 'int';

/** Element i of any buffer as a number (float16 decoded). */
const reader = (s: Storage): ((d: Data, i: number) => number) =>
  s.dtype === 'float16' ? (d, i) => halfValue(d[i]) : (d, i) => d[i];

/** Stores a number into any buffer (float16 encoded; settle() converts int64 afterwards). */
const writer = (s: Storage): ((d: Data, i: number, v: number) => void) =>
  s.dtype === 'float16' ? (d, i, v) => { d[i] = halfBits(v); } : (d, i, v) => { d[i] = v; };

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

/**
 * Integer elements: division truncates (x / 0 is 0), int32 products wrap as in C (Math.imul;
 * a double product would round first); the rest is the float op, converted on store.
 */
const INT_BINARY: Partial<Record<BinaryKernel, (a: number, b: number) => number>> = {
  div: (a, b) => (b === 0 ? 0 : Math.trunc(a / b)),
  maximum: (a, b) => (a > b ? a : b),
  minimum: (a, b) => (a < b ? a : b),
};
function binaryFn(op: BinaryKernel, s: Storage): (a: number, b: number) => number {
  if (!isInt(s)) return BINARY[op];
  if (op === 'mul' && s.dtype === 'int32') return Math.imul;
  return INT_BINARY[op] ?? BINARY[op];
}
function unaryFn(op: UnaryKernel, s: Storage): (x: number) => number {
  if (isInt(s) && op === 'square' && s.dtype === 'int32') return (x) => Math.imul(x, x);
  return UNARY[op];
}

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

const ARRAYS: Record<DType, new (n: number) => Data> = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: Float64Array, uint8: Uint8Array, float16: Uint16Array,
};

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
    if (bytes.byteLength !== d.length * DTYPE_INFO[s.dtype].bytes) throw new Error('reference backend: byte length mismatch');
    if (s.dtype === 'int64') {
      // A copy: `bytes` may be a view into a larger (pooled) buffer, at any alignment.
      const b = new BigInt64Array(new Uint8Array(bytes).buffer, 0, d.length);
      for (let i = 0; i < d.length; i++) d[i] = Number(b[i]);
      return;
    }
    new Uint8Array(d.buffer, d.byteOffset, d.byteLength).set(bytes);
  },
  readBytes(s, offset, length) {
    const d = live(s);
    // int64 is held as doubles here: its bytes are made, the same size as the doubles'.
    const whole = s.dtype === 'int64'
      ? new Uint8Array(BigInt64Array.from(d, (v) => BigInt(v)).buffer)
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    if (offset === undefined) return whole.slice();
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length! < 0 || offset + length! > whole.byteLength) {
      throw new RangeError('reference backend: readBytes range outside the buffer');
    }
    return whole.slice(offset, offset + length!);
  },
  writeNumbers(s, data) {
    const d = live(s);
    if (data.length !== d.length) throw new Error('reference backend: length mismatch');
    const put = writer(s);
    for (let i = 0; i < d.length; i++) put(d, i, data[i]);
    settle(s);
  },
  readNumbers(s) {
    const d = live(s);
    if (s.dtype !== 'float16') return Float64Array.from(d);
    const get = reader(s);
    return Float64Array.from({ length: d.length }, (_, i) => get(d, i));
  },

  fill(out, value) {
    const d = live(out);
    const put = writer(out);
    for (let i = 0; i < d.length; i++) put(d, i, value);
    settle(out);
  },
  arange(out, start, step) {
    const d = live(out);
    const put = writer(out);
    for (let i = 0; i < d.length; i++) put(d, i, start + i * step);
    settle(out);
  },
  eye(out, rows, cols, k) {
    const d = live(out);
    if (rows * cols !== d.length) throw new Error('reference backend: eye shape mismatch');
    const put = writer(out);
    d.fill(0);
    for (let i = 0; i < rows; i++) {
      const j = i + k;
      if (j >= 0 && j < cols) put(d, i * cols + j, 1);
    }
  },
  randomUniform(out, seed, counter, low, high) {
    const d = real(out);
    for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * randomUnit(seed >>> 0, (counter + i) * 2);
  },
  randomNormal(out, seed, counter, loc, scale) {
    const d = real(out);
    for (let i = 0; i < d.length; i++) {
      const u1 = randomUnit(seed >>> 0, (counter + i) * 2);
      const u2 = randomUnit(seed >>> 0, (counter + i) * 2 + 1);
      d[i] = loc + scale * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }
  },

  unary(op, x, out) {
    const xd = num(x);
    const od = num(out);
    if (xd.length !== od.length) throw new Error('reference backend: unary length mismatch');
    if (!UNARY[op]) throw new Error(`reference backend: unknown unary kernel ${op}`);
    const f = unaryFn(op, out);
    for (let i = 0; i < xd.length; i++) od[i] = f(xd[i]);
    settle(out);
  },
  binary(op, a, av, b, bv, out) {
    const ad = num(a);
    const bd = num(b);
    const od = num(out);
    if (!BINARY[op]) throw new Error(`reference backend: unknown binary kernel ${op}`);
    const f = binaryFn(op, out);
    checkView(ad.length, av, 'a');
    checkView(bd.length, bv, 'b');
    if (av.shape.reduce((p, q) => p * q, 1) !== od.length) throw new Error('reference backend: binary out length mismatch');
    forEachStrided(av.shape, [av, bv], (i, [oa, ob]) => { od[i] = f(ad[oa], bd[ob]); });
    settle(out);
  },
  binaryScalar(op, x, scalar, scalarFirst, out) {
    const xd = num(x);
    const od = num(out);
    if (xd.length !== od.length) throw new Error('reference backend: binary length mismatch');
    if (!BINARY[op]) throw new Error(`reference backend: unknown binary kernel ${op}`);
    const f = binaryFn(op, out);
    // Convert the scalar to the buffer's dtype first, as the native engine does (and MXNet's
    // DType(scalar): an integer array truncates it).
    const s = toDType[x.dtype](scalar);
    for (let i = 0; i < xd.length; i++) od[i] = scalarFirst ? f(s, xd[i]) : f(xd[i], s);
    settle(out);
  },
  where(cond, cv, a, av, b, bv, out) {
    const cd = num(cond);
    const ad = num(a);
    const bd = num(b);
    const od = num(out);
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
    const xd = num(x);
    const od = num(out);
    checkView(od.length, ov, 'out');
    if (ov.shape.reduce((p, q) => p * q, 1) !== xd.length) throw new Error('reference backend: scatter length mismatch');
    forEachStrided(ov.shape, [ov], (i, [o]) => { od[o] += xd[i]; });
    settle(out);
  },

  windowMax(x, xv, kdims, out, idx) {
    const xd = num(x);
    const od = num(out);
    const id = indices(idx);
    checkView(xd.length, xv, 'x');
    const r = xv.shape.length - kdims;
    if (kdims < 0 || r < 0) throw new Error('reference backend: windowMax kdims out of range');
    const nout = xv.shape.slice(0, r).reduce((p, q) => p * q, 1);
    const nwin = xv.shape.slice(r).reduce((p, q) => p * q, 1);
    if (od.length !== nout || id.length !== nout) throw new Error('reference backend: windowMax out length mismatch');
    if (nout > 0 && nwin === 0) throw new Error('reference backend: windowMax window is empty');
    // Visited in row-major order of the whole view, so each window's elements come in order.
    let at = -1;
    forEachStrided(xv.shape, [xv], (i, [o]) => {
      const w = Math.floor(i / nwin);
      const v = xd[o];
      if (w !== at) { at = w; od[w] = v; id[w] = o; return; }
      const best = od[w];
      if (best === best && (v > best || v !== v)) { od[w] = v; id[w] = o; }
    });
  },
  indexTake(x, idx, out) {
    const xd = live(x);
    const od = live(out);
    const id = indices(idx);
    if (id.length !== od.length) throw new Error('reference backend: indexTake length mismatch');
    checkIndices(id, xd.length);
    for (let i = 0; i < id.length; i++) od[i] = xd[id[i]];
  },
  indexScatterAdd(x, idx, out) {
    const xd = num(x);
    const od = num(out);
    const id = indices(idx);
    if (id.length !== xd.length) throw new Error('reference backend: indexScatterAdd length mismatch');
    checkIndices(id, od.length);
    for (let i = 0; i < id.length; i++) od[id[i]] += xd[i];
    settle(out);
  },

  reduce(op, x, shape, axes, out) {
    const xd = num(x);
    const od = num(out);
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
    settle(out);
  },
  argReduce(op, x, shape, axis, out) {
    const xd = num(x);
    const od = num(out);
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
    const ad = real(a);
    const bd = real(b);
    const od = real(out);
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
    if (x.dtype === out.dtype) {
      od.set(xd);
      return;
    }
    const get = reader(x);
    const put = writer(out);
    for (let i = 0; i < xd.length; i++) put(od, i, get(xd, i));
    settle(out);
  },
};
