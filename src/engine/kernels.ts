/**
 * NDArray-level kernels: shape checks, broadcasting and output allocation around the flat backend
 * ABI. Op forwards (src/ops) call these and nothing else: `Kernels` does not expose the backend,
 * so every kernel an op runs passes the checks here. Nothing here knows about autograd.
 */
import { itemSize, type Backend, type BinaryKernel, type DType, type ReduceKernel, type UnaryKernel, type View } from './backend.js';
import { broadcastView } from './layout.js';
import { NDArray, sizeOf, shapeStr } from './ndarray.js';
import { fail } from '../errors.js';

/**
 * Where new arrays come from: the session, which counts their bytes against its quota. The new
 * array keeps `shape` itself, not a copy: it must be a shape nothing changes afterwards (another
 * array's, or one built for it). makeKernels copies the shapes that its callers pass in.
 */
export interface Allocator {
  readonly backend: Backend;
  alloc(dtype: DType, shape: readonly number[]): NDArray;
  /** A new NDArray over an existing array's storage (reshape is a view, not a copy). */
  view(of: NDArray, shape: readonly number[]): NDArray;
  /** Refuses a kernel up front when its multiply-add count is over the session's budget. */
  checkFlops?(flops: number, what: string): void;
  /**
   * Optional: a new NDArray of `shape` over x's buffer when the caller was offered it for its
   * output (an input that dies with the op); null otherwise. Elementwise kernels ask first.
   */
  reuse?(x: NDArray, dtype: DType, shape: readonly number[]): NDArray | null;
  /** Optional: a new NDArray over the buffer of the array the output's name held, when offered (see SessionMemory.reuseReplaced). */
  reuseReplaced?(dtype: DType, shape: readonly number[]): NDArray | null;
}

/** Where an error should point: "`rhs` of `dot`". */
export interface Site {
  op: string;
  arg?: string;
}

const where = (s: Site): string => (s.arg ? `\`${s.arg}\` of \`${s.op}\`` : `\`${s.op}\``);

/** NumPy broadcasting of two shapes, or a 422 naming the op. */
export function broadcastShapes(a: readonly number[], b: readonly number[], site: Site): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw fail('shape_mismatch', `shapes ${shapeStr(a)} and ${shapeStr(b)} of ${where(site)} do not broadcast (axis ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function sameDtype(a: NDArray, b: NDArray, site: Site): void {
  if (a.dtype !== b.dtype) {
    throw fail('dtype_mismatch', `${where(site)} got ${a.dtype} and ${b.dtype}; convert one with astype`);
  }
}

/** Normalises an axis (negative counts from the end) against a rank, or a 422 naming it. */
export function normAxis(axis: number, rank: number, site: Site): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw fail('invalid_attribute', `axis ${axis} of ${where(site)} is out of range for an array of rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Reserves `n` draws of a random stream and returns where they start (the session's stream). */
export type Draws = (n: number) => { seed: number; counter: number };

/** A bug of the caller, not of the client: callers check what a client can get wrong first. */
const bug = (what: string): Error => new Error(`kernels: ${what}`);

export function makeKernels(m: Allocator) {
  const be = m.backend;
  /** into[view] += x, x contiguous over view.shape. */
  const scatterAdd = (x: NDArray, into: NDArray, v: View): void => {
    if (x.dtype !== into.dtype) throw bug(`scatterAdd of ${x.dtype} into ${into.dtype}`);
    if (v.shape.length !== v.strides.length || sizeOf(v.shape) !== x.size) {
      throw bug(`scatterAdd of ${shapeStr(x.shape)} through a view of shape ${shapeStr(v.shape)}`);
    }
    be.scatterAddStrided(x.storage, into.storage, v);
  };
  /** A new array of `shape` filled by a counter-based generator (see Backend.randomUniform). */
  const random = (dtype: DType, shape: readonly number[], draws: Draws, run: (out: NDArray, seed: number, counter: number) => void): NDArray => {
    const out = m.alloc(dtype, [...shape]);
    // Drawn only once the allocation succeeded, so a refused array does not advance the stream.
    const { seed, counter } = draws(out.size);
    run(out, seed, counter);
    return out;
  };

  /**
   * Where an elementwise kernel writes: `into` (an in-place update: same dtype and size), else
   * the buffer of an input offered for reuse, else a new one. Elementwise kernels read element i
   * of each input before writing element i, so out may be an input of its own shape.
   */
  const outFor = (dtype: DType, shape: readonly number[], into: NDArray | undefined, x: NDArray | number, y?: NDArray | number): NDArray => {
    if (into) {
      if (into.dtype !== dtype || into.size !== sizeOf(shape)) throw bug(`a ${dtype} result of shape ${shapeStr(shape)} written into ${into.dtype} ${shapeStr(into.shape)}`);
      return into;
    }
    if (m.reuse) {
      const r = (typeof x !== 'number' ? m.reuse(x, dtype, shape) : null) ?? (y !== undefined && typeof y !== 'number' ? m.reuse(y, dtype, shape) : null);
      if (r) return r;
    }
    return m.reuseReplaced?.(dtype, shape) ?? m.alloc(dtype, shape);
  };

  // Shapes of existing arrays and shapes computed here are shared; callers' shapes are copied.
  return {
    /** f(x), into a new array, or into `into` (same dtype and size; it may be x). */
    unary(op: UnaryKernel, x: NDArray, into?: NDArray): NDArray {
      const out = outFor(x.dtype, x.shape, into, x);
      be.unary(op, x.storage, out.storage);
      return out;
    },

    /** f(a, b) with broadcasting, into a new array or into `into` (of the result's dtype and size; it may be a or b). */
    binary(op: BinaryKernel, a: NDArray | number, b: NDArray | number, site: Site, into?: NDArray): NDArray {
      if (typeof a === 'number' && typeof b === 'number') {
        throw fail('invalid_argument', `${where(site)} needs at least one array argument`);
      }
      if (typeof a === 'number' || typeof b === 'number') {
        const x = (typeof a === 'number' ? b : a) as NDArray;
        const s = (typeof a === 'number' ? a : b) as number;
        const out = outFor(x.dtype, x.shape, into, x);
        be.binaryScalar(op, x.storage, s, typeof a === 'number', out.storage);
        return out;
      }
      sameDtype(a, b, site);
      const shape = broadcastShapes(a.shape, b.shape, site);
      const out = outFor(a.dtype, shape, into, a, b);
      be.binary(op, a.storage, broadcastView(a.shape, shape), b.storage, broadcastView(b.shape, shape), out.storage);
      return out;
    },

    where(c: NDArray, a: NDArray, b: NDArray, site: Site): NDArray {
      sameDtype(a, b, { ...site, arg: 'x' });
      sameDtype(c, a, { ...site, arg: 'condition' });
      const shape = broadcastShapes(broadcastShapes(c.shape, a.shape, site), b.shape, site);
      const out = m.alloc(a.dtype, shape);
      be.where(c.storage, broadcastView(c.shape, shape), a.storage, broadcastView(a.shape, shape),
        b.storage, broadcastView(b.shape, shape), out.storage);
      return out;
    },

    /** Materialises a strided view of x (transpose, broadcast_to, slice, flip). */
    gather(x: NDArray, v: View): NDArray {
      const out = m.alloc(x.dtype, [...v.shape]);
      be.copyStrided(x.storage, v, out.storage);
      return out;
    },

    /** zeros(shape) with x added at the view: the adjoint of gather. */
    scatter(x: NDArray, shape: readonly number[], v: View): NDArray {
      const out = m.alloc(x.dtype, [...shape]);
      scatterAdd(x, out, v);
      return out;
    },

    /** In place: into[view] += x, x contiguous over view.shape (joins, grouped convolution). */
    scatterAdd,

    /**
     * The maximum of each window of x (the view's last `kdims` axes) and the int64 flat position
     * in x of its first maximum: [values, positions], both shaped as the view's other axes.
     */
    windowMax(x: NDArray, v: View, kdims: number): [NDArray, NDArray] {
      const shape = v.shape.slice(0, v.shape.length - kdims);
      const out = m.alloc(x.dtype, shape.length ? shape : [1]);
      const idx = m.alloc('int64', out.shape);
      be.windowMax(x.storage, v, kdims, out.storage, idx.storage);
      return [out, idx];
    },

    /** x.flat[idx] (int64 positions), shaped as idx. */
    indexTake(x: NDArray, idx: NDArray): NDArray {
      if (idx.dtype !== 'int64') throw bug(`indexTake by ${idx.dtype} indices`);
      const out = m.alloc(x.dtype, idx.shape);
      be.indexTake(x.storage, idx.storage, out.storage);
      return out;
    },

    /** zeros(shape) with x[i] added at flat position idx[i]: the adjoint of indexTake. */
    indexScatterAdd(x: NDArray, idx: NDArray, shape: readonly number[]): NDArray {
      if (idx.dtype !== 'int64' || idx.size !== x.size) throw bug(`indexScatterAdd of ${shapeStr(x.shape)} by ${idx.dtype} ${shapeStr(idx.shape)}`);
      const out = m.alloc(x.dtype, [...shape]);
      be.indexScatterAdd(x.storage, idx.storage, out.storage);
      return out;
    },

    reduce(op: ReduceKernel, x: NDArray, axes: readonly number[], keepdims: boolean): NDArray {
      const sorted = [...new Set(axes)].sort((p, q) => p - q);
      const kept = x.shape.filter((_, d) => !sorted.includes(d));
      const out = m.alloc(x.dtype, kept);
      be.reduce(op, x.storage, x.shape, sorted, out.storage);
      const shape = keepdims ? x.shape.map((d, i) => (sorted.includes(i) ? 1 : d)) : kept;
      // No 0-d arrays: a full reduction has shape [1], as in MXNet 1.x.
      return m.view(out, shape.length === 0 ? [1] : shape);
    },

    argReduce(op: 'argmax' | 'argmin', x: NDArray, axis: number, keepdims: boolean): NDArray {
      const kept = x.shape.filter((_, d) => d !== axis);
      const out = m.alloc(x.dtype, kept);
      be.argReduce(op, x.storage, x.shape, axis, out.storage);
      const shape = keepdims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : kept;
      return m.view(out, shape.length === 0 ? [1] : shape);
    },

    /** Batched matmul of [batch, m, k] by [batch, k, n] (batch strides of 0 broadcast). */
    gemm(a: NDArray, b: NDArray, dims: { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean; strideA: number; strideB: number }, shape: readonly number[]): NDArray {
      m.checkFlops?.(dims.batch * dims.m * dims.n * dims.k, 'matrix product');
      const out = m.alloc(a.dtype, [...shape]);
      if (sizeOf(shape) !== dims.batch * dims.m * dims.n) throw bug('gemm: output shape disagrees with dims');
      be.gemm(a.storage, b.storage, out.storage, dims.batch, dims.m, dims.n, dims.k, dims.transA, dims.transB, dims.strideA, dims.strideB);
      return out;
    },

    cast(x: NDArray, dtype: DType): NDArray {
      const out = m.alloc(dtype, x.shape);
      be.cast(x.storage, out.storage);
      return out;
    },

    copy(x: NDArray): NDArray {
      const out = m.alloc(x.dtype, x.shape);
      be.cast(x.storage, out.storage);
      return out;
    },

    /** In place: dst's elements become src's, in order (optimizer updates, running statistics). */
    assign(src: NDArray, dst: NDArray): void {
      if (src.dtype !== dst.dtype) throw bug(`assign of ${src.dtype} into ${dst.dtype}; cast first`);
      if (src.size !== dst.size) throw bug(`assign of ${shapeStr(src.shape)} into ${shapeStr(dst.shape)}`);
      if (src.storage !== dst.storage) be.cast(src.storage, dst.storage);
    },

    full(dtype: DType, shape: readonly number[], value: number): NDArray {
      const out = m.alloc(dtype, [...shape]);
      // New buffers read as +0; -0 is written like any other value (its reciprocal is -inf).
      if (value !== 0 || Object.is(value, -0)) be.fill(out.storage, value);
      return out;
    },

    /** In place: every element of x becomes value. */
    fill(x: NDArray, value: number): void {
      be.fill(x.storage, value);
    },

    /** [length]: start + i * step (arange, linspace, index ranges). */
    arange(dtype: DType, length: number, start: number, step: number): NDArray {
      const out = m.alloc(dtype, [length]);
      be.arange(out.storage, start, step);
      return out;
    },

    /** [rows, cols]: 1 where j - i == k, else 0. */
    eye(dtype: DType, rows: number, cols: number, k: number): NDArray {
      const out = m.alloc(dtype, [rows, cols]);
      be.eye(out.storage, rows, cols, k);
      return out;
    },

    /** low + (high - low) * u, u uniform in [0, 1), from the next draws of the stream. */
    randomUniform: (dtype: DType, shape: readonly number[], low: number, high: number, draws: Draws): NDArray =>
      random(dtype, shape, draws, (out, seed, counter) => be.randomUniform(out.storage, seed, counter, low, high)),

    /** loc + scale * z, z standard normal, from the next draws of the stream. */
    randomNormal: (dtype: DType, shape: readonly number[], loc: number, scale: number, draws: Draws): NDArray =>
      random(dtype, shape, draws, (out, seed, counter) => be.randomNormal(out.storage, seed, counter, loc, scale)),

    /** A new array holding `values` (row-major, rounded to dtype); one value per element. */
    fromNumbers(dtype: DType, shape: readonly number[], values: ArrayLike<number>): NDArray {
      const out = m.alloc(dtype, [...shape]);
      if (values.length !== out.size) throw bug(`${values.length} values for shape ${shapeStr(shape)}`);
      be.writeNumbers(out.storage, values);
      return out;
    },

    /** The array's numbers as float64, once the kernels that write it have run. */
    read(x: NDArray): Float64Array {
      return be.readNumbers(x.storage);
    },

    /** `length` of the array's little-endian bytes from byte `offset`, once the kernels that write it have run. */
    readBytes(x: NDArray, offset: number, length: number): Uint8Array {
      return be.readBytes(x.storage, offset, length);
    },

    /** A new array holding little-endian `bytes` of dtype (uploads, files). */
    fromBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array): NDArray {
      const out = m.alloc(dtype, [...shape]);
      if (bytes.byteLength !== out.size * itemSize(dtype)) {
        throw bug(`${bytes.byteLength} bytes for a ${dtype} array of shape ${shapeStr(shape)}`);
      }
      be.writeBytes(out.storage, bytes);
      return out;
    },

    view: (x: NDArray, shape: readonly number[]) => m.view(x, [...shape]),
    alloc: (dtype: DType, shape: readonly number[]) => m.alloc(dtype, [...shape]),
  };
}

/** What ops see of the engine: NDArrays in and out, never the backend or its storages' handles. */
export type Kernels = ReturnType<typeof makeKernels>;
