/**
 * Anomaly mode: the first op whose output holds NaN or Inf stops the program with
 * `anomaly_detected`, naming the op, where it was recorded and what it read. Forward ops are
 * checked by the dispatcher as they run; the backward walk checks what each tape node's gradient
 * rule made (checkGradients), not every op inside the rule, since a rule may make a non-finite
 * value it then masks. Each check waits for the op's kernels and reads their result: anomaly
 * mode is a debugging mode, slower by design.
 */
import type { NDArray } from '../engine/ndarray.js';
import { DTYPE_INFO } from '../engine/backend.js';
import type { Kernels } from '../engine/kernels.js';
import { siteJson, type StatementSite } from '../program/site.js';
import { fail } from '../errors.js';
import type { OpDef, Value } from './registry.js';

/** A tape node as this layer sees it (the autograd layer's Node has these members). */
export interface NodeLike {
  readonly id: number;
  readonly op: { readonly name: string; readonly inputs: readonly string[]; readonly variadic?: boolean };
  readonly tape: { readonly id: string };
  readonly site: StatementSite | null;
}

/** One backward step as the walk hands it over: the node, what its rule read, what it made. */
export interface GradientStep {
  node: NodeLike;
  /** Gradients of the node's outputs. */
  g: readonly NDArray[];
  /** Saved inputs and outputs (undefined where not saved). */
  x: readonly (Value | undefined)[];
  y: readonly (NDArray | undefined)[];
  shapes: readonly (readonly number[] | null)[];
  dtypes: readonly (string | null)[];
  /** The gradient sent to input i (after summing broadcast axes), where one is sent. */
  dx: readonly (NDArray | null)[];
}

type JsonNum = number | 'NaN' | 'Infinity' | '-Infinity';

const jsonNum = (v: number): JsonNum => (Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v);

interface Counts { nan: number; inf: number; finite: number; min: number; max: number; sum: number }

/** Bytes read per step: arrays of any size are scanned without a copy of the whole. */
const CHUNK_BYTES = 4 * 2 ** 20;
/** Integer arrays are read whole (as float64) up to this many elements; larger ones get no statistics. */
const MAX_INT_READ = 2 ** 22;

function count(values: ArrayLike<number>, c: Counts): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== v) c.nan++;
    else if (v === Infinity || v === -Infinity) c.inf++;
    else {
      c.finite++;
      c.sum += v;
      if (v < c.min) c.min = v;
      if (v > c.max) c.max = v;
    }
  }
}

/** NaN and Inf counts and the range of the finite elements; null for dtypes not scanned. */
function scan(k: Kernels, a: NDArray): Counts | null {
  const c: Counts = { nan: 0, inf: 0, finite: 0, min: Infinity, max: -Infinity, sum: 0 };
  if (a.dtype === 'float32' || a.dtype === 'float64') {
    const item = DTYPE_INFO[a.dtype].bytes;
    const total = a.size * item;
    for (let off = 0; off < total; off += CHUNK_BYTES) {
      let bytes = k.readBytes(a, off, Math.min(CHUNK_BYTES, total - off));
      if (bytes.byteOffset % item !== 0) bytes = bytes.slice();
      const n = bytes.byteLength / item;
      count(a.dtype === 'float32' ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float64Array(bytes.buffer, bytes.byteOffset, n), c);
    }
    return c;
  }
  if (a.size > MAX_INT_READ) return null;
  count(k.read(a), c);
  return c;
}

/**
 * True when some element is NaN or Inf. The sum of the elements is finite only if all are, so
 * one reduction and a read of one number settle the common case; a sum that overflowed is
 * settled by a scan.
 */
function nonFinite(k: Kernels, a: NDArray): boolean {
  if (DTYPE_INFO[a.dtype].kind !== 'float' || a.size === 0) return false;
  const total = k.reduce('sum', a, a.shape.map((_, i) => i), false);
  if (Number.isFinite(k.read(total)[0])) return false;
  const c = scan(k, a)!;
  return c.nan + c.inf > 0;
}

function stats(k: Kernels, a: NDArray): Record<string, unknown> {
  const c = scan(k, a);
  const out: Record<string, unknown> = { shape: [...a.shape], dtype: a.dtype };
  if (!c) return out;
  const any = c.finite > 0;
  return { ...out, min: any ? c.min : null, max: any ? c.max : null, mean: any ? jsonNum(c.sum / c.finite) : null, nan: c.nan, inf: c.inf };
}

function describe(k: Kernels, v: Value | undefined, extra: Record<string, unknown>): Record<string, unknown> {
  if (v === undefined) return { ...extra, saved: false };
  if (typeof v === 'number') return { ...extra, value: jsonNum(v) };
  return { ...extra, ...stats(k, v) };
}

function badness(k: Kernels, a: NDArray): { nan: number; inf: number } {
  const c = scan(k, a)!;
  return { nan: c.nan, inf: c.inf };
}

function argName(op: NodeLike['op'], i: number): string {
  return op.variadic ? `${op.inputs[0] ?? 'data'}[${i}]` : op.inputs[i] ?? `input ${i}`;
}

function what(b: { nan: number; inf: number }, size: number): string {
  const parts = [b.nan ? `${b.nan} NaN` : '', b.inf ? `${b.inf} Inf` : ''].filter(Boolean);
  return `${parts.join(' and ')} (of ${size} element${size === 1 ? '' : 's'})`;
}

/** `line` of the running statement, and the site of the node, as answers give them. */
function where(running: StatementSite | null, recorded: StatementSite | null): Record<string, unknown> {
  return { line: running?.line ?? null, recorded_at: siteJson(recorded) };
}

/** After a forward op (outside a backward walk): a 422 when an output is not finite. */
export function checkForward(k: Kernels, def: OpDef, inputs: Value[], outs: NDArray[], running: StatementSite | null, node: NodeLike | null): void {
  const bad = outs.findIndex((o) => nonFinite(k, o));
  if (bad < 0) return;
  const counts = badness(k, outs[bad]);
  const line = running?.line ? ` at line ${running.line}` : '';
  throw fail('anomaly_detected', `anomaly in forward: \`${def.name}\`${line} produced ${what(counts, outs[bad].size)} in output ${bad}`, {
    op: def.name,
    phase: 'forward',
    tape_node: node?.id ?? null,
    tape: node?.tape.id ?? null,
    ...where(running, running),
    inputs: inputs.map((v, i) => describe(k, v, { arg: argName(def, i) })),
    outputs: outs.map((o, i) => ({ index: i, shape: [...o.shape], dtype: o.dtype, ...(DTYPE_INFO[o.dtype].kind === 'float' ? badness(k, o) : {}) })),
  });
}

/** After a backward step: a 422 when a gradient it sends is not finite. */
export function checkGradients(k: Kernels, step: GradientStep, running: StatementSite | null): void {
  const { node } = step;
  const bad = step.dx.findIndex((d) => d !== null && nonFinite(k, d));
  if (bad < 0) return;
  const d = step.dx[bad]!;
  const counts = badness(k, d);
  const at = node.site?.line ? `, recorded at line ${node.site.line}` : '';
  throw fail('anomaly_detected', `anomaly in backward: the gradient of \`${node.op.name}\` (tape node ${node.id}${at}) for \`${argName(node.op, bad)}\` has ${what(counts, d.size)}`, {
    op: node.op.name,
    phase: 'backward',
    tape_node: node.id,
    tape: node.tape.id,
    ...where(running, node.site),
    inputs: step.shapes.map((shape, i) => describe(k, step.x[i], { arg: argName(node.op, i), ...(shape ? { shape: [...shape], dtype: step.dtypes[i] } : {}) })),
    results: step.y.map((y, i) => describe(k, y, { index: i })),
    output_grads: step.g.map((g, i) => describe(k, g, { index: i })),
    grads: step.dx.flatMap((g, i) => (g ? [{ arg: argName(node.op, i), shape: [...g.shape], dtype: g.dtype, ...badness(k, g) }] : [])),
  });
}
