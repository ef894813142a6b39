/**
 * The flat kernel ABI between TypeScript and a compute backend.
 *
 * A backend owns buffers (of any DType, contiguous, row-major) and runs kernels over them.
 * It knows nothing of sessions, names, tapes or JSON. Every kernel writes into an `out` buffer that
 * the caller allocated with the right length; shapes and strides are plain number arrays. Callers
 * (src/engine/kernels.ts) validate everything first; a backend re-checks what could corrupt memory
 * (lengths, indices, strides in range) and throws a plain Error when handed something inconsistent.
 *
 * Two implementations: `reference.ts` (pure TypeScript, the living definition of every kernel and
 * the test oracle) and `native.ts` (the C++ addon in src/native).
 */

export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'float16';
export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'int64', 'uint8', 'float16'];
/**
 * What every layer needs to know of a dtype, in one table: a new dtype is one row here, and each
 * Record<DType, ...> elsewhere (reference arrays, .npy descriptors) fails to typecheck until it
 * has one too, rather than falling into an `else` meant for the other float.
 *
 * `kind`: 'float' dtypes compute and carry gradients; 'int' dtypes compute (arithmetic wraps,
 * division truncates) but never carry gradients; 'storage' (float16) is held, moved, converted
 * and transferred, and every op that computes refuses it.
 */
export type DTypeKind = 'float' | 'int' | 'storage';
export const DTYPE_INFO: Readonly<Record<DType, { bytes: number; npy: string; safetensors: string; kind: DTypeKind }>> = {
  float32: { bytes: 4, npy: '<f4', safetensors: 'F32', kind: 'float' },
  float64: { bytes: 8, npy: '<f8', safetensors: 'F64', kind: 'float' },
  int32: { bytes: 4, npy: '<i4', safetensors: 'I32', kind: 'int' },
  int64: { bytes: 8, npy: '<i8', safetensors: 'I64', kind: 'int' },
  uint8: { bytes: 1, npy: '|u1', safetensors: 'U8', kind: 'int' },
  float16: { bytes: 2, npy: '<f2', safetensors: 'F16', kind: 'storage' },
};
export const isFloat = (d: DType): boolean => DTYPE_INFO[d].kind === 'float';
export const isInteger = (d: DType): boolean => DTYPE_INFO[d].kind === 'int';
export const itemSize = (d: DType): number => DTYPE_INFO[d].bytes;

/** An opaque buffer handle. `length` is in elements. */
export interface Storage {
  readonly dtype: DType;
  readonly length: number;
  /** False once freed: any later use is a bug, and the backend throws. */
  readonly alive: boolean;
}

/** Elementwise unary kernels: out[i] = f(x[i]). */
export const UNARY_KERNELS = [
  'neg', 'abs', 'sign', 'square', 'sqrt', 'rsqrt', 'reciprocal',
  'exp', 'expm1', 'log', 'log1p',
  'sin', 'cos', 'tan', 'arcsin', 'arccos', 'arctan',
  'sinh', 'cosh', 'tanh', 'arcsinh', 'arccosh', 'arctanh',
  'relu', 'sigmoid', 'softrelu', 'floor', 'ceil', 'round',
] as const;
export type UnaryKernel = (typeof UNARY_KERNELS)[number];

/** Elementwise binary kernels with broadcasting: out[i] = f(a[..], b[..]). Comparisons give 0 or 1. */
export const BINARY_KERNELS = [
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum',
  'eq', 'ne', 'lt', 'le', 'gt', 'ge',
] as const;
export type BinaryKernel = (typeof BINARY_KERNELS)[number];

export const REDUCE_KERNELS = ['sum', 'prod', 'max', 'min'] as const;
export type ReduceKernel = (typeof REDUCE_KERNELS)[number];

/**
 * A strided view of a buffer: element `idx` (a multi-index over `shape`) lives at
 * `offset + sum_k idx[k] * strides[k]`. Strides may be 0 (broadcast) or negative (flip).
 */
export interface View {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/** The figures of a backend's cache of freed buffers (the native one's size-class allocator). */
export interface CacheStats {
  /** Freed memory kept for reuse, and in how many blocks. */
  cachedBytes: number;
  cachedBlocks: number;
  /** The most it keeps (GRADSERVE_ALLOC_CACHE_BYTES). */
  limitBytes: number;
  /** The most live buffers and the cache hold together (GRADSERVE_MAX_TOTAL_BYTES); -1: unbounded. */
  budgetBytes: number;
  /** Large allocations served from the cache (no page faults), and those that mapped new pages. */
  hits: number;
  misses: number;
  /** Times the cache was given back to the system (idle, a failed mapping, or asked), and the bytes. */
  trims: number;
  trimmedBytes: number;
  /** Freed small buffers (under 256 KiB) kept in free lists, outside limitBytes (at most 4 MiB). */
  smallCachedBytes: number;
}

/** A backend's cache of freed buffers. */
export interface BufferCache {
  stats(): CacheStats;
  /** Gives the cached memory back to the system (with idleOnly, only when nothing was allocated since the last such call); answers the bytes. */
  trim(idleOnly?: boolean): number;
  /**
   * Bounds the cache (bytes) and, with `budget`, what live buffers and the cache hold together:
   * the cache gives way as live memory grows. Trims to both at once.
   */
  setLimit(bytes: number, budget?: number): void;
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** Optional: the cache of freed buffers, for /metrics, the idle trim and the configured bound. */
  readonly cache?: BufferCache;

  /** A zero-filled buffer. */
  alloc(dtype: DType, length: number): Storage;
  /** Releases the memory now; idempotent. */
  free(s: Storage): void;
  /** Copies little-endian bytes (length must be length * itemSize) into s. */
  writeBytes(s: Storage, bytes: Uint8Array): void;
  /**
   * A copy of the buffer's little-endian bytes, or of `length` of them from byte `offset` (a large
   * read split between turns of the event loop).
   */
  readBytes(s: Storage, offset?: number, length?: number): Uint8Array;
  /** Copies numbers into s (converted to its dtype as `toDType` says); data.length must equal s.length. */
  writeNumbers(s: Storage, data: ArrayLike<number>): void;
  /** A copy of the buffer as float64 numbers (int64 beyond 2^53 rounds to the nearest double). */
  readNumbers(s: Storage): Float64Array;

  /** out[i] = value. */
  fill(out: Storage, value: number): void;
  /** out[i] = start + i * step (arange and linspace). */
  arange(out: Storage, start: number, step: number): void;
  /** out is rows x cols; out[i][j] = 1 where j - i == k, else 0. */
  eye(out: Storage, rows: number, cols: number, k: number): void;
  /**
   * Counter-based random numbers: element i is a pure function of (seed, counter + i), so
   * results do not depend on the backend or the thread count. The generator is specified in
   * reference.ts (`randomBits`); both backends must produce identical bits.
   * uniform: low + (high - low) * u with u in [0, 1); normal: loc + scale * z (Box-Muller).
   */
  randomUniform(out: Storage, seed: number, counter: number, low: number, high: number): void;
  randomNormal(out: Storage, seed: number, counter: number, loc: number, scale: number): void;

  /** out[i] = f(x[i]); x and out have the same length and dtype (out may be x). */
  unary(op: UnaryKernel, x: Storage, out: Storage): void;
  /**
   * out (contiguous, shape `shape`) = f(a[view a], b[view b]). Views give a and b's strides over
   * the output shape (0 where broadcast).
   */
  binary(op: BinaryKernel, a: Storage, av: View, b: Storage, bv: View, out: Storage): void;
  /** out[i] = f(x[i], scalar) or, with scalarFirst, f(scalar, x[i]). */
  binaryScalar(op: BinaryKernel, x: Storage, scalar: number, scalarFirst: boolean, out: Storage): void;
  /** out[i] = cond[i] != 0 ? a[i] : b[i], all over the output shape through views. */
  where(cond: Storage, cv: View, a: Storage, av: View, b: Storage, bv: View, out: Storage): void;

  /** Gathers a strided view of x into contiguous out (transpose, broadcast, slice, flip). */
  copyStrided(x: Storage, xv: View, out: Storage): void;
  /** out[view] += x, x contiguous over view.shape (the adjoint of copyStrided; slice's gradient). */
  scatterAddStrided(x: Storage, out: Storage, ov: View): void;

  /**
   * For each window of x (the last `kdims` axes of the view xv; the others enumerate windows):
   * out[i] = its maximum, idx[i] (int64) = the flat position in x of its first maximum in
   * row-major window order (where MXNet's max pooling sends the gradient). A NaN wins, the first.
   */
  windowMax(x: Storage, xv: View, kdims: number, out: Storage, idx: Storage): void;
  /** out[i] = x[idx[i]], idx int64; an index outside [0, x.length) fails the kernel, writing nothing. */
  indexTake(x: Storage, idx: Storage, out: Storage): void;
  /** out[idx[i]] += x[i] in order of i (the adjoint of indexTake), with indexTake's checks. */
  indexScatterAdd(x: Storage, idx: Storage, out: Storage): void;

  /**
   * Reduces x (contiguous, `shape`) over the axes set in `axes` (sorted, unique); out holds the
   * remaining dims in order. An empty reduction gives the op's identity (0, 1, -inf, +inf).
   * NaN propagates through max and min.
   */
  reduce(op: ReduceKernel, x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): void;
  /** Index (in x's dtype, as MXNet 1.x) of the first max (or min) along `axis` of x; out drops that axis. */
  argReduce(op: 'argmax' | 'argmin', x: Storage, shape: readonly number[], axis: number, out: Storage): void;

  /**
   * Batched GEMM: for each p < batch, C_p (m x n) = op(A_p) @ op(B_p), where op transposes when
   * asked. A_p starts at p * strideA (0 broadcasts one matrix), B_p at p * strideB, C_p at p * m * n.
   * Untransposed A_p is m x k row-major; transposed, it is stored k x m. Likewise B_p: k x n or n x k.
   */
  gemm(
    a: Storage, b: Storage, out: Storage,
    batch: number, m: number, n: number, k: number,
    transA: boolean, transB: boolean, strideA: number, strideB: number,
  ): void;

  /** Copies x into out, converting dtype (astype). Same length. */
  cast(x: Storage, out: Storage): void;

  /**
   * Resolves when every kernel called so far has finished (with `stream`: every kernel called
   * inside withStream(stream, ...)). A backend may run kernels off the calling thread in call
   * order; reads and writes of a buffer (readBytes, readNumbers, writeBytes, writeNumbers) then
   * wait for the kernels that use it, and callers await flush() first so that the wait never
   * blocks the event loop.
   */
  flush(stream?: number): Promise<void>;

  /**
   * Optional: runs the kernels queued so far (in a batch) now, throwing the failure of any, so a
   * program can attribute a kernel's failure to the statement that queued it. Kernels large
   * enough to run off the thread are only started, never waited for.
   */
  drain?(): void;

  /**
   * Optional: runs fn with the kernels it calls attributed to `stream` (a positive integer, one
   * per session), so that flush(stream) need not wait for other streams' work, and so that a
   * backend that queues kernels can share its worker fairly between streams.
   */
  withStream?<T>(stream: number, fn: () => T): T;

  /**
   * Optional (a backend that queues kernels): a time budget for `stream`'s kernels. Those still
   * queued or running once `budgetMs` has passed are stopped between kernels (or between the
   * steps of a large one); every buffer a stopped kernel writes is marked failed (see failed()).
   */
  setDeadline?(stream: number, budgetMs: number): void;
  /**
   * Optional, with setDeadline: clears the budget of `stream` and says whether it stopped any of
   * the stream's kernels since it was set. Call it after flush(stream).
   */
  clearDeadline?(stream: number): boolean;
  /**
   * Optional: whether a queued kernel that was to write s failed or was stopped (reading s then
   * throws): null when none did; 'intact' when it had written nothing, so s holds what the last
   * completed write left; 'clobbered' when it failed part way. Waits for the queued work on s.
   */
  failed?(s: Storage): 'intact' | 'clobbered' | null;
  /** Optional: forgets an 'intact' failure of s, so that s reads again; false when s is clobbered. */
  clearFailure?(s: Storage): boolean;
}
