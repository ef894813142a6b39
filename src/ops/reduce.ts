/**
 * Reductions over axes (int, list, negative, or null for all) with keepdims. A full reduction has
 * shape [1] (MXNet 1.x has no 0-d arrays). Gradients broadcast g back over the reduced axes.
 */
import { z } from 'zod';
import { defineOp, type VjpArgs } from './registry.js';
import { Axes } from './attrs.js';
import { F } from './dispatch.js';
import { normAxis } from '../engine/kernels.js';
import { shapeStr, type NDArray } from '../engine/ndarray.js';
import type { ReduceKernel } from '../engine/backend.js';
import { fail } from '../errors.js';

const ReduceAttrs = z.object({
  axis: Axes.default(null),
  keepdims: z.boolean().default(false),
  exclude: z.boolean().default(false).describe('reduce over every axis except `axis`'),
}).strict();
type ReduceAttrs = z.infer<typeof ReduceAttrs>;

/** The sorted, normalised axes an op reduces over. */
export function reducedAxes(shape: readonly number[], a: { axis: number | number[] | null; exclude?: boolean }, op: string): number[] {
  const rank = shape.length;
  const given = a.axis === null ? [...shape.keys()] : (Array.isArray(a.axis) ? a.axis : [a.axis]).map((ax) => normAxis(ax, rank, { op, arg: 'axis' }));
  if (new Set(given).size !== given.length) throw fail('invalid_attribute', `\`axis\` of \`${op}\` repeats an axis`, { attribute: 'axis' });
  const axes = a.exclude && a.axis !== null ? [...shape.keys()].filter((d) => !given.includes(d)) : given;
  return axes.sort((p, q) => p - q);
}

/** g (the reduced shape) broadcast back to the input's shape. */
export function expandGrad(g: NDArray, shape: readonly number[], axes: number[]): NDArray {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return F.broadcast_to(F.reshape(g, { shape: kept }), { shape: [...shape] });
}

const size = (shape: readonly number[], axes: number[]) => axes.reduce((p, a) => p * shape[a], 1);

type Rule = (a: VjpArgs<ReduceAttrs>, axes: number[], shape: readonly number[]) => NDArray;

const ROWS: { name: string; aliases?: string[]; kernel: ReduceKernel; doc: string; save: { inputs?: boolean; outputs?: boolean }; vjp: Rule; scale?: boolean }[] = [
  { name: 'sum', aliases: ['sum_axis'], kernel: 'sum', doc: 'Sum over axes.', save: {},
    vjp: ({ g }, axes, shape) => expandGrad(g[0], shape, axes) },
  { name: 'mean', kernel: 'sum', scale: true, doc: 'Mean over axes.', save: {},
    vjp: ({ g }, axes, shape) => F.divide(expandGrad(g[0], shape, axes), size(shape, axes)) },
  { name: 'prod', kernel: 'prod', doc: 'Product over axes (its gradient divides by x: avoid exact zeros).', save: { inputs: true, outputs: true },
    vjp: ({ g, x, y }, axes, shape) => F.divide(F.multiply(expandGrad(g[0], shape, axes), expandGrad(y[0]!, shape, axes)), x[0] as NDArray) },
  { name: 'max', aliases: ['max_axis'], kernel: 'max', doc: 'Maximum over axes; ties share the gradient.', save: { inputs: true, outputs: true },
    vjp: ({ g, x, y }, axes, shape) => F.multiply(expandGrad(g[0], shape, axes), F.equal(x[0] as NDArray, expandGrad(y[0]!, shape, axes))) },
  { name: 'min', aliases: ['min_axis'], kernel: 'min', doc: 'Minimum over axes; ties share the gradient.', save: { inputs: true, outputs: true },
    vjp: ({ g, x, y }, axes, shape) => F.multiply(expandGrad(g[0], shape, axes), F.equal(x[0] as NDArray, expandGrad(y[0]!, shape, axes))) },
];

for (const row of ROWS) {
  defineOp({
    name: row.name,
    aliases: row.aliases,
    doc: row.doc,
    inputs: ['data'],
    dtypes: 'numeric',
    positional: ['axis', 'keepdims'],
    attrs: ReduceAttrs,
    save: row.save,
    domain: row.kernel === 'prod' ? [0.5, 2] : undefined,
    examples: [
      { shapes: [[2, 3, 4]] }, { shapes: [[2, 3, 4]], attrs: { axis: 1 } },
      { shapes: [[2, 3, 4]], attrs: { axis: [0, 2], keepdims: true } }, { shapes: [[2, 3, 4]], attrs: { axis: -1, exclude: true } },
    ],
    forward(ctx, [x], a) {
      const axes = reducedAxes(x.shape, a, row.name);
      const out = ctx.k.reduce(row.kernel, x, axes, a.keepdims);
      if (!row.scale) return out;
      const n = size(x.shape, axes);
      // mean of nothing is NaN, as in NumPy.
      return ctx.k.binary('div', out, n, { op: row.name });
    },
    vjp: (v) => [row.vjp(v, reducedAxes(v.shapes[0]!, v.attrs, row.name), v.shapes[0]!)],
  });
}

defineOp({
  name: 'norm',
  doc: 'The L2 (ord=2, default) or L1 (ord=1) norm over axes (all by default), as a shape-[1] array for a full norm.',
  inputs: ['data'],
  positional: ['ord', 'axis', 'keepdims'],
  attrs: z.object({ ord: z.union([z.literal(1), z.literal(2)]).default(2), axis: Axes.default(null), keepdims: z.boolean().default(false) }).strict(),
  save: { inputs: true, outputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[3, 4]], attrs: { ord: 1 } }, { shapes: [[2, 3, 4]], attrs: { axis: 1, keepdims: true } }],
  forward(ctx, [x], a) {
    const axes = reducedAxes(x.shape, a, 'norm');
    if (a.ord === 1) return ctx.k.reduce('sum', ctx.k.unary('abs', x), axes, a.keepdims);
    return ctx.k.unary('sqrt', ctx.k.reduce('sum', ctx.k.unary('square', x), axes, a.keepdims));
  },
  vjp({ g, x, y, attrs, shapes }) {
    const shape = shapes[0]!;
    const axes = reducedAxes(shape, attrs, 'norm');
    const gx = expandGrad(g[0], shape, axes);
    if (attrs.ord === 1) return [F.multiply(gx, F.sign(x[0] as NDArray))];
    return [F.multiply(gx, F.divide(x[0] as NDArray, expandGrad(y[0]!, shape, axes)))];
  },
});

for (const name of ['argmax', 'argmin'] as const) {
  defineOp({
    name,
    doc: `Index of the ${name === 'argmax' ? 'largest' : 'smallest'} value along \`axis\`, in the input's dtype as in MXNet 1.x (float32 for float32 data); not differentiable.`,
    inputs: ['data'],
    dtypes: 'numeric',
    positional: ['axis', 'keepdims'],
    attrs: z.object({ axis: z.number().int().nullable().default(null), keepdims: z.boolean().default(false) }).strict(),
    forward(ctx, [x], a) {
      // An empty axis has no index to answer (numpy raises too); refused here, before the kernel.
      const empty = () => fail('shape_mismatch', `\`${name}\` of an empty axis has no answer: \`data\` has shape ${shapeStr(x.shape)}`, { arg: 'data', op: name });
      if (a.axis === null) {
        if (x.size === 0) throw empty();
        const flat = ctx.k.view(x, [x.size]);
        return ctx.k.argReduce(name, flat, 0, false);
      }
      const axis = normAxis(a.axis, x.shape.length, { op: name, arg: 'axis' });
      if (x.shape[axis] === 0) throw empty();
      return ctx.k.argReduce(name, x, axis, a.keepdims);
    },
  });
}

defineOp({
  name: 'logsumexp',
  doc: 'log(sum(exp(x))) over axes, computed stably by factoring out the maximum.',
  inputs: ['data'],
  positional: ['axis', 'keepdims'],
  attrs: z.object({ axis: Axes.default(null), keepdims: z.boolean().default(false) }).strict(),
  save: { inputs: true, outputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[2, 3, 4]], attrs: { axis: 1 } }, { shapes: [[2, 3, 4]], attrs: { axis: [0, 2], keepdims: true } }],
  forward(ctx, [x], a) {
    const axes = reducedAxes(x.shape, a, 'logsumexp');
    const m = ctx.k.reduce('max', x, axes, true);
    // An all -inf slice has max -inf; shifting by it would give NaN, so shift by 0 there.
    const shift = ctx.k.where(ctx.k.binary('eq', m, -Infinity, { op: 'logsumexp' }), ctx.k.full(x.dtype, [1], 0), m, { op: 'logsumexp' });
    const e = ctx.k.unary('exp', ctx.k.binary('sub', x, shift, { op: 'logsumexp' }));
    const s = ctx.k.unary('log', ctx.k.reduce('sum', e, axes, true));
    const out = ctx.k.binary('add', s, shift, { op: 'logsumexp' });
    if (a.keepdims) return out;
    const kept = x.shape.filter((_, d) => !axes.includes(d));
    return ctx.k.view(out, kept.length ? kept : [1]);
  },
  vjp({ g, x, y, attrs, shapes }) {
    const shape = shapes[0]!;
    const axes = reducedAxes(shape, attrs, 'logsumexp');
    const soft = F.exp(F.subtract(x[0] as NDArray, expandGrad(y[0]!, shape, axes)));
    return [F.multiply(expandGrad(g[0], shape, axes), soft)];
  },
});
