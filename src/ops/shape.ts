/**
 * Shape and indexing ops. Reshapes are views of the same buffer (no copy); transposes, slices and
 * broadcasts gather a strided view. Each gradient is the adjoint op, itself in the table.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { Shape } from './attrs.js';
import { F } from './dispatch.js';
import { normAxis, broadcastShapes } from '../engine/kernels.js';
import { broadcastView, contiguousStrides, permutedView } from '../engine/layout.js';
import { sizeOf, shapeStr, type NDArray } from '../engine/ndarray.js';
import type { View } from '../engine/backend.js';
import { fail } from '../errors.js';

/** MXNet's reshape: 0 copies the input's dim, -1 infers one dim, -2 copies all remaining dims. */
export function resolveReshape(from: readonly number[], spec: readonly number[], op = 'reshape'): number[] {
  const out: number[] = [];
  let infer = -1;
  let i = 0;
  for (let j = 0; j < spec.length; j++) {
    const s = spec[j];
    if (s > 0) { out.push(s); i++; }
    else if (s === 0) {
      if (i >= from.length) throw fail('invalid_attribute', `\`shape\` of \`${op}\`: 0 at position ${j} copies a dim the input ${shapeStr(from)} does not have`, { attribute: 'shape' });
      out.push(from[i++]);
    } else if (s === -1) {
      if (infer >= 0) throw fail('invalid_attribute', `\`shape\` of \`${op}\` may hold -1 only once`, { attribute: 'shape' });
      infer = out.length; out.push(1); i++;
    } else if (s === -2) { out.push(...from.slice(i)); i = from.length; }
    else throw fail('invalid_attribute', `\`shape\` of \`${op}\` holds ${s}; allowed: positive sizes, 0, -1 and -2`, { attribute: 'shape' });
  }
  const total = sizeOf(from);
  if (infer >= 0) {
    const rest = sizeOf(out);
    if (rest === 0 || total % rest !== 0) throw fail('shape_mismatch', `\`${op}\` cannot infer -1 to fit ${total} elements into ${shapeStr(spec)}`, { attribute: 'shape' });
    out[infer] = total / rest;
  }
  if (sizeOf(out) !== total) throw fail('shape_mismatch', `\`${op}\` cannot reshape ${shapeStr(from)} (${total} elements) to ${shapeStr(out)} (${sizeOf(out)} elements)`, { attribute: 'shape' });
  return out.length ? out : [1];
}

const ReshapeSpec = z.union([z.number().int().transform((d) => [d]), z.array(z.number().int()).max(32)]);

defineOp({
  name: 'reshape',
  dtypes: 'any',
  examples: [{ shapes: [[2, 6]], attrs: { shape: [3, -1] } }, { shapes: [[2, 6]], attrs: { shape: [0, 3, 2] } }],
  aliases: ['Reshape'],
  doc: 'The same data in a new shape (a view, no copy); 0 keeps a dim, -1 infers one.',
  inputs: ['data'],
  positional: ['shape'],
  attrs: z.object({ shape: ReshapeSpec, reverse: z.boolean().default(false) }).strict(),
  forward: (ctx, [x], a) => ctx.k.view(x, resolveReshape(x.shape, a.shape)),
  vjp: ({ g, shapes }) => [F.reshape(g[0], { shape: [...shapes[0]!] })],
});

defineOp({
  name: 'flatten',
  dtypes: 'any',
  examples: [{ shapes: [[2, 3, 2]] }],
  aliases: ['Flatten'],
  doc: 'Collapses every axis but the first: [n, d1, d2, ...] becomes [n, d1*d2*...].',
  inputs: ['data'],
  forward: (ctx, [x]) => ctx.k.view(x, [x.shape[0], sizeOf(x.shape.slice(1))]),
  vjp: ({ g, shapes }) => [F.reshape(g[0], { shape: [...shapes[0]!] })],
});

defineOp({
  name: 'expand_dims',
  dtypes: 'any',
  examples: [{ shapes: [[3, 4]], attrs: { axis: 1 } }],
  doc: 'Inserts an axis of size 1 at `axis`.',
  inputs: ['data'],
  positional: ['axis'],
  attrs: z.object({ axis: z.number().int() }).strict(),
  forward(ctx, [x], a) {
    const ax = normAxis(a.axis, x.shape.length + 1, { op: 'expand_dims', arg: 'axis' });
    const s = [...x.shape];
    s.splice(ax, 0, 1);
    return ctx.k.view(x, s);
  },
  vjp: ({ g, shapes }) => [F.reshape(g[0], { shape: [...shapes[0]!] })],
});

defineOp({
  name: 'squeeze',
  dtypes: 'any',
  examples: [{ shapes: [[3, 1, 2]] }],
  doc: 'Removes axes of size 1 (all of them, or those in `axis`).',
  inputs: ['data'],
  positional: ['axis'],
  attrs: z.object({ axis: z.union([z.number().int(), z.array(z.number().int()), z.null()]).default(null) }).strict(),
  forward(ctx, [x], a) {
    const rank = x.shape.length;
    const axes = a.axis === null ? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))
      : (Array.isArray(a.axis) ? a.axis : [a.axis]).map((ax) => normAxis(ax, rank, { op: 'squeeze', arg: 'axis' }));
    for (const ax of axes) if (x.shape[ax] !== 1) throw fail('invalid_attribute', `\`squeeze\` cannot remove axis ${ax} of size ${x.shape[ax]}`, { attribute: 'axis' });
    const s = x.shape.filter((_, i) => !axes.includes(i));
    return ctx.k.view(x, s.length ? s : [1]);
  },
  vjp: ({ g, shapes }) => [F.reshape(g[0], { shape: [...shapes[0]!] })],
});

function permutation(rank: number, axes: number[] | null, op: string): number[] {
  if (axes === null || axes.length === 0) return [...Array(rank).keys()].reverse();
  const p = axes.map((a) => normAxis(a, rank, { op, arg: 'axes' }));
  if (p.length !== rank || new Set(p).size !== rank) throw fail('invalid_attribute', `\`axes\` of \`${op}\` must be a permutation of ${rank} axes, got [${axes.join(', ')}]`, { attribute: 'axes' });
  return p;
}

function gatherTransposed(ctx: OpContext, x: NDArray, p: number[]): NDArray {
  return ctx.k.gather(x, permutedView(x.shape, p));
}

defineOp({
  name: 'transpose',
  dtypes: 'any',
  examples: [{ shapes: [[3, 4]] }, { shapes: [[2, 3, 4]], attrs: { axes: [1, 0, 2] } }],
  doc: 'Permutes the axes (reverses them by default); `x.T` in expressions.',
  inputs: ['data'],
  positional: ['axes'],
  attrs: z.object({ axes: z.array(z.number().int()).max(32).nullable().default(null) }).strict(),
  forward(ctx, [x], a) {
    return gatherTransposed(ctx, x, permutation(x.shape.length, a.axes, 'transpose'));
  },
  vjp({ g, shapes, attrs }) {
    const p = permutation(shapes[0]!.length, attrs.axes, 'transpose');
    const inv = new Array<number>(p.length);
    p.forEach((a, i) => { inv[a] = i; });
    return [F.transpose(g[0], { axes: inv })];
  },
});

defineOp({
  name: 'swapaxes',
  dtypes: 'any',
  examples: [{ shapes: [[2, 3, 4]], attrs: { dim1: 0, dim2: 2 } }],
  aliases: ['SwapAxis'],
  doc: 'Exchanges two axes.',
  inputs: ['data'],
  positional: ['dim1', 'dim2'],
  attrs: z.object({ dim1: z.number().int().default(0), dim2: z.number().int().default(0) }).strict(),
  forward(ctx, [x], a) {
    const r = x.shape.length;
    const p = [...Array(r).keys()];
    const i = normAxis(a.dim1, r, { op: 'swapaxes', arg: 'dim1' });
    const j = normAxis(a.dim2, r, { op: 'swapaxes', arg: 'dim2' });
    [p[i], p[j]] = [p[j], p[i]];
    return gatherTransposed(ctx, x, p);
  },
  vjp: ({ g, attrs }) => [F.swapaxes(g[0], attrs)],
});

function broadcastTo(ctx: OpContext, x: NDArray, shape: readonly number[], op: string): NDArray {
  const lead = shape.length - x.shape.length;
  const target = shape.map((d, i) => (d === 0 && i >= lead ? x.shape[i - lead] : d));
  const b = broadcastShapes(x.shape, target, { op, arg: 'shape' });
  if (lead < 0 || b.some((d, i) => d !== target[i])) throw fail('shape_mismatch', `\`${op}\` cannot broadcast ${shapeStr(x.shape)} to ${shapeStr(target)}`, { attribute: 'shape' });
  const st = contiguousStrides(x.shape);
  const strides = target.map((_, i) => (i < lead || x.shape[i - lead] === 1 ? 0 : st[i - lead]));
  return ctx.k.gather(x, { shape: target, strides, offset: 0 });
}

defineOp({
  name: 'broadcast_to',
  dtypes: 'any',
  examples: [{ shapes: [[3, 1]], attrs: { shape: [2, 3, 4] } }],
  doc: 'Broadcasts to `shape` (0 keeps the input\'s dim).',
  inputs: ['data'],
  positional: ['shape'],
  attrs: z.object({ shape: Shape }).strict(),
  forward: (ctx, [x], a) => broadcastTo(ctx, x, a.shape, 'broadcast_to'),
  // The driver sums g back down to the input's shape.
  vjp: ({ g }) => [g[0]],
});

defineOp({
  name: 'broadcast_like',
  dtypes: 'any',
  examples: [{ shapes: [[3, 1], [2, 3, 4]] }],
  doc: 'Broadcasts `lhs` to the shape of `rhs`.',
  inputs: ['lhs', 'rhs'],
  forward: (ctx, [x, like]) => broadcastTo(ctx, x, like.shape, 'broadcast_like'),
  vjp: ({ g }) => [g[0], null],
});

// Indexing: x[0], x[:, 1:3], x[::-1]. An int drops its axis; a slice keeps it.
const SliceKey = z.object({ start: z.number().int().nullable().default(null), stop: z.number().int().nullable().default(null), step: z.number().int().nullable().default(null) }).strict();
const Key = z.array(z.union([z.number().int(), SliceKey])).max(32);
type Key = z.infer<typeof Key>;

/** The strided view that `x[key]` reads, Python's slice rules included. */
export function indexView(shape: readonly number[], key: Key, op = 'getitem'): View {
  if (key.length > shape.length) throw fail('invalid_attribute', `\`${op}\` has ${key.length} indices for an array of rank ${shape.length}`, { attribute: 'key' });
  const st = contiguousStrides(shape);
  let offset = 0;
  const vs: number[] = [];
  const vst: number[] = [];
  shape.forEach((n, d) => {
    const k = key[d];
    if (typeof k === 'number') {
      if (k < -n || k >= n) throw fail('invalid_attribute', `index ${k} of \`${op}\` is out of range for axis ${d} of size ${n}`, { attribute: 'key' });
      offset += (k < 0 ? k + n : k) * st[d];
      return;
    }
    const step = k?.step ?? 1;
    if (step === 0) throw fail('invalid_attribute', `slice step of \`${op}\` cannot be 0 (axis ${d})`, { attribute: 'key' });
    const clamp = (v: number | null, dflt: number, lo: number, hi: number) =>
      v === null ? dflt : Math.min(Math.max(v < 0 ? v + n : v, lo), hi);
    const start = step > 0 ? clamp(k?.start ?? null, 0, 0, n) : clamp(k?.start ?? null, n - 1, -1, n - 1);
    const stop = step > 0 ? clamp(k?.stop ?? null, n, 0, n) : clamp(k?.stop ?? null, -1, -1, n - 1);
    const len = Math.max(0, Math.ceil((stop - start) / step));
    if (len > 0) offset += start * st[d];
    vs.push(len);
    vst.push(st[d] * step);
  });
  return { shape: vs, strides: vst, offset };
}

defineOp({
  name: 'getitem',
  dtypes: 'any',
  examples: [{ shapes: [[4, 5]], attrs: { key: [1] } }, { shapes: [[4, 5]], attrs: { key: [{ start: 1, stop: 3 }, { start: null, stop: null, step: -2 }] } }],
  aliases: ['__getitem__'],
  doc: 'Basic indexing `x[key]`: `key` lists, per leading axis, an int (drops the axis) or a slice {start, stop, step}.',
  inputs: ['data'],
  positional: ['key'],
  attrs: z.object({ key: Key }).strict(),
  forward(ctx, [x], a) {
    const v = indexView(x.shape, a.key);
    const out = ctx.k.gather(x, v);
    return v.shape.length ? out : ctx.k.view(out, [1]);
  },
  vjp: ({ g, shapes, attrs }) => [F._getitem_backward(g[0], { key: attrs.key, shape: [...shapes[0]!] })],
});

defineOp({
  name: '_getitem_backward',
  dtypes: 'numeric',
  examples: [{ shapes: [[2, 5]], attrs: { key: [{ start: 1, stop: 3 }], shape: [4, 5] } }],
  internal: true,
  doc: 'The adjoint of getitem: zeros of `shape` with `data` added at x[key].',
  inputs: ['data'],
  attrs: z.object({ key: Key, shape: z.array(z.number().int().min(0)) }).strict(),
  forward(ctx, [g], a) {
    const v = indexView(a.shape, a.key);
    if (sizeOf(v.shape) !== g.size) throw fail('shape_mismatch', `\`_getitem_backward\` got ${shapeStr(g.shape)} for a view of ${shapeStr(v.shape)}`);
    return ctx.k.scatter(g, a.shape, v);
  },
  vjp: ({ g, attrs, shapes }) => [F.reshape(F.getitem(g[0], { key: attrs.key }), { shape: [...shapes[0]!] })],
});

/** 1 where x[key] reads, 0 elsewhere: the region slice_assign writes. */
const keyMask = (ctx: OpContext, x: NDArray, v: View) => ctx.k.scatter(ctx.k.full(x.dtype, v.shape, 1), x.shape, v);

defineOp({
  name: 'slice_assign',
  dtypes: 'numeric',
  examples: [
    { shapes: [[4, 5], [2, 5]], attrs: { key: [{ start: 1, stop: 3 }] } },
    { shapes: [[4, 5], [1]], attrs: { key: [{ start: null, stop: null }, 0] } },
  ],
  aliases: ['setitem', '__setitem__'],
  doc: '`x[key] = value` as a new array: `data` with the region `key` reads replaced by `value` (broadcast to it). With `into` naming `data` it writes in place, as MXNet\'s slice assignment does.',
  inputs: ['data', 'value'],
  positional: ['key'],
  scalarInputs: true,
  attrs: z.object({ key: Key }).strict(),
  forward(ctx, [x, value], a) {
    if (typeof (x as unknown) === 'number') throw fail('invalid_argument', '`data` of `slice_assign` must be an array', { argument: 'data' });
    const v = indexView(x.shape, a.key, 'slice_assign');
    const fill = typeof (value as unknown) === 'number'
      ? ctx.k.full(x.dtype, v.shape, value as unknown as number)
      : ctx.k.gather(value, broadcastView(value.shape, broadcastShapes(value.shape, v.shape, { op: 'slice_assign', arg: 'value' })));
    if (fill.dtype !== x.dtype) throw fail('dtype_mismatch', `\`value\` of \`slice_assign\` is ${fill.dtype} but \`data\` is ${x.dtype}; use astype`, { argument: 'value' });
    if (sizeOf(fill.shape) !== sizeOf(v.shape)) throw fail('shape_mismatch', `\`value\` of shape ${shapeStr(value.shape)} cannot be assigned to x[key] of shape ${shapeStr(v.shape)}`, { argument: 'value' });
    return ctx.k.where(keyMask(ctx, x, v), ctx.k.scatter(fill, x.shape, v), x, { op: 'slice_assign' });
  },
  vjp: ({ g, shapes, attrs }) => {
    const region = F.getitem(g[0], { key: attrs.key });
    const mask = F._getitem_backward(F.ones_like(region), { key: attrs.key, shape: [...shapes[0]!] });
    return [F.multiply(g[0], F.subtract(1, mask)), shapes[1] ? region : null];
  },
});
