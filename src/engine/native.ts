/**
 * The native backend: the C++ addon of src/native, built by node-gyp into build/Release.
 *
 * A program of a thousand scalar ops would cost thousands of N-API calls (each several times the
 * op itself), so kernel calls do not cross into C++ one by one: they are written as commands into
 * one Float64Array the addon holds (src/native/commands.h) and run together. Buffers are integer
 * handles picked here, so allocating one is a command too and no JS object comes back from C++.
 *
 * Outside `withStream` every call runs at once, so a bad argument throws at its call. Inside it
 * (a session's request), commands wait until the scope ends, a read needs data, or the buffer is
 * full; TypeScript has validated every op by then, so a native failure there is a bug and comes
 * out of the scope as an Error. Frees are never urgent: they join the next batch (at the latest
 * at the end of the current microtask checkpoint).
 *
 * This file checks the JS-side types of arguments (a string where a number belongs, a foreign or
 * freed storage); the addon checks every number: ranges, lengths, strides and bounds.
 */
import { createRequire } from 'node:module';
import { BINARY_KERNELS, REDUCE_KERNELS, UNARY_KERNELS, DTYPE_INFO, itemSize, type Backend, type BufferCache, type CacheStats, type DType, type Storage, type View } from './backend.js';

/** What the addon exports (src/native/addon.cc): its diagnostics (NativeAddon, below) and these. */
interface RawAddon extends NativeAddon {
  allocatorStats(): CacheStats;
  allocatorTrim(idleOnly: boolean): number;
  allocatorSetLimit(bytes: number, budget?: number): void;
  setCommandBuffer(commands: Float64Array): void;
  run(n: number): void;
  writeBytes(h: number, bytes: Uint8Array): void;
  readBytes(h: number, offset?: number, length?: number): Uint8Array;
  writeNumbers(h: number, data: ArrayLike<number>): void;
  readNumbers(h: number): Float64Array;
  flush(stream?: number): Promise<void>;
  setDeadline(stream: number, budgetMs: number): void;
  clearDeadline(stream: number): boolean;
  failed(h: number): number;
  clearFailure(h: number): boolean;
}

/** Diagnostics and tuning knobs of the addon (tests and benchmarks); each runs pending commands first. */
export interface NativeAddon {
  /** Blocks until every queued kernel has run (tests and benchmarks only: it stalls the loop). */
  sync(): void;
  /** Kernel calls queued on the worker and not yet completed. */
  pendingWork(): number;
  /** The worker's counts so far: whole kernels run, steps of large kernels run, kernels stopped by deadlines. */
  streamStats(): { runs: number; steps: number; stopped: number };
  /** Sets the cost at or above which independent calls are queued (0: queue all); returns the previous. */
  setInlineLimit(limit: number): number;
  /** The addon's side of the tables TypeScript and C++ must agree on (see ABI). */
  abi(): Abi;
  /** Bytes of buffer memory the addon currently holds (for leak tests). */
  nativeBytesLive(): number;
  getThreads(): number;
  /** Sets the kernel thread count (1..64); returns it. */
  setThreads(n: number): number;
  /**
   * The instruction set of the GEMM micro-kernels and SIMD elementwise kernels in use: 'avx512f',
   * 'avx2' or 'sse2' (the float32 transcendental path that runs; sse2 means scalar libm).
   */
  simdLevel(): string;
  /** Caps that instruction set (GRADSERVE_ISA, tests, benchmarks); returns the level in force. */
  setSimdCap(level: string): string;
}

const require = createRequire(import.meta.url);
// From src/engine (tsx, vitest) the package root is two levels up; from dist/src/engine, three.
const CANDIDATES = ['../../build/Release/gradserve.node', '../../../build/Release/gradserve.node'];

/** The commands of src/native/commands.h (GS_COMMANDS) in opcode order: a command's opcode is its index. */
const COMMANDS = [
  'Alloc', 'Free', 'Fill', 'Arange', 'Eye', 'Uniform', 'Normal', 'Unary', 'Binary', 'BinaryScalar',
  'Where', 'CopyStrided', 'ScatterAdd', 'Reduce', 'ArgReduce', 'Gemm', 'Cast', 'SetStream',
  'WindowMax', 'IndexTake', 'IndexScatterAdd',
] as const;
const opcode = (name: (typeof COMMANDS)[number]): number => COMMANDS.indexOf(name);
const ALLOC = opcode('Alloc'), FREE = opcode('Free'), FILL = opcode('Fill'), ARANGE = opcode('Arange');
const EYE = opcode('Eye'), UNIFORM = opcode('Uniform'), NORMAL = opcode('Normal'), UNARY = opcode('Unary');
const BINARY = opcode('Binary'), BINARY_SCALAR = opcode('BinaryScalar'), WHERE = opcode('Where');
const COPY_STRIDED = opcode('CopyStrided'), SCATTER_ADD = opcode('ScatterAdd'), REDUCE = opcode('Reduce');
const ARG_REDUCE = opcode('ArgReduce'), GEMM = opcode('Gemm'), CAST = opcode('Cast'), SET_STREAM = opcode('SetStream');
const WINDOW_MAX = opcode('WindowMax'), INDEX_TAKE = opcode('IndexTake'), INDEX_SCATTER_ADD = opcode('IndexScatterAdd');

/** Dtypes in the order of their codes in commands (kernels/common.h DType). */
const DTYPE_CODES = ['float32', 'float64', 'int32', 'int64', 'uint8', 'float16'] as const;

/** Doubles in the command buffer (512 KiB); the largest command (where, three rank-32 views) is ~210. */
const CAPACITY = 1 << 16;
/** The most dimensions of a shape or view (kernels/common.h kMaxRank). */
const MAX_RANK = 32;
/** One more than the largest handle the addon's table takes (handles.h kMaxHandles). */
const MAX_HANDLES = 2 ** 24;
/** Allocations this large run at once even in a batch, so running out of memory throws at the op. */
const EAGER_ALLOC_BYTES = 1 << 20;

/**
 * What TypeScript and the addon must agree on: commands and kernels travel as numbers, so a
 * difference would run the wrong command or kernel instead of failing.
 */
export interface Abi {
  /** Command names in opcode order. */
  commands: readonly string[];
  /** Kernel names in index order. */
  unary: readonly string[];
  binary: readonly string[];
  reduce: readonly string[];
  /** Dtype names in code order. */
  dtypes: readonly string[];
  maxRank: number;
  maxHandles: number;
}

/** This side's tables; the addon's (abi()) must equal them, or it is not loaded. */
export const ABI: Readonly<Abi> = Object.freeze({
  commands: COMMANDS,
  unary: UNARY_KERNELS,
  binary: BINARY_KERNELS,
  reduce: REDUCE_KERNELS,
  dtypes: DTYPE_CODES,
  maxRank: MAX_RANK,
  maxHandles: MAX_HANDLES,
});

const show = (v: unknown): string => (v === undefined ? 'missing' : JSON.stringify(v));

/** Where two lists first differ, as `[i] is .. in the addon but .. here`, or null. */
function listDifference(ours: readonly string[], theirs: unknown): string | null {
  if (!Array.isArray(theirs)) return theirs === undefined ? ' is missing in the addon' : ` is ${show(theirs)} in the addon, not a list`;
  for (let i = 0; i < Math.max(ours.length, theirs.length); i++) {
    if (theirs[i] !== ours[i]) return `[${i}] is ${show(theirs[i])} in the addon but ${show(ours[i])} here`;
  }
  return null;
}

/**
 * Throws, naming the first difference, unless `theirs` (what the addon's abi() returned) equals
 * `ours` field by field and entry by entry.
 */
export function checkAbi(ours: Readonly<Abi>, theirs: unknown): void {
  const t: Record<string, unknown> = theirs !== null && typeof theirs === 'object' ? (theirs as Record<string, unknown>) : {};
  for (const key of Object.keys(ours) as (keyof Abi)[]) {
    const mine = ours[key];
    const diff = typeof mine === 'number'
      ? (t[key] === mine ? null : ` is ${show(t[key])} in the addon but ${show(mine)} here`)
      : listDifference(mine, t[key]);
    if (diff !== null) {
      throw new Error(`native backend: the addon does not match src/engine/native.ts: ${key}${diff}; rebuild it (npm run build:native)`);
    }
  }
}

let raw: RawAddon | null | undefined;
const cmd = new Float64Array(CAPACITY);
let len = 0;
let batchDepth = 0;
let runScheduled = false;
let currentStream = 0;

/** The SIMD levels of the addon (gemm.h simd_level), best first. */
export const SIMD_LEVELS = ['avx512f', 'avx2', 'sse2'] as const;

/**
 * GRADSERVE_ISA, read once when the addon loads: caps the instruction set of the GEMM and SIMD
 * elementwise kernels (never above what the CPU has), so the lower paths can run, and be tested,
 * on a machine that has the higher ones. Unset or empty: the best the CPU supports.
 */
function applyIsaCap(a: RawAddon, want: string | undefined): void {
  if (want === undefined || want === '') return;
  if (!(SIMD_LEVELS as readonly string[]).includes(want)) {
    throw new Error(`GRADSERVE_ISA must be one of ${SIMD_LEVELS.join(', ')} (got '${want}')`);
  }
  a.setSimdCap(want);
}

function load(): RawAddon | null {
  if (raw !== undefined) return raw;
  for (const path of CANDIDATES) {
    try {
      const a = require(path) as RawAddon;
      checkAbi(ABI, typeof a.abi === 'function' ? a.abi() : undefined);
      applyIsaCap(a, process.env.GRADSERVE_ISA);
      a.setCommandBuffer(cmd);
      raw = a;
      return raw;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  raw = null;
  return raw;
}

function addon(): RawAddon {
  const a = load();
  if (!a) throw new Error('native backend: build/Release/gradserve.node is missing; run `npm run build:native`');
  return a;
}

/** Runs every pending command. */
/** Runs every pending command; then throws a failure kept from an earlier run, if any. */
function run(): void {
  const kept = deferredError;
  deferredError = null;
  try {
    execute();
  } finally {
    // The kept failure came first, so it is the one reported (it replaces a newer one, if any).
    if (kept !== null) throw kept;
  }
}

function execute(): void {
  if (len === 0) return;
  const n = len;
  len = 0;
  addon().run(n);
}

/** Called after each command: outside a batch it runs at once, so errors throw at their call. */
function issued(): void {
  if (batchDepth === 0) run();
}

/** A failure of a deferred run, rethrown by the next call that runs commands. */
let deferredError: unknown = null;

function scheduleRun(): void {
  if (batchDepth > 0 || runScheduled) return;
  runScheduled = true;
  queueMicrotask(() => {
    runScheduled = false;
    // An exception here would be uncaught and end the process: keep it for the next caller.
    try {
      if (batchDepth === 0) execute();
    } catch (err) {
      deferredError ??= err;
    }
  });
}

// ---- writing commands -------------------------------------------------------------------------

function begin(op: number, room: number): number {
  // Making room mid-batch: a failure there is an earlier command's, so it is kept for where the
  // batch's errors come out (its end, or the next read) rather than thrown by this call, which may
  // be a free that must not fail.
  if (len + room > CAPACITY) {
    try {
      execute();
    } catch (err) {
      deferredError ??= err;
    }
  }
  const start = len;
  cmd[start] = op;
  len = start + 2;
  return start;
}
function end(start: number): void {
  cmd[start + 1] = len - start;
}
function put(x: number): void {
  cmd[len++] = x;
}

class NativeStorage implements Storage {
  alive = true;
  constructor(readonly dtype: DType, public length: number, readonly h: number) {}
}

const freeHandles: number[] = [];
let nextHandle = 1;

function handle(s: Storage, name: string): number {
  if (!(s instanceof NativeStorage)) throw new TypeError(`native backend: argument \`${name}\` is not a native storage`);
  if (!s.alive) throw new Error(`native backend: argument \`${name}\` was freed`);
  return s.h;
}

function num(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new TypeError(`native backend: argument \`${name}\` must be a number`);
  return v;
}

function bool(v: unknown, name: string): number {
  if (typeof v !== 'boolean') throw new TypeError(`native backend: argument \`${name}\` must be a boolean`);
  return v ? 1 : 0;
}

const kernelIndex = (names: readonly string[]) => new Map(names.map((x, i) => [x, i]));
const UNARY_INDEX = kernelIndex(UNARY_KERNELS);
const BINARY_INDEX = kernelIndex(BINARY_KERNELS);
const REDUCE_INDEX = kernelIndex(REDUCE_KERNELS);

function opIndex(map: Map<string, number>, family: string, op: unknown): number {
  const k = map.get(op as string);
  if (k === undefined) throw new Error(`native backend: unknown ${family} kernel ${String(op)}`);
  return k;
}

/** A checked copy: read once, before any command is written (an element getter may run JS). */
function intList(xs: readonly number[], name: string): number[] {
  if (!Array.isArray(xs)) throw new TypeError(`native backend: argument \`${name}\` must be an array`);
  if (xs.length > MAX_RANK) throw new RangeError(`native backend: argument \`${name}\` has too many entries`);
  const copy = Array.from(xs);
  for (const x of copy) num(x, name);
  return copy;
}

/**
 * Views are read into scratch arrays before anything is written, so a getter that runs JS (and
 * may re-enter the backend) cannot interleave with a half-written command; a re-entrant call
 * reads into fresh arrays instead.
 */
const scratch = [0, 1, 2].map(() => new Float64Array(2 + 2 * MAX_RANK));
let reading = false;

function readView(v: View, slot: number, name: string, reuse: boolean): Float64Array {
  if (!v || typeof v !== 'object' || !Array.isArray(v.shape) || !Array.isArray(v.strides) || v.shape.length !== v.strides.length) {
    throw new TypeError(`native backend: argument \`${name}\` must be a view {shape, strides, offset}`);
  }
  const rank = v.shape.length;
  if (rank > MAX_RANK) throw new RangeError(`native backend: argument \`${name}\` has too many dimensions`);
  const p = reuse ? scratch[slot] : new Float64Array(2 + 2 * MAX_RANK);
  p[0] = rank;
  p[1] = num(v.offset, `${name}.offset`);
  for (let d = 0; d < rank; d++) {
    p[2 + d] = num(v.shape[d], `${name}.shape`);
    p[2 + rank + d] = num(v.strides[d], `${name}.strides`);
  }
  return p;
}

function readViews(views: View[], names: string[]): Float64Array[] {
  const reuse = !reading;
  reading = true;
  try {
    return views.map((v, i) => readView(v, i, names[i], reuse));
  } finally {
    if (reuse) reading = false;
  }
}

function putView(p: Float64Array): void {
  const n = 2 + 2 * p[0];
  cmd.set(n === p.length ? p : p.subarray(0, n), len);
  len += n;
}

const VIEW_ROOM = 2 + 2 * MAX_RANK;

// ---- the backend ------------------------------------------------------------------------------

function alloc(dtype: DType, length: number): Storage {
  if (!Object.hasOwn(DTYPE_INFO, dtype)) throw new TypeError(`native backend: unknown dtype ${String(dtype)}`);
  num(length, 'length');
  addon();
  if (freeHandles.length === 0 && nextHandle >= MAX_HANDLES) {
    throw new RangeError(`native backend: ${MAX_HANDLES - 1} buffers are live, the most the engine holds at once`);
  }
  const c = begin(ALLOC, 5);
  const h = freeHandles.pop() ?? nextHandle++;
  const s = new NativeStorage(dtype, length, h);
  put(h); put(DTYPE_CODES.indexOf(dtype)); put(length);
  end(c);
  try {
    if (batchDepth === 0 || length * itemSize(dtype) >= EAGER_ALLOC_BYTES) run();
  } catch (err) {
    // The failure may be another command's; freeing an empty handle is a no-op, so this is safe
    // either way.
    free(s);
    throw err;
  }
  return s;
}

function free(s: Storage): void {
  if (!(s instanceof NativeStorage)) throw new TypeError('native backend: argument `s` is not a native storage');
  if (!s.alive) return;
  // begin never throws (see there), so the FREE is always written once the state changes.
  const c = begin(FREE, 3);
  put(s.h);
  end(c);
  s.alive = false;
  s.length = 0; // as the reference: a freed buffer is empty
  // Handles are reused in command order, so the next ALLOC of this one follows its FREE.
  freeHandles.push(s.h);
  scheduleRun();
}

/** copyStrided and scatterAddStrided: one layout (x, the view, out); the view is x's or out's. */
function strided(opcode: number, x: Storage, v: View, vname: string, out: Storage): void {
  const [p] = readViews([v], [vname]);
  const hx = handle(x, 'x'), o = handle(out, 'out');
  const c = begin(opcode, 4 + VIEW_ROOM);
  put(hx); putView(p); put(o);
  end(c);
  issued();
}

/** indexTake and indexScatterAdd: one layout (x, idx, out). */
function indexed(opcode: number, x: Storage, idx: Storage, out: Storage): void {
  const hx = handle(x, 'x'), hi = handle(idx, 'idx'), o = handle(out, 'out');
  const c = begin(opcode, 5);
  put(hx); put(hi); put(o);
  end(c);
  issued();
}

/** A data transfer: it bypasses the command buffer, so every pending command runs first. */
function direct<T>(s: Storage, call: (a: RawAddon, h: number) => T): T {
  const h = handle(s, 's');
  run();
  return call(addon(), h);
}

/** Frees are commands: run those queued first, so the figures count them. */
const cache: BufferCache = {
  stats: () => { run(); return addon().allocatorStats(); },
  trim: (idleOnly = false) => { run(); return addon().allocatorTrim(idleOnly); },
  setLimit: (bytes, budget) => {
    run();
    // The addon takes integers up to 2^53; a larger bound is no bound.
    const clamp = (n: number) => Math.min(Math.max(0, Math.floor(n)), 2 ** 53);
    if (budget === undefined) addon().allocatorSetLimit(clamp(bytes));
    else addon().allocatorSetLimit(clamp(bytes), clamp(budget));
  },
};

/** What the addon's failed(h) codes mean (addon.cc Failed). */
const FAILURES = [null, 'intact', 'clobbered'] as const;

export const nativeBackend: Backend = {
  name: 'native',
  cache,
  alloc,
  free,
  writeBytes: (s, bytes) => direct(s, (a, h) => a.writeBytes(h, bytes)),
  readBytes: (s, offset, length) => direct(s, (a, h) => (offset === undefined ? a.readBytes(h) : a.readBytes(h, num(offset, 'offset'), num(length, 'length')))),
  writeNumbers: (s, data) => direct(s, (a, h) => a.writeNumbers(h, data)),
  readNumbers: (s) => direct(s, (a, h) => a.readNumbers(h)),
  fill(out, value) {
    const o = handle(out, 'out');
    const c = begin(FILL, 4);
    put(o); put(num(value, 'value'));
    end(c);
    issued();
  },
  arange(out, start, step) {
    const o = handle(out, 'out');
    const c = begin(ARANGE, 5);
    put(o); put(num(start, 'start')); put(num(step, 'step'));
    end(c);
    issued();
  },
  eye(out, rows, cols, k) {
    const o = handle(out, 'out');
    const c = begin(EYE, 6);
    put(o); put(num(rows, 'rows')); put(num(cols, 'cols')); put(num(k, 'k'));
    end(c);
    issued();
  },
  randomUniform(out, seed, counter, low, high) {
    const o = handle(out, 'out');
    const c = begin(UNIFORM, 7);
    put(o); put(num(seed, 'seed')); put(num(counter, 'counter')); put(num(low, 'low')); put(num(high, 'high'));
    end(c);
    issued();
  },
  randomNormal(out, seed, counter, loc, scale) {
    const o = handle(out, 'out');
    const c = begin(NORMAL, 7);
    put(o); put(num(seed, 'seed')); put(num(counter, 'counter')); put(num(loc, 'loc')); put(num(scale, 'scale'));
    end(c);
    issued();
  },
  unary(op, x, out) {
    const k = opIndex(UNARY_INDEX, 'unary', op);
    const hx = handle(x, 'x'), o = handle(out, 'out');
    const c = begin(UNARY, 5);
    put(k); put(hx); put(o);
    end(c);
    issued();
  },
  binary(op, a, av, b, bv, out) {
    const k = opIndex(BINARY_INDEX, 'binary', op);
    const [pa, pb] = readViews([av, bv], ['av', 'bv']);
    const ha = handle(a, 'a'), hb = handle(b, 'b'), o = handle(out, 'out');
    const c = begin(BINARY, 6 + 2 * VIEW_ROOM);
    put(k); put(ha); putView(pa); put(hb); putView(pb); put(o);
    end(c);
    issued();
  },
  binaryScalar(op, x, scalar, scalarFirst, out) {
    const k = opIndex(BINARY_INDEX, 'binary', op);
    const hx = handle(x, 'x'), o = handle(out, 'out');
    const c = begin(BINARY_SCALAR, 7);
    put(k); put(hx); put(num(scalar, 'scalar')); put(bool(scalarFirst, 'scalarFirst')); put(o);
    end(c);
    issued();
  },
  where(cond, cv, a, av, b, bv, out) {
    const [pc, pa, pb] = readViews([cv, av, bv], ['cv', 'av', 'bv']);
    const hc = handle(cond, 'cond'), ha = handle(a, 'a'), hb = handle(b, 'b'), o = handle(out, 'out');
    const c = begin(WHERE, 6 + 3 * VIEW_ROOM);
    put(hc); putView(pc); put(ha); putView(pa); put(hb); putView(pb); put(o);
    end(c);
    issued();
  },
  copyStrided: (x, xv, out) => strided(COPY_STRIDED, x, xv, 'xv', out),
  scatterAddStrided: (x, out, ov) => strided(SCATTER_ADD, x, ov, 'ov', out),
  windowMax(x, xv, kdims, out, idx) {
    const [p] = readViews([xv], ['xv']);
    const hx = handle(x, 'x'), o = handle(out, 'out'), hi = handle(idx, 'idx');
    const c = begin(WINDOW_MAX, 6 + VIEW_ROOM);
    put(hx); putView(p); put(num(kdims, 'kdims')); put(o); put(hi);
    end(c);
    issued();
  },
  indexTake: (x, idx, out) => indexed(INDEX_TAKE, x, idx, out),
  indexScatterAdd: (x, idx, out) => indexed(INDEX_SCATTER_ADD, x, idx, out),
  reduce(op, x, shape, axes, out) {
    const k = opIndex(REDUCE_INDEX, 'reduce', op);
    const sh = intList(shape, 'shape');
    const ax = intList(axes, 'axes');
    const hx = handle(x, 'x'), o = handle(out, 'out');
    const c = begin(REDUCE, 7 + 2 * MAX_RANK);
    put(k); put(hx);
    put(sh.length); for (const d of sh) put(d);
    put(ax.length); for (const d of ax) put(d);
    put(o);
    end(c);
    issued();
  },
  argReduce(op, x, shape, axis, out) {
    if (op !== 'argmax' && op !== 'argmin') throw new Error(`native backend: unknown argReduce kernel ${String(op)}`);
    const sh = intList(shape, 'shape');
    const ax = num(axis, 'axis');
    const hx = handle(x, 'x'), o = handle(out, 'out');
    const c = begin(ARG_REDUCE, 7 + MAX_RANK);
    put(op === 'argmax' ? 1 : 0); put(hx);
    put(sh.length); for (const d of sh) put(d);
    put(ax); put(o);
    end(c);
    issued();
  },
  gemm(a, b, out, batch, m, n, k, transA, transB, strideA, strideB) {
    const ha = handle(a, 'a'), hb = handle(b, 'b'), o = handle(out, 'out');
    const c = begin(GEMM, 13);
    put(ha); put(hb); put(o);
    put(num(batch, 'batch')); put(num(m, 'm')); put(num(n, 'n')); put(num(k, 'k'));
    put(bool(transA, 'transA')); put(bool(transB, 'transB'));
    put(num(strideA, 'strideA')); put(num(strideB, 'strideB'));
    end(c);
    issued();
  },
  cast(x, out) {
    const hx = handle(x, 'x'), o = handle(out, 'out');
    const c = begin(CAST, 4);
    put(hx); put(o);
    end(c);
    issued();
  },
  drain() {
    run();
  },
  flush(stream) {
    run();
    return addon().flush(stream);
  },
  setDeadline(stream, budgetMs) {
    addon().setDeadline(num(stream, 'stream'), num(budgetMs, 'budgetMs'));
  },
  clearDeadline(stream) {
    return addon().clearDeadline(num(stream, 'stream'));
  },
  failed: (s) => direct(s, (a, h) => FAILURES[a.failed(h)] ?? null),
  clearFailure: (s) => direct(s, (a, h) => a.clearFailure(h)),
  withStream<T>(stream: number, fn: () => T): T {
    const prev = currentStream;
    setStream(stream);
    batchDepth++;
    let ok = false;
    try {
      const value = fn();
      ok = true;
      return value;
    } finally {
      batchDepth--;
      setStream(prev);
      if (batchDepth === 0) {
        // When fn failed, its error is the one to report; the batch still runs (its frees and
        // allocations must happen).
        if (ok) run();
        else try { run(); } catch { /* fn's error wins */ }
      }
    }
  },
};

function setStream(tag: number): void {
  currentStream = tag;
  const c = begin(SET_STREAM, 3);
  put(tag);
  end(c);
}

/**
 * Tests only: runs hand-written command doubles (after the pending commands), so tests can show
 * the addon rejects malformed frames, fields and handles without crashing.
 */
export function runRawCommands(doubles: readonly number[]): void {
  run();
  if (doubles.length > CAPACITY) throw new RangeError('native backend: too many command doubles');
  cmd.set(doubles, 0);
  len = doubles.length;
  run();
}

/** The addon's diagnostics, or null when it has not been built. Other load failures throw. */
export function loadNativeAddon(): NativeAddon | null {
  const a = load();
  if (!a) return null;
  const after = <A extends unknown[], R>(f: (...args: A) => R) => (...args: A): R => { run(); return f(...args); };
  return {
    sync: after(() => a.sync()),
    pendingWork: after(() => a.pendingWork()),
    streamStats: after(() => a.streamStats()),
    setInlineLimit: after((limit: number) => a.setInlineLimit(limit)),
    abi: () => a.abi(),
    nativeBytesLive: after(() => a.nativeBytesLive()),
    getThreads: () => a.getThreads(),
    setThreads: after((n: number) => a.setThreads(n)),
    simdLevel: () => a.simdLevel(),
    setSimdCap: after((level: string) => a.setSimdCap(level)),
  };
}

/** The native backend, or null (without throwing) when the addon has not been built. */
export function loadNativeBackend(): Backend | null {
  return load() ? nativeBackend : null;
}
