/**
 * Joining and repeating: concat, stack, split, tile, repeat, and add_n (the elementwise sum of
 * same-shaped arrays, checked like a join). Joins scatter each input into its
 * place in one zero-initialised output; repeats gather a view with a stride-0 axis. Each gradient
 * is the adjoint: slices for joins, a sum over the repeated axis for repeats.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { F } from './dispatch.js';
import { normAxis, sameDtype } from '../engine/kernels.js';
import { contiguousStrides } from '../engine/layout.js';
import { shapeStr, sizeOf, type NDArray } from '../engine/ndarray.js';
import { fail } from '../errors.js';

/** Writes each input at its offset along `axis` of a new array of shape `shape`. */
function joinK(ctx: OpContext, xs: NDArray[], shape: number[], axis: number, sizes: number[]): NDArray {
  const out = ctx.k.alloc(xs[0].dtype, shape);
  const st = contiguousStrides(shape);
  let at = 0;
  xs.forEach((x, i) => {
    const vshape = shape.map((d, k) => (k === axis ? sizes[i] : d));
    if (x.size) ctx.k.scatterAdd(x, out, { shape: vshape, strides: st, offset: at * st[axis] });
    at += sizes[i];
  });
  return out;
}

function checkJoin(op: string, xs: NDArray[], axisOf: (rank: number) => number, skipAxis: boolean): number {
  if (xs.length === 0) throw fail('invalid_argument', `\`${op}\` needs at least one array`, { arg: 'data' });
  const ref = xs[0].shape;
  const axis = axisOf(ref.length);
  xs.forEach((x, i) => {
    sameDtype(xs[0], x, { op, arg: `data[${i}]` });
    const same = x.shape.length === ref.length && x.shape.every((d, k) => d === ref[k] || (skipAxis && k === axis));
    if (!same) throw fail('shape_mismatch', `\`data[${i}]\` of \`${op}\` has shape ${shapeStr(x.shape)}, which does not match \`data[0]\` ${shapeStr(ref)}${skipAxis ? ` except on axis ${axis}` : ''}`, { arg: `data[${i}]` });
  });
  return axis;
}

defineOp({
  name: 'concat',
  dtypes: 'numeric',
  aliases: ['Concat', 'concatenate'],
  doc: 'Joins arrays along an existing axis `dim` (they must agree on every other axis).',
  inputs: ['data'],
  variadic: true,
  attrs: z.object({ dim: z.number().int().default(1), num_args: z.number().int().min(1).optional() }).strict(),
  examples: [{ shapes: [[2, 3], [2, 2]] }, { shapes: [[1, 3], [2, 3], [1, 3]], attrs: { dim: 0 } }],
  forward(ctx, xs, a) {
    if (a.num_args !== undefined && a.num_args !== xs.length) throw fail('invalid_attribute', `\`num_args\` of \`concat\` is ${a.num_args} but ${xs.length} arrays were given`, { attribute: 'num_args' });
    const axis = checkJoin('concat', xs, (r) => normAxis(a.dim, r, { op: 'concat', arg: 'dim' }), true);
    const sizes = xs.map((x) => x.shape[axis]);
    const shape = xs[0].shape.map((d, k) => (k === axis ? sizes.reduce((p, q) => p + q, 0) : d));
    return joinK(ctx, xs, shape, axis, sizes);
  },
  vjp({ g, shapes, attrs }) {
    const axis = normAxis(attrs.dim, shapes[0]!.length, { op: 'concat', arg: 'dim' });
    let at = 0;
    return shapes.map((s) => {
      const begin = at;
      at += s![axis];
      return F.slice_axis(g[0], { axis, begin, end: at });
    });
  },
});

defineOp({
  name: 'stack',
  dtypes: 'numeric',
  doc: 'Joins arrays of one shape along a new axis `axis`.',
  inputs: ['data'],
  variadic: true,
  attrs: z.object({ axis: z.number().int().default(0), num_args: z.number().int().min(1).optional() }).strict(),
  examples: [{ shapes: [[2, 3], [2, 3]] }, { shapes: [[2, 3], [2, 3], [2, 3]], attrs: { axis: -1 } }],
  forward(ctx, xs, a) {
    if (a.num_args !== undefined && a.num_args !== xs.length) throw fail('invalid_attribute', `\`num_args\` of \`stack\` is ${a.num_args} but ${xs.length} arrays were given`, { attribute: 'num_args' });
    const axis = checkJoin('stack', xs, (r) => normAxis(a.axis, r + 1, { op: 'stack', arg: 'axis' }), false);
    const shape = [...xs[0].shape];
    shape.splice(axis, 0, xs.length);
    const parts = xs.map((x) => ctx.k.view(x, shape.map((d, k) => (k === axis ? 1 : d))));
    return joinK(ctx, parts, shape, axis, xs.map(() => 1));
  },
  vjp({ g, shapes, attrs }) {
    const axis = normAxis(attrs.axis, shapes[0]!.length + 1, { op: 'stack', arg: 'axis' });
    return shapes.map((s, i) => F.reshape(F.slice_axis(g[0], { axis, begin: i, end: i + 1 }), { shape: [...s!] }));
  },
});

defineOp({
  name: 'add_n',
  dtypes: 'numeric',
  aliases: ['ElementWiseSum'],
  doc: 'Elementwise sum of arrays of one shape (no broadcasting, as in MXNet); each input gets the whole gradient.',
  inputs: ['args'],
  variadic: true,
  attrs: z.object({ num_args: z.number().int().min(1).optional() }).strict(),
  examples: [{ shapes: [[2, 3]] }, { shapes: [[2, 3], [2, 3], [2, 3]] }],
  forward(ctx, xs, a) {
    if (a.num_args !== undefined && a.num_args !== xs.length) throw fail('invalid_attribute', `\`num_args\` of \`add_n\` is ${a.num_args} but ${xs.length} arrays were given`, { attribute: 'num_args' });
    checkJoin('add_n', xs, () => 0, false);
    // A fresh array even for one input, so the result never aliases an argument.
    return xs.slice(1).reduce((acc, x) => ctx.k.binary('add', acc, x, { op: ctx.op }), ctx.k.binary('add', xs[0], 0, { op: ctx.op }));
  },
  vjp: ({ g, shapes }) => shapes.map(() => g[0]),
});

defineOp({
  name: 'split',
  dtypes: 'any',
  outputCount: 'num_outputs',
  aliases: ['SliceChannel'],
  doc: 'Splits into `num_outputs` equal parts along `axis` (several outputs); squeeze_axis drops that axis when each part has size 1.',
  inputs: ['data'],
  positional: ['num_outputs', 'axis', 'squeeze_axis'],
  attrs: z.object({ num_outputs: z.number().int().min(1), axis: z.number().int().default(1), squeeze_axis: z.boolean().default(false) }).strict(),
  examples: [{ shapes: [[2, 4]], attrs: { num_outputs: 2 } }, { shapes: [[3, 2]], attrs: { num_outputs: 3, axis: 0, squeeze_axis: true } }],
  forward(ctx, [x], a) {
    const axis = normAxis(a.axis, x.shape.length, { op: 'split', arg: 'axis' });
    const n = x.shape[axis];
    if (n % a.num_outputs !== 0) throw fail('invalid_attribute', `\`num_outputs\` of \`split\` (${a.num_outputs}) does not divide axis ${axis} of size ${n}`, { attribute: 'num_outputs' });
    const part = n / a.num_outputs;
    if (a.squeeze_axis && part !== 1) throw fail('invalid_attribute', `\`squeeze_axis\` of \`split\` needs parts of size 1 on axis ${axis}; they have size ${part}`, { attribute: 'squeeze_axis' });
    const st = contiguousStrides(x.shape);
    const shape = x.shape.map((d, k) => (k === axis ? part : d));
    const outShape = a.squeeze_axis ? shape.filter((_, k) => k !== axis) : shape;
    return [...Array(a.num_outputs).keys()].map((i) => {
      const y = ctx.k.gather(x, { shape, strides: st, offset: i * part * st[axis] });
      return ctx.k.view(y, outShape.length ? outShape : [1]);
    });
  },
  vjp({ g, shapes, attrs }) {
    const shape = shapes[0]!;
    const axis = normAxis(attrs.axis, shape.length, { op: 'split', arg: 'axis' });
    const partShape = shape.map((d, k) => (k === axis ? d / attrs.num_outputs : d));
    return [F.concat(...g.map((gi) => F.reshape(gi, { shape: partShape })), { dim: axis })];
  },
});

defineOp({
  name: 'tile',
  dtypes: 'any',
  doc: 'Repeats the whole array `reps` times along each axis (NumPy tile: the shorter of reps and shape is padded with leading 1s).',
  inputs: ['data'],
  positional: ['reps'],
  attrs: z.object({ reps: z.union([z.number().int().min(0).transform((d) => [d]), z.array(z.number().int().min(0)).max(32)]) }).strict(),
  examples: [{ shapes: [[2, 3]], attrs: { reps: [2, 1] } }, { shapes: [[3]], attrs: { reps: [2, 2] } }],
  forward(ctx, [x], a) {
    const { xs, reps } = tilePlan(x.shape, a.reps);
    const st = contiguousStrides(xs);
    const view = { shape: xs.flatMap((d, i) => [reps[i], d]), strides: xs.flatMap((_, i) => [0, st[i]]), offset: 0 };
    return ctx.k.view(ctx.k.gather(x, view), xs.map((d, i) => d * reps[i]));
  },
  vjp({ g, shapes, attrs }) {
    const { xs, reps } = tilePlan(shapes[0]!, attrs.reps);
    const g2 = F.reshape(g[0], { shape: xs.flatMap((d, i) => [reps[i], d]) });
    const summed = F.sum(g2, { axis: xs.map((_, i) => 2 * i) });
    return [F.reshape(summed, { shape: [...shapes[0]!] })];
  },
});

function tilePlan(shape: readonly number[], reps0: number[]): { xs: number[]; reps: number[] } {
  const r = Math.max(shape.length, reps0.length);
  const xs = [...Array(r - shape.length).fill(1), ...shape];
  const reps = [...Array(r - reps0.length).fill(1), ...reps0];
  return { xs, reps };
}

defineOp({
  name: 'repeat',
  dtypes: 'any',
  doc: 'Repeats each element `repeats` times along `axis` (None: of the flattened array).',
  inputs: ['data'],
  positional: ['repeats', 'axis'],
  attrs: z.object({ repeats: z.number().int().min(0), axis: z.number().int().nullable().default(null) }).strict(),
  examples: [{ shapes: [[2, 3]], attrs: { repeats: 2, axis: 1 } }, { shapes: [[2, 3]], attrs: { repeats: 3 } }],
  forward(ctx, [x], a) {
    const { base, ax } = repeatPlan(x.shape, a.axis);
    const st = contiguousStrides(base);
    const shape = [...base.slice(0, ax + 1), a.repeats, ...base.slice(ax + 1)];
    const strides = [...st.slice(0, ax + 1), 0, ...st.slice(ax + 1)];
    const out = ctx.k.gather(x, { shape, strides, offset: 0 });
    return ctx.k.view(out, base.map((d, i) => (i === ax ? d * a.repeats : d)));
  },
  vjp({ g, shapes, attrs }) {
    const { base, ax } = repeatPlan(shapes[0]!, attrs.axis);
    const g2 = F.reshape(g[0], { shape: [...base.slice(0, ax + 1), attrs.repeats, ...base.slice(ax + 1)] });
    return [F.reshape(F.sum(g2, { axis: ax + 1 }), { shape: [...shapes[0]!] })];
  },
});

function repeatPlan(shape: readonly number[], axis: number | null): { base: number[]; ax: number } {
  if (axis === null) return { base: [sizeOf(shape)], ax: 0 };
  return { base: [...shape], ax: normAxis(axis, shape.length, { op: 'repeat', arg: 'axis' }) };
}
