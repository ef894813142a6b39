/**
 * The native backend: the C++ addon of src/native, built by node-gyp into build/Release. This
 * file only loads it and forwards; the addon checks every argument it is handed.
 */
import { createRequire } from 'node:module';
import type { Backend, DType, Storage } from './backend.js';

/** What the addon exports (see src/native/addon.cc): the Backend methods plus diagnostics. */
export interface NativeAddon extends Omit<Backend, 'name' | 'withStream'> {
  alloc(dtype: DType, length: number): Storage;
  /** Tags the kernel calls that follow with a stream number (0: untagged); returns the previous. */
  setStream(stream: number): number;
  /** Blocks until every queued kernel has run (tests and benchmarks only: it stalls the loop). */
  sync(): void;
  /** Kernel calls queued and not yet completed. */
  pendingWork(): number;
  /** Sets the cost at or above which independent calls are queued (0: queue all); returns the previous. */
  setInlineLimit(limit: number): number;
  /** Bytes of buffer memory the addon currently holds (for leak tests). */
  nativeBytesLive(): number;
  getThreads(): number;
  /** Sets the kernel thread count (1..64); returns it. */
  setThreads(n: number): number;
  /** The GEMM micro-kernel instruction set in use: 'avx512f', 'avx2' or 'sse2'. */
  simdLevel(): string;
  /** Caps the GEMM instruction set (for tests and benchmarks); returns the level in force. */
  setSimdCap(level: string): string;
}

const require = createRequire(import.meta.url);
// From src/engine (tsx, vitest) the package root is two levels up; from dist/src/engine, three.
const CANDIDATES = ['../../build/Release/gradserve.node', '../../../build/Release/gradserve.node'];

let cached: NativeAddon | null | undefined;

/** The addon, or null when it has not been built. Other load failures throw. */
export function loadNativeAddon(): NativeAddon | null {
  if (cached !== undefined) return cached;
  for (const path of CANDIDATES) {
    try {
      cached = require(path) as NativeAddon;
      return cached;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  cached = null;
  return cached;
}

function addon(): NativeAddon {
  const a = loadNativeAddon();
  if (!a) throw new Error('native backend: build/Release/gradserve.node is missing; run `npm run install`');
  return a;
}

export const nativeBackend: Backend = {
  name: 'native',
  alloc: (dtype, length) => addon().alloc(dtype, length),
  free: (s) => addon().free(s),
  writeBytes: (s, bytes) => addon().writeBytes(s, bytes),
  readBytes: (s) => addon().readBytes(s),
  writeNumbers: (s, data) => addon().writeNumbers(s, data),
  readNumbers: (s) => addon().readNumbers(s),
  fill: (out, value) => addon().fill(out, value),
  arange: (out, start, step) => addon().arange(out, start, step),
  eye: (out, rows, cols, k) => addon().eye(out, rows, cols, k),
  randomUniform: (out, seed, counter, low, high) => addon().randomUniform(out, seed, counter, low, high),
  randomNormal: (out, seed, counter, loc, scale) => addon().randomNormal(out, seed, counter, loc, scale),
  unary: (op, x, out) => addon().unary(op, x, out),
  binary: (op, a, av, b, bv, out) => addon().binary(op, a, av, b, bv, out),
  binaryScalar: (op, x, scalar, scalarFirst, out) => addon().binaryScalar(op, x, scalar, scalarFirst, out),
  where: (cond, cv, a, av, b, bv, out) => addon().where(cond, cv, a, av, b, bv, out),
  copyStrided: (x, xv, out) => addon().copyStrided(x, xv, out),
  scatterAddStrided: (x, out, ov) => addon().scatterAddStrided(x, out, ov),
  reduce: (op, x, shape, axes, out) => addon().reduce(op, x, shape, axes, out),
  argReduce: (op, x, shape, axis, out) => addon().argReduce(op, x, shape, axis, out),
  gemm: (a, b, out, batch, m, n, k, transA, transB, strideA, strideB) =>
    addon().gemm(a, b, out, batch, m, n, k, transA, transB, strideA, strideB),
  cast: (x, out) => addon().cast(x, out),
  flush: (stream) => addon().flush(stream),
  withStream<T>(stream: number, fn: () => T): T {
    const a = addon();
    const prev = a.setStream(stream);
    try {
      return fn();
    } finally {
      a.setStream(prev);
    }
  },
};

/** The native backend, or null (without throwing) when the addon has not been built. */
export function loadNativeBackend(): Backend | null {
  return loadNativeAddon() ? nativeBackend : null;
}
