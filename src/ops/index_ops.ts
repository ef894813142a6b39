/**
 * Indexing by arrays of indices (take, pick, one_hot, Embedding) and by ranges (slice, slice_axis,
 * flip). Index arrays may be floats or integers of any dtype, whatever the data's, as in MXNet:
 * float indices are floored, then clipped (or wrapped) to the axis. take and pick are composites of a one-hot mask, which their forward also returns as a
 * hidden output so that the vjp reuses it instead of rebuilding it.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { OptDType } from './attrs.js';
import { F } from './dispatch.js';
import { indexView } from './shape.js';
import { normAxis } from '../engine/kernels.js';
import { isFloat } from '../engine/backend.js';
import { permutedView } from '../engine/layout.js';
import { shapeStr, sizeOf, type NDArray } from '../engine/ndarray.js';
import { fail } from '../errors.js';

const Mode = z.enum(['clip', 'wrap']).default('clip').describe('out-of-range indices: clip to the axis, or wrap around it');

/**
 * Integer indices into an axis of size n, as floats: floor, then clip or wrap. Integer indices
 * are taken as float64 first (exact: an axis is shorter than 2^53), where floor and the wrap's
 * floored division mean what they say.
 */
export function indexK(ctx: OpContext, idx0: NDArray, n: number, mode: 'clip' | 'wrap'): NDArray {
  const site = { op: ctx.op, arg: 'indices' };
  const idx = isFloat(idx0.dtype) ? idx0 : ctx.k.cast(idx0, 'float64');
  if (mode === 'clip') return ctx.k.unary('floor', ctx.k.binary('minimum', ctx.k.binary('maximum', idx, 0, site), n - 1, site));
  const t = ctx.k.unary('floor', idx);
  const q = ctx.k.unary('floor', ctx.k.binary('div', t, n, site));
  return ctx.k.binary('sub', t, ctx.k.binary('mul', q, n, site), site);
}

/** [..., depth] with 1 where the last axis equals idx (compared exactly), else 0. */
export function oneHotK(ctx: OpContext, idx: NDArray, depth: number): NDArray {
  const ar = ctx.k.arange(idx.dtype, depth, 0, 1);
  return ctx.k.binary('eq', ctx.k.view(idx, [...idx.shape, 1]), ar, { op: ctx.op, arg: 'indices' });
}

/** The permutation that moves `axis` to the front, and its inverse. */
function frontPerm(rank: number, axis: number): { p: number[]; inv: number[] } {
  const p = [axis, ...[...Array(rank).keys()].filter((d) => d !== axis)];
  const inv = new Array<number>(rank);
  p.forEach((a, i) => { inv[a] = i; });
  return { p, inv };
}

function permuteK(ctx: OpContext, x: NDArray, p: number[]): NDArray {
  return p.every((a, i) => a === i) ? x : ctx.k.gather(x, permutedView(x.shape, p));
}

/** take's forward: [pre, idx..., post] = a[pre, idx, post], through a one-hot GEMM. */
function takeK(ctx: OpContext, a0: NDArray, indices: NDArray, axis: number, mode: 'clip' | 'wrap'): NDArray[] {
  const n = a0.shape[axis];
  if (n === 0) throw fail('shape_mismatch', `\`${ctx.op}\` cannot index axis ${axis} of size 0`, { arg: 'indices' });
  // The GEMM is a float kernel: integer data goes through float64, exact up to 2^53, and back.
  const a = isFloat(a0.dtype) ? a0 : ctx.k.cast(a0, 'float64');
  const at = indexK(ctx, indices, n, mode);
  const oh = oneHotK(ctx, at.dtype === a.dtype ? at : ctx.k.cast(at, a.dtype), n);
  const I = indices.size;
  const { p } = frontPerm(a.shape.length, axis);
  const front = permuteK(ctx, a, p);
  const rest = front.shape.slice(1);
  const out = ctx.k.gemm(oh, front, { batch: 1, m: I, n: sizeOf(rest), k: n, transA: false, transB: false, strideA: 0, strideB: 0 }, [...indices.shape, ...rest]);
  // [idx..., pre..., post...] -> [pre..., idx..., post...]
  const r = indices.shape.length;
  const order = [...Array(axis).keys()].map((d) => r + d);
  const perm = [...order, ...[...Array(r).keys()], ...rest.slice(axis).map((_, j) => r + axis + j)];
  const res = permuteK(ctx, out, perm);
  return [res.dtype === a0.dtype ? res : ctx.k.cast(res, a0.dtype), ctx.k.view(oh, [I, n])];
}

/** take's gradient with respect to `a`, with table ops: the one-hot transposed times g. */
function takeGrad(g: NDArray, oh: NDArray, aShape: readonly number[], idxRank: number, axis: number): NDArray {
  const rank = aShape.length;
  const r = idxRank;
  // g: [pre..., idx..., post...] -> [idx..., pre..., post...]
  const perm = [...[...Array(r).keys()].map((j) => axis + j), ...[...Array(axis).keys()], ...[...Array(rank - 1 - axis).keys()].map((j) => axis + r + j)];
  const gi = perm.every((a, i) => a === i) ? g : F.transpose(g, { axes: perm });
  const n = aShape[axis];
  const g2 = F.reshape(gi, { shape: [oh.shape[0], -1] });
  const dFront = F.dot(oh, g2, { transpose_a: true });
  const { p, inv } = frontPerm(rank, axis);
  const front = F.reshape(dFront, { shape: [n, ...p.slice(1).map((d) => aShape[d])] });
  return inv.every((a, i) => a === i) ? front : F.transpose(front, { axes: inv });
}

defineOp({
  name: 'take',
  doc: 'Elements of `a` at integer `indices` along `axis`: shape a.shape[:axis] + indices.shape + a.shape[axis+1:].',
  inputs: ['a', 'indices'],
  dtypes: 'numeric',
  positional: ['axis', 'mode'],
  attrs: z.object({ axis: z.number().int().default(0), mode: Mode }).strict(),
  visibleOutputs: 1,
  save: { outputs: true },
  domain: [0, 2.9],
  examples: [{ shapes: [[3, 4], [2, 2]] }, { shapes: [[2, 3, 4], [5]], attrs: { axis: 1 } }, { shapes: [[2, 3], [4]], attrs: { axis: -1, mode: 'wrap' } }],
  forward(ctx, [a, indices], at) {
    return takeK(ctx, a, indices, normAxis(at.axis, a.shape.length, { op: 'take', arg: 'axis' }), at.mode);
  },
  vjp({ g, y, attrs, shapes }) {
    const shape = shapes[0]!;
    return [takeGrad(g[0], y[1]!, shape, shapes[1]!.length, normAxis(attrs.axis, shape.length, { op: 'take', arg: 'axis' })), null];
  },
});

defineOp({
  name: 'Embedding',
  aliases: ['embedding'],
  doc: 'Rows of `weight` ([input_dim, output_dim]) at the integer indices `data`: shape data.shape + [output_dim].',
  inputs: ['data', 'weight'],
  dtypes: ['numeric', 'float'],
  attrs: z.object({ input_dim: z.number().int().min(1), output_dim: z.number().int().min(1), dtype: OptDType, sparse_grad: z.boolean().default(false) }).strict(),
  visibleOutputs: 1,
  save: { outputs: true },
  domain: [0, 3.9],
  examples: [{ shapes: [[2, 3], [4, 5]], attrs: { input_dim: 4, output_dim: 5 } }],
  forward(ctx, [idx, w], a) {
    if (w.shape.length !== 2 || w.shape[0] !== a.input_dim || w.shape[1] !== a.output_dim) {
      throw fail('shape_mismatch', `\`weight\` of \`Embedding\` must have shape [${a.input_dim}, ${a.output_dim}] (input_dim, output_dim), got ${shapeStr(w.shape)}`, { arg: 'weight' });
    }
    return takeK(ctx, w, idx, 0, 'clip');
  },
  vjp: ({ g, y, shapes }) => [null, takeGrad(g[0], y[1]!, shapes[1]!, shapes[0]!.length, 0)],
});

defineOp({
  name: 'pick',
  doc: 'data[..., index, ...] along `axis` for each position of `index` (data\'s shape without that axis).',
  inputs: ['data', 'index'],
  dtypes: 'numeric',
  positional: ['axis', 'keepdims'],
  attrs: z.object({ axis: z.number().int().nullable().default(-1), keepdims: z.boolean().default(false), mode: Mode }).strict(),
  visibleOutputs: 1,
  save: { outputs: true },
  domain: [0, 3.9],
  examples: [{ shapes: [[3, 4], [3]] }, { shapes: [[2, 4, 3], [2, 3]], attrs: { axis: 1, keepdims: true } }],
  forward(ctx, [x, idx], a) {
    if (a.axis === null) throw fail('invalid_attribute', '`axis` of `pick` cannot be None here: flatten the data first', { attribute: 'axis' });
    const ax = normAxis(a.axis, x.shape.length, { op: 'pick', arg: 'axis' });
    const kept = x.shape.map((d, i) => (i === ax ? 1 : d));
    const dropped = x.shape.filter((_, i) => i !== ax);
    const fits = (s: readonly number[], t: readonly number[]) => s.length === t.length && s.every((d, i) => d === t[i]);
    if (!fits(idx.shape, dropped) && !fits(idx.shape, kept) && !(dropped.length === 0 && idx.size === 1)) {
      throw fail('shape_mismatch', `\`index\` of \`pick\` must have shape ${shapeStr(dropped)} (data ${shapeStr(x.shape)} without axis ${ax}), got ${shapeStr(idx.shape)}`, { arg: 'index' });
    }
    const n = x.shape[ax];
    const k = indexK(ctx, idx, n, a.mode);
    const at = ctx.k.view(k.dtype === x.dtype ? k : ctx.k.cast(k, x.dtype), kept);
    const ar = ctx.k.arange(x.dtype, n, 0, 1);
    const mask = ctx.k.binary('eq', at, ctx.k.view(ar, x.shape.map((d, i) => (i === ax ? d : 1))), { op: 'pick', arg: 'index' });
    const y = ctx.k.reduce('sum', ctx.k.binary('mul', x, mask, { op: 'pick' }), [ax], a.keepdims);
    return [y, mask];
  },
  vjp({ g, y, attrs, shapes }) {
    const shape = shapes[0]!;
    const ax = normAxis(attrs.axis ?? -1, shape.length, { op: 'pick', arg: 'axis' });
    const kept = shape.map((d, i) => (i === ax ? 1 : d));
    return [F.multiply(F.reshape(g[0], { shape: kept }), y[1]!), null];
  },
});

defineOp({
  name: 'one_hot',
  doc: 'indices.shape + [depth]: on_value where the last axis equals the index, off_value elsewhere (out-of-range indices give a row of off_value).',
  inputs: ['indices'],
  dtypes: 'numeric',
  positional: ['depth', 'on_value', 'off_value'],
  attrs: z.object({ depth: z.number().int().min(0), on_value: z.number().default(1), off_value: z.number().default(0), dtype: OptDType }).strict(),
  forward(ctx, [idx], a) {
    // MXNet's default dtype is float32 whatever the indices; float indices keep theirs here
    // (a float64 session gets float64), integer ones give the session's default.
    const dtype = a.dtype ?? (isFloat(idx.dtype) ? idx.dtype : ctx.defaultDtype);
    if (dtype === 'float16') throw fail('invalid_attribute', '`dtype` of `one_hot` cannot be float16 (storage only): make it float32 and astype', { attribute: 'dtype' });
    const fl = isFloat(idx.dtype) ? ctx.k.unary('floor', idx) : idx;
    const src = fl.dtype === dtype ? fl : ctx.k.cast(fl, dtype);
    const oh = oneHotK(ctx, src, a.depth);
    if (a.on_value === 1 && a.off_value === 0) return oh;
    return ctx.k.binary('add', ctx.k.binary('mul', oh, a.on_value - a.off_value, { op: 'one_hot' }), a.off_value, { op: 'one_hot' });
  },
});

/**
 * Flat positions as int64: what the index kernels take. Float positions (the generated tests
 * give floats) are floored first; the kernel refuses any outside the data.
 */
function positionsK(ctx: OpContext, idx: NDArray): NDArray {
  if (idx.dtype === 'int64') return idx;
  return ctx.k.cast(isFloat(idx.dtype) ? ctx.k.unary('floor', idx) : idx, 'int64');
}

defineOp({
  name: '_index_take',
  internal: true,
  doc: 'data.flat[index]: elements of data at flat positions, shaped as index (max pooling\'s gradient of its gradient); its adjoint is _index_scatter_add.',
  inputs: ['data', 'index'],
  dtypes: ['float', 'numeric'],
  save: { inputs: [1] },
  domain: [0, 2.9],
  examples: [{ shapes: [[3], [5]] }, { shapes: [[3, 1], [2, 2]] }],
  forward: (ctx, [x, idx]) => ctx.k.indexTake(x, positionsK(ctx, idx)),
  vjp: ({ g, x, shapes }) => [F._index_scatter_add(g[0], x[1] as NDArray, { shape: [...shapes[0]!] }), null],
});

defineOp({
  name: '_index_scatter_add',
  internal: true,
  doc: 'zeros(shape) with data[i] added at flat position index[i] (max pooling\'s gradient); the adjoint of _index_take.',
  inputs: ['data', 'index'],
  dtypes: ['float', 'numeric'],
  attrs: z.object({ shape: z.array(z.number().int().min(0)).max(32) }).strict(),
  save: { inputs: [1] },
  domain: [0, 2.9],
  examples: [{ shapes: [[5], [5]], attrs: { shape: [3] } }, { shapes: [[2, 2], [2, 2]], attrs: { shape: [3, 1] } }],
  forward(ctx, [x, idx], a) {
    if (x.size !== idx.size) throw fail('shape_mismatch', `\`data\` ${shapeStr(x.shape)} and \`index\` ${shapeStr(idx.shape)} of \`_index_scatter_add\` must have one position per element`, { arg: 'index' });
    return ctx.k.indexScatterAdd(x, positionsK(ctx, idx), a.shape);
  },
  vjp: ({ g, x }) => [F._index_take(g[0], x[1] as NDArray), null],
});

// Range slicing: MXNet's slice and slice_axis, and flip, as views read by getitem's machinery.
const Bound = z.array(z.number().int().nullable()).max(32);
const intOrList = z.union([z.number().int().transform((d) => [d]), z.array(z.number().int()).max(32)]);

type Key = { start: number | null; stop: number | null; step: number | null }[];

function rangeOp(name: string, spec: Omit<Parameters<typeof defineOp>[0], 'forward' | 'vjp' | 'name'>, key: (shape: readonly number[], a: any) => Key) {
  defineOp({
    dtypes: 'any',
    ...spec,
    name,
    forward: (ctx, [x], a) => ctx.k.gather(x, indexView(x.shape, key(x.shape, a), name)),
    vjp: ({ g, shapes, attrs }) => [F._getitem_backward(g[0], { key: key(shapes[0]!, attrs), shape: [...shapes[0]!] })],
  });
}

rangeOp('slice', {
  aliases: ['crop'],
  doc: 'x[begin[0]:end[0]:step[0], ...] over the leading axes; None entries take the whole axis (MXNet slice).',
  inputs: ['data'],
  positional: ['begin', 'end', 'step'],
  attrs: z.object({ begin: Bound, end: Bound, step: Bound.default([]) }).strict(),
  examples: [{ shapes: [[4, 5]], attrs: { begin: [1, null], end: [3, null] } }, { shapes: [[4, 5]], attrs: { begin: [null, 4], end: [null, 0], step: [2, -2] } }],
}, (shape, a: { begin: (number | null)[]; end: (number | null)[]; step: (number | null)[] }) => {
  if (a.begin.length !== a.end.length) throw fail('invalid_attribute', `\`begin\` and \`end\` of \`slice\` must have the same length (${a.begin.length} vs ${a.end.length})`, { attribute: 'end' });
  if (a.step.length && a.step.length !== a.begin.length) throw fail('invalid_attribute', `\`step\` of \`slice\` must be empty or as long as \`begin\` (${a.begin.length})`, { attribute: 'step' });
  if (a.begin.length > shape.length) throw fail('invalid_attribute', `\`begin\` of \`slice\` has ${a.begin.length} entries for data of rank ${shape.length}`, { attribute: 'begin' });
  return a.begin.map((b, i) => {
    const step = a.step[i] ?? null;
    if (step === 0) throw fail('invalid_attribute', `\`step\` of \`slice\` cannot be 0 (axis ${i})`, { attribute: 'step' });
    return { start: b, stop: a.end[i], step };
  });
});

rangeOp('slice_axis', {
  doc: 'x[begin:end] along one `axis`; end None means to the end of the axis.',
  inputs: ['data'],
  positional: ['axis', 'begin', 'end'],
  attrs: z.object({ axis: z.number().int(), begin: z.number().int(), end: z.number().int().nullable() }).strict(),
  examples: [{ shapes: [[3, 5]], attrs: { axis: 1, begin: 1, end: -1 } }, { shapes: [[4, 2]], attrs: { axis: 0, begin: 2, end: null } }],
}, (shape, a: { axis: number; begin: number; end: number | null }) => {
  const ax = normAxis(a.axis, shape.length, { op: 'slice_axis', arg: 'axis' });
  const n = shape[ax];
  const b = a.begin < 0 ? a.begin + n : a.begin;
  const e = a.end === null ? n : a.end < 0 ? a.end + n : a.end;
  if (b < 0 || b > n) throw fail('invalid_attribute', `\`begin\` of \`slice_axis\` (${a.begin}) is out of range for axis ${ax} of size ${n}`, { attribute: 'begin' });
  if (e < b || e > n) throw fail('invalid_attribute', `\`end\` of \`slice_axis\` (${a.end}) must lie in [begin, ${n}] for axis ${ax}`, { attribute: 'end' });
  return shape.map((_, d) => (d === ax ? { start: b, stop: e, step: 1 } : { start: null, stop: null, step: null }));
});

rangeOp('flip', {
  aliases: ['reverse'],
  doc: 'Reverses the order of elements along `axis` (an int or several).',
  inputs: ['data'],
  positional: ['axis'],
  attrs: z.object({ axis: intOrList }).strict(),
  examples: [{ shapes: [[3, 4]], attrs: { axis: 1 } }, { shapes: [[2, 3, 4]], attrs: { axis: [0, 2] } }],
}, (shape, a: { axis: number[] }) => {
  const axes = a.axis.map((ax) => normAxis(ax, shape.length, { op: 'flip', arg: 'axis' }));
  return shape.map((_, d) => ({ start: null, stop: null, step: axes.includes(d) ? -1 : null }));
});
