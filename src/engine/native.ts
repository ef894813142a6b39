/**
 * The native backend: the C++ addon of src/native, built by node-gyp into build/Release. This
 * file only loads it and forwards; the addon checks every argument it is handed.
 */
import { createRequire } from 'node:module';
import type { Backend, DType, Storage, View } from './backend.js';

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
  /** Kernel names in the index order the op arguments also accept. */
  kernelNames(): { unary: string[]; binary: string[]; reduce: string[] };
  /** The storage class (alloc calls it; constructing it directly saves one hop). */
  Storage: new (dtype: DType, length: number) => Storage;
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

/**
 * Per-call overhead matters for long programs of tiny ops, so the hot arguments travel in the
 * cheapest form the addon reads: kernel names as indices, views packed into one Float64Array
 * ([rank, offset, shape..., strides...]). The addon checks both as strictly as the plain forms.
 */
let indices: { unary: Map<string, number>; binary: Map<string, number>; reduce: Map<string, number> } | null = null;
function opIndex(family: 'unary' | 'binary' | 'reduce', op: string): number | string {
  if (!indices) {
    const n = addon().kernelNames();
    const map = (xs: string[]) => new Map(xs.map((x, i) => [x, i]));
    indices = { unary: map(n.unary), binary: map(n.binary), reduce: map(n.reduce) };
  }
  // Unknown names go through as strings, so the addon's error names them.
  return indices[family].get(op) ?? op;
}

/**
 * Packed views live in reused Float64Arrays, one per (argument slot, rank), each over its own
 * ArrayBuffer: a fresh small typed array sits on V8's heap, and the addon reading it would force
 * V8 to move its bytes off-heap first (several µs per view). The addon reads every view before
 * it does anything else, so one set of buffers serves every call; a call made while another is
 * packing (a getter on a view re-entering the backend) packs into fresh arrays instead.
 */
const MAX_PACKED_RANK = 32;
const scratch: Float64Array[][] = [[], [], []];
let packing = false;

function scratchFor(slot: number, rank: number): Float64Array {
  const bySlot = scratch[slot];
  return (bySlot[rank] ??= new Float64Array(new ArrayBuffer(8 * (2 + 2 * rank))));
}

function packView(v: View, slot: number, reuse: boolean): Float64Array | View {
  // Anything that is not a plain view goes through as it is, for the addon to reject.
  if (!v || !Array.isArray(v.shape) || !Array.isArray(v.strides) || v.shape.length !== v.strides.length) return v;
  const rank = v.shape.length;
  const p = reuse && rank <= MAX_PACKED_RANK ? scratchFor(slot, rank) : new Float64Array(2 + 2 * rank);
  p[0] = rank;
  p[1] = v.offset;
  for (let d = 0; d < rank; d++) {
    p[2 + d] = v.shape[d];
    p[2 + rank + d] = v.strides[d];
  }
  return p;
}

/** Packs the views (slots 0, 1, ...) and calls fn with them, reusing the scratch buffers. */
function withPacked1<R>(v0: View, fn: (p0: Packed) => R): R {
  const reuse = !packing;
  packing = true;
  try {
    const p0 = packView(v0, 0, reuse);
    return fn(p0);
  } finally {
    if (reuse) packing = false;
  }
}
function withPacked2<R>(v0: View, v1: View, fn: (p0: Packed, p1: Packed) => R): R {
  const reuse = !packing;
  packing = true;
  try {
    const p0 = packView(v0, 0, reuse);
    const p1 = packView(v1, 1, reuse);
    return fn(p0, p1);
  } finally {
    if (reuse) packing = false;
  }
}
function withPacked3<R>(v0: View, v1: View, v2: View, fn: (p0: Packed, p1: Packed, p2: Packed) => R): R {
  const reuse = !packing;
  packing = true;
  try {
    const p0 = packView(v0, 0, reuse);
    const p1 = packView(v1, 1, reuse);
    const p2 = packView(v2, 2, reuse);
    return fn(p0, p1, p2);
  } finally {
    if (reuse) packing = false;
  }
}

type Packed = Float64Array | View;
interface RawAddon {
  unary(op: number | string, x: Storage, out: Storage): void;
  binary(op: number | string, a: Storage, av: Packed, b: Storage, bv: Packed, out: Storage): void;
  binaryScalar(op: number | string, x: Storage, scalar: number, scalarFirst: boolean, out: Storage): void;
  where(c: Storage, cv: Packed, a: Storage, av: Packed, b: Storage, bv: Packed, out: Storage): void;
  copyStrided(x: Storage, xv: Packed, out: Storage): void;
  scatterAddStrided(x: Storage, out: Storage, ov: Packed): void;
  reduce(op: number | string, x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): void;
}
const raw = (): RawAddon => addon() as unknown as RawAddon;

export const nativeBackend: Backend = {
  name: 'native',
  alloc: (dtype, length) => new (addon().Storage)(dtype, length),
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
  unary: (op, x, out) => raw().unary(opIndex('unary', op), x, out),
  binary: (op, a, av, b, bv, out) => {
    const k = opIndex('binary', op);
    withPacked2(av, bv, (pa, pb) => raw().binary(k, a, pa, b, pb, out));
  },
  binaryScalar: (op, x, scalar, scalarFirst, out) => raw().binaryScalar(opIndex('binary', op), x, scalar, scalarFirst, out),
  where: (cond, cv, a, av, b, bv, out) => withPacked3(cv, av, bv, (pc, pa, pb) => raw().where(cond, pc, a, pa, b, pb, out)),
  copyStrided: (x, xv, out) => withPacked1(xv, (p) => raw().copyStrided(x, p, out)),
  scatterAddStrided: (x, out, ov) => withPacked1(ov, (p) => raw().scatterAddStrided(x, out, p)),
  reduce: (op, x, shape, axes, out) => raw().reduce(opIndex('reduce', op), x, shape, axes, out),
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
