/**
 * Convolution and pooling in NCHW (and NCW, NCDHW) layout. Both read windows of the padded input
 * through one strided view (im2col as a single gather: no loops over windows), then convolution
 * multiplies by the weight with a GEMM and pooling reduces over the window axes. The internal ops
 * _im2col and _col2im are each other's adjoint, so every gradient here is written with table ops
 * and differentiates again.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { F } from './dispatch.js';
import { sameDtype } from '../engine/kernels.js';
import { contiguousStrides } from '../engine/layout.js';
import { shapeStr, sizeOf, type NDArray } from '../engine/ndarray.js';
import type { View } from '../engine/backend.js';
import { fail } from '../errors.js';

const int = z.number().int();
const Tuple = z.union([int.transform((d) => [d]), z.array(int).max(3)]).describe('an int or a tuple of 1 to 3 ints, one per spatial axis');
const Dims = z.array(int).max(3);

/** Geometry of a windowed read: per spatial axis, the padding on each side, window and stride. */
export interface Windows {
  kernel: number[];
  stride: number[];
  dilate: number[];
  pad: number[];
  /** Padding after the data (pad plus the extra that pooling_convention='full' needs). */
  padEnd: number[];
  /**
   * 'kernel_first': [N, C, k..., o...] (convolution); 'kernel_last': [N, C, o..., k...] (pooling);
   * 'batch_inner': [C, k..., N, o...] (convolution's gradients: one product over the whole batch).
   */
  layout: 'kernel_first' | 'kernel_last' | 'batch_inner';
  /** The value read outside the data: 0, or -inf for max pooling. */
  fill: 'zero' | 'neg_inf';
}

const WindowsAttrs = z.object({
  kernel: Dims, stride: Dims, dilate: Dims, pad: Dims, padEnd: Dims,
  layout: z.enum(['kernel_first', 'kernel_last', 'batch_inner']), fill: z.enum(['zero', 'neg_inf']).default('zero'),
}).strict();

export function outSizes(inSizes: readonly number[], w: Windows): number[] {
  return inSizes.map((n, i) => Math.floor((n + w.pad[i] + w.padEnd[i] - w.dilate[i] * (w.kernel[i] - 1) - 1) / w.stride[i]) + 1);
}

function paddedShape(shape: readonly number[], w: Windows): number[] {
  return shape.map((d, i) => (i < 2 ? d : d + w.pad[i - 2] + w.padEnd[i - 2]));
}

/** Where the data sits inside its padded copy. */
function interior(shape: readonly number[], w: Windows): View {
  const st = contiguousStrides(paddedShape(shape, w));
  return { shape, strides: st, offset: w.pad.reduce((acc, p, i) => acc + p * st[i + 2], 0) };
}

/** The windows of the padded data as one view: cols[n, c, k..., o...] = xpad[n, c, o*s + k*d]. */
function windowsView(shape: readonly number[], w: Windows, channel0 = 0, channels = shape[1]): View {
  const st = contiguousStrides(paddedShape(shape, w));
  const sp = st.slice(2);
  const o = outSizes(shape.slice(2), w);
  const ks = { shape: w.kernel, strides: sp.map((s, i) => s * w.dilate[i]) };
  const os = { shape: o, strides: sp.map((s, i) => s * w.stride[i]) };
  if (w.layout === 'batch_inner') {
    return {
      shape: [channels, ...ks.shape, shape[0], ...os.shape],
      strides: [st[1], ...ks.strides, st[0], ...os.strides],
      offset: channel0 * st[1],
    };
  }
  const [a, b] = w.layout === 'kernel_first' ? [ks, os] : [os, ks];
  return {
    shape: [shape[0], channels, ...a.shape, ...b.shape],
    strides: [st[0], st[1], ...a.strides, ...b.strides],
    offset: channel0 * st[1],
  };
}

const padded = (w: Windows) => w.pad.some((p) => p > 0) || w.padEnd.some((p) => p > 0);

function padK(ctx: OpContext, x: NDArray, w: Windows): NDArray {
  if (!padded(w)) return x;
  const shape = paddedShape(x.shape, w);
  const v = interior(x.shape, w);
  const xp = ctx.k.scatter(x, shape, v);
  if (w.fill === 'zero') return xp;
  // Max pooling must never pick the padding: it reads -inf there.
  const inside = ctx.k.scatter(ctx.k.full(x.dtype, x.shape, 1), shape, v);
  return ctx.k.where(inside, xp, ctx.k.full(x.dtype, [1], -Infinity), { op: ctx.op });
}

function im2colK(ctx: OpContext, x: NDArray, w: Windows): NDArray {
  return ctx.k.gather(padK(ctx, x, w), windowsView(x.shape, w));
}

function col2imK(ctx: OpContext, cols: NDArray, shape: readonly number[], w: Windows): NDArray {
  const v = windowsView(shape, w);
  if (cols.size !== sizeOf(v.shape)) throw fail('shape_mismatch', `\`_col2im\` got ${shapeStr(cols.shape)} for windows ${shapeStr(v.shape)}`, { arg: 'data' });
  const xp = ctx.k.scatter(cols, paddedShape(shape, w), v);
  return padded(w) ? ctx.k.gather(xp, interior(shape, w)) : xp;
}

defineOp({
  name: '_im2col',
  internal: true,
  doc: 'The windows of the padded data, [N, C, k..., o...] or [N, C, o..., k...]; its adjoint is _col2im.',
  inputs: ['data'],
  attrs: WindowsAttrs,
  examples: [{ shapes: [[1, 2, 4, 4]], attrs: { kernel: [2, 2], stride: [1, 2], dilate: [1, 1], pad: [1, 0], padEnd: [1, 0], layout: 'kernel_first' } }],
  forward: (ctx, [x], w) => im2colK(ctx, x, w),
  vjp: ({ g, shapes, attrs }) => [F._col2im(g[0], { ...attrs, fill: 'zero', shape: [...shapes[0]!] })],
});

defineOp({
  name: '_col2im',
  internal: true,
  doc: 'Sums windows back into data of `shape` (overlaps add up); the adjoint of _im2col.',
  inputs: ['data'],
  attrs: WindowsAttrs.extend({ shape: z.array(int.min(0)) }),
  examples: [{ shapes: [[1, 2, 2, 2, 5, 2]], attrs: { kernel: [2, 2], stride: [1, 2], dilate: [1, 1], pad: [1, 0], padEnd: [1, 0], layout: 'kernel_first', shape: [1, 2, 4, 4] } }],
  forward: (ctx, [cols], a) => col2imK(ctx, cols, a.shape, a),
  vjp: ({ g, attrs }) => {
    const { shape, ...w } = attrs;
    void shape;
    return [F._im2col(g[0], { ...w, fill: 'zero' })];
  },
});

/** Per-axis tuples filled to the number of spatial axes, checked. */
function tuple(op: string, name: string, v: number[], d: number, dflt: number, min: number): number[] {
  if (v.length === 0) return Array(d).fill(dflt);
  if (v.length !== d) throw fail('invalid_attribute', `\`${name}\` of \`${op}\` has ${v.length} entries but the kernel has ${d} spatial axes`, { attribute: name });
  const bad = v.find((x) => x < min);
  if (bad !== undefined) throw fail('invalid_attribute', `\`${name}\` of \`${op}\` must hold integers >= ${min}, got ${shapeStr(v)}`, { attribute: name });
  return v;
}

function checkOut(op: string, shape: readonly number[], w: Windows): number[] {
  const o = outSizes(shape.slice(2), w);
  if (o.some((n) => n < 1)) {
    throw fail('shape_mismatch', `\`kernel\` ${shapeStr(w.kernel)} of \`${op}\` (dilate ${shapeStr(w.dilate)}, pad ${shapeStr(w.pad)}) does not fit the spatial shape ${shapeStr(shape.slice(2))} of \`data\``, { attribute: 'kernel' });
  }
  return o;
}

// --- Convolution ---

const ConvAttrs = z.object({
  kernel: Tuple,
  stride: Tuple.default([]),
  dilate: Tuple.default([]),
  pad: Tuple.default([]),
  num_filter: int.min(1),
  num_group: int.min(1).default(1),
  no_bias: z.boolean().default(false),
  layout: z.enum(['NCW', 'NCHW', 'NCDHW']).nullable().default(null),
  workspace: int.optional(),
  cudnn_tune: z.string().nullable().optional(),
  cudnn_off: z.boolean().optional(),
}).strict();
type ConvAttrs = z.infer<typeof ConvAttrs>;

function convWindows(shape: readonly number[], a: ConvAttrs): Windows {
  const d = a.kernel.length;
  if (d < 1 || d > 3) throw fail('invalid_attribute', `\`kernel\` of \`Convolution\` must have 1 to 3 entries, got ${shapeStr(a.kernel)}`, { attribute: 'kernel' });
  if (shape.length !== d + 2) throw fail('shape_mismatch', `\`data\` of \`Convolution\` must have rank ${d + 2} ([batch, channel, ${d} spatial]) for a ${d}-D kernel, got ${shapeStr(shape)}`, { arg: 'data' });
  const pad = tuple('Convolution', 'pad', a.pad, d, 0, 0);
  return {
    kernel: tuple('Convolution', 'kernel', a.kernel, d, 1, 1),
    stride: tuple('Convolution', 'stride', a.stride, d, 1, 1),
    dilate: tuple('Convolution', 'dilate', a.dilate, d, 1, 1),
    pad, padEnd: pad, layout: 'kernel_first', fill: 'zero',
  };
}

function convCheck(xs: NDArray[], a: ConvAttrs): { w: Windows; o: number[] } {
  const want = a.no_bias ? 2 : 3;
  if (xs.length !== want) throw fail('invalid_argument', `\`Convolution\` takes ${want} arrays (data, weight${a.no_bias ? '' : ', bias'}) with no_bias=${a.no_bias}; got ${xs.length}`, { arg: xs.length < 2 ? 'weight' : 'bias' });
  const [x, wt, b] = xs;
  const w = convWindows(x.shape, a);
  const C = x.shape[1];
  const G = a.num_group;
  if (C % G !== 0 || a.num_filter % G !== 0) throw fail('invalid_attribute', `\`num_group\` of \`Convolution\` (${G}) must divide the ${C} input channels and num_filter (${a.num_filter})`, { attribute: 'num_group' });
  const wshape = [a.num_filter, C / G, ...w.kernel];
  sameDtype(x, wt, { op: 'Convolution', arg: 'weight' });
  if (wt.shape.length !== wshape.length || wt.shape.some((d, i) => d !== wshape[i])) {
    throw fail('shape_mismatch', `\`weight\` of \`Convolution\` must have shape ${shapeStr(wshape)} (num_filter, channels / num_group, kernel...), got ${shapeStr(wt.shape)}`, { arg: 'weight' });
  }
  if (b && (b.shape.length !== 1 || b.shape[0] !== a.num_filter)) throw fail('shape_mismatch', `\`bias\` of \`Convolution\` must have shape [${a.num_filter}], got ${shapeStr(b.shape)}`, { arg: 'bias' });
  return { w, o: checkOut('Convolution', x.shape, w) };
}

defineOp({
  name: 'Convolution',
  aliases: ['convolution'],
  doc: 'N-D convolution (cross-correlation) of data [N, C, spatial...] with weight [num_filter, C/num_group, kernel...] plus bias, with stride, pad, dilate and groups.',
  inputs: ['data', 'weight', 'bias'],
  // bias is left out when no_bias is true.
  variadic: true,
  attrs: ConvAttrs,
  save: { inputs: [0, 1] },
  examples: [
    { shapes: [[2, 2, 5, 5], [3, 2, 3, 3], [3]], attrs: { kernel: [3, 3], num_filter: 3 } },
    { shapes: [[2, 2, 5, 5], [3, 2, 3, 2], [3]], attrs: { kernel: [3, 2], num_filter: 3, stride: [2, 1], pad: [1, 2] } },
    { shapes: [[1, 2, 6, 6], [2, 2, 2, 2]], attrs: { kernel: [2, 2], num_filter: 2, dilate: [2, 2], no_bias: true } },
    { shapes: [[2, 4, 5], [4, 2, 3], [4]], attrs: { kernel: [3], num_filter: 4, num_group: 2, pad: [1], stride: [2] } },
  ],
  forward(ctx, xs, a) {
    const { w, o } = convCheck(xs, a);
    const [x, wt, b] = xs;
    const [N, C] = x.shape;
    const G = a.num_group;
    const Cg = C / G;
    const Fg = a.num_filter / G;
    const K = sizeOf(w.kernel);
    const O = sizeOf(o);
    const xp = padK(ctx, x, w);
    const outShape = [N, a.num_filter, ...o];
    let out: NDArray;
    const groupGemm = (g: number) => {
      const cols = ctx.k.gather(xp, windowsView(x.shape, w, g * Cg, Cg));
      const wg = G === 1 ? wt : ctx.k.gather(wt, { shape: [Fg, Cg * K], strides: [Cg * K, 1], offset: g * Fg * Cg * K });
      return ctx.k.gemm(wg, cols, { batch: N, m: Fg, n: O, k: Cg * K, transA: false, transB: false, strideA: 0, strideB: Cg * K * O }, [N, Fg, O]);
    };
    if (G === 1) out = ctx.k.view(groupGemm(0), outShape);
    else {
      out = ctx.k.alloc(x.dtype, outShape);
      for (let g = 0; g < G; g++) {
        ctx.k.scatterAdd(groupGemm(g), out, { shape: [N, Fg, O], strides: [a.num_filter * O, O, 1], offset: g * Fg * O });
      }
    }
    return b ? ctx.k.binary('add', out, ctx.k.view(b, [a.num_filter, ...o.map(() => 1)]), { op: 'Convolution', arg: 'bias' }) : out;
  },
  vjp({ g, x, attrs: a, shapes, needs }) {
    const [data, wt] = x as NDArray[];
    const w = convWindows(shapes[0]!, a);
    const G = a.num_group;
    const grads = (xg: NDArray, wg: NDArray, gg: NDArray) => convGrads(xg, wg, gg, w, needs[0], needs[1]);
    let dx: NDArray | null;
    let dw: NDArray | null;
    if (G === 1) [dx, dw] = grads(data, wt, g[0]);
    else {
      const C = shapes[0]![1];
      const parts = [...Array(G).keys()].map((i) => grads(
        F.slice_axis(data, { axis: 1, begin: i * C / G, end: (i + 1) * C / G }),
        F.slice_axis(wt, { axis: 0, begin: i * a.num_filter / G, end: (i + 1) * a.num_filter / G }),
        F.slice_axis(g[0], { axis: 1, begin: i * a.num_filter / G, end: (i + 1) * a.num_filter / G }),
      ));
      dx = needs[0] ? F.concat(...parts.map((p) => p[0]!), { dim: 1 }) : null;
      dw = needs[1] ? F.concat(...parts.map((p) => p[1]!), { dim: 0 }) : null;
    }
    if (shapes.length < 3) return [dx, dw];
    const spatial = shapes[0]!.map((_, i) => i).filter((i) => i !== 1);
    return [dx, dw, F.sum(g[0], { axis: spatial })];
  },
});

/**
 * Gradients of one group's convolution, with table ops: [d data, d weight], each only if wanted.
 * Both are single products over the whole batch, with the windows laid out [C, k..., N, o...]
 * and the gradient [F, N, o...]: d weight is windows times gradient summed over (n, o), d windows
 * is weight transposed times gradient, and neither needs a product per image, a sum over them, or
 * a transposed copy of the windows.
 */
function convGrads(data: NDArray, wt: NDArray, g: NDArray, w: Windows, wantData: boolean, wantWeight: boolean): [NDArray | null, NDArray | null] {
  const [N, C] = data.shape;
  const Fn = wt.shape[0];
  const CK = C * sizeOf(w.kernel);
  const inner: Windows = { ...w, layout: 'batch_inner' };
  const gT = F.reshape(F.transpose(F.reshape(g, { shape: [N, Fn, -1] }), { axes: [1, 0, 2] }), { shape: [Fn, -1] });
  let dw: NDArray | null = null;
  if (wantWeight) {
    const cols = F.reshape(F._im2col(data, { ...inner }), { shape: [CK, -1] });
    // [CK, F], transposed after: a product with few columns is the fastest shape the GEMM has.
    dw = F.reshape(F.transpose(F.dot(cols, gT, { transpose_b: true })), { shape: [...wt.shape] });
  }
  if (!wantData) return [null, dw];
  const dcols = F.dot(F.reshape(wt, { shape: [Fn, CK] }), gT, { transpose_a: true });
  const colsShape = windowsView(data.shape, inner).shape;
  return [F._col2im(F.reshape(dcols, { shape: colsShape }), { ...inner, shape: [...data.shape] }), dw];
}

// --- Pooling ---

const PoolAttrs = z.object({
  kernel: Tuple.default([]),
  pool_type: z.enum(['max', 'avg', 'sum']).default('max'),
  stride: Tuple.default([]),
  pad: Tuple.default([]),
  global_pool: z.boolean().default(false),
  pooling_convention: z.enum(['valid', 'full']).default('valid'),
  count_include_pad: z.boolean().default(true),
  layout: z.enum(['NCW', 'NCHW', 'NCDHW']).nullable().default(null),
  cudnn_off: z.boolean().optional(),
}).strict();
type PoolAttrs = z.infer<typeof PoolAttrs>;

function poolWindows(shape: readonly number[], a: PoolAttrs): Windows {
  const op = 'Pooling';
  if (shape.length < 3 || shape.length > 5) throw fail('shape_mismatch', `\`data\` of \`Pooling\` must have rank 3 to 5 ([batch, channel, spatial...]), got ${shapeStr(shape)}`, { arg: 'data' });
  const sp = shape.slice(2);
  const d = sp.length;
  if (a.global_pool) return { kernel: sp, stride: sp.map(() => 1), dilate: sp.map(() => 1), pad: sp.map(() => 0), padEnd: sp.map(() => 0), layout: 'kernel_last', fill: a.pool_type === 'max' ? 'neg_inf' : 'zero' };
  if (a.kernel.length === 0) throw fail('invalid_attribute', '`kernel` of `Pooling` is required unless global_pool is true', { attribute: 'kernel' });
  if (a.kernel.length !== d) throw fail('invalid_attribute', `\`kernel\` of \`Pooling\` has ${a.kernel.length} entries but \`data\` ${shapeStr(shape)} has ${d} spatial axes`, { attribute: 'kernel' });
  const kernel = tuple(op, 'kernel', a.kernel, d, 1, 1);
  const stride = tuple(op, 'stride', a.stride, d, 1, 1);
  const pad = tuple(op, 'pad', a.pad, d, 0, 0);
  if (pad.some((p, i) => p >= kernel[i])) throw fail('invalid_attribute', `\`pad\` ${shapeStr(pad)} of \`Pooling\` must be smaller than \`kernel\` ${shapeStr(kernel)}`, { attribute: 'pad' });
  const w: Windows = { kernel, stride, dilate: sp.map(() => 1), pad, padEnd: pad, layout: 'kernel_last', fill: a.pool_type === 'max' ? 'neg_inf' : 'zero' };
  if (a.pooling_convention === 'full') {
    // Ceil instead of floor: the last window may run past the padding; extend the end to hold it.
    w.padEnd = sp.map((n, i) => {
      const o = Math.ceil((n + 2 * pad[i] - kernel[i]) / stride[i]) + 1;
      return Math.max(pad[i], (o - 1) * stride[i] + kernel[i] - n - pad[i]);
    });
  }
  return w;
}

/**
 * Divisors of average pooling, [o...]: with count_include_pad, the window clipped to the padded
 * data (as MXNet counts); without, clipped to the data itself.
 */
function poolCounts(sp: readonly number[], w: Windows, o: number[], includePad: boolean): number[][] {
  return sp.map((n, i) => [...Array(o[i]).keys()].map((j) => {
    const start = j * w.stride[i] - w.pad[i];
    const lo = includePad ? start : Math.max(start, 0);
    const hi = Math.min(start + w.kernel[i], includePad ? n + w.pad[i] : n);
    return Math.max(hi - lo, 1);
  }));
}

defineOp({
  name: 'Pooling',
  aliases: ['pooling'],
  doc: 'Max, average or sum pooling over windows of data [N, C, spatial...] (global_pool: the whole spatial extent); average counts the padding by default, as MXNet.',
  inputs: ['data'],
  attrs: PoolAttrs,
  visibleOutputs: 1,
  // Hidden output: where each window's maximum lies (max pooling), or each window's divisor. The
  // gradient needs that and the input's shape only, so the input itself is not kept.
  save: { outputs: true },
  examples: [
    { shapes: [[2, 2, 5, 5]], attrs: { kernel: [2, 2], stride: [2, 2] } },
    { shapes: [[2, 2, 5, 5]], attrs: { kernel: [3, 3], stride: [2, 2], pad: [1, 1], pool_type: 'avg' } },
    { shapes: [[1, 2, 5, 4]], attrs: { kernel: [3, 2], stride: [2, 1], pad: [1, 0] } },
    { shapes: [[2, 3, 5]], attrs: { kernel: [2], stride: [2], pool_type: 'avg', pooling_convention: 'full' } },
    { shapes: [[2, 2, 3, 3]], attrs: { global_pool: true, pool_type: 'avg' } },
    { shapes: [[1, 2, 4, 4]], attrs: { kernel: [2, 2], pool_type: 'sum', count_include_pad: false, pad: [1, 1], stride: [2, 2] } },
  ],
  forward(ctx, [x], a) {
    const w = poolWindows(x.shape, a);
    const o = checkOut('Pooling', x.shape, w);
    const d = o.length;
    // The hidden output: where each window's maximum lies (max), or each window's divisor.
    if (a.pool_type === 'max') return ctx.k.windowMax(padK(ctx, x, w), windowsView(x.shape, w), d);
    const cols = im2colK(ctx, x, w);
    const kAxes = [...Array(d).keys()].map((i) => 2 + d + i);
    const s = ctx.k.reduce('sum', cols, kAxes, false);
    if (a.pool_type === 'sum') return [s, ctx.k.full(x.dtype, [1], 1)];
    const per = poolCounts(x.shape.slice(2), w, o, a.count_include_pad);
    let count = ctx.k.full(x.dtype, [1], 1);
    per.forEach((c, i) => {
      const v = ctx.k.fromNumbers(x.dtype, o.map((n, j) => (j === i ? n : 1)), c);
      count = ctx.k.binary('mul', count, v, { op: 'Pooling' });
    });
    return [ctx.k.binary('div', s, count, { op: 'Pooling' }), count];
  },
  vjp({ g, y, attrs: a, shapes }) {
    const shape = shapes[0]!;
    const w = poolWindows(shape, a);
    const d = shape.length - 2;
    if (a.pool_type === 'max') {
      // Each window's gradient goes to its first maximum only, as in MXNet and PyTorch (ties
      // after a relu are common: all four zeros of a window must not each get it).
      const dxp = F._index_scatter_add(g[0], y[1]!, { shape: paddedShape(shape, w) });
      if (!padded(w)) return [dxp];
      const begin = shape.map((_, i) => (i < 2 ? 0 : w.pad[i - 2]));
      return [F.slice(dxp, { begin, end: begin.map((b, i) => b + shape[i]) })];
    }
    const expand = (v: NDArray) => F.reshape(v, { shape: [...v.shape, ...Array(d).fill(1)] });
    const per = a.pool_type === 'avg' ? F.divide(g[0], y[1]!) : g[0];
    const dcols = F.broadcast_to(expand(per), { shape: windowsView(shape, w).shape });
    return [F._col2im(dcols, { ...w, fill: 'zero', shape: [...shape] })];
  },
});
