/**
 * Matrix products on the engine's GEMM. dot follows MXNet: vector·vector is a shape-[1] array,
 * N-d·M-d contracts the last axis of lhs with the first of rhs.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { F } from './dispatch.js';
import { sameDtype } from '../engine/kernels.js';
import { shapeStr, sizeOf, type NDArray } from '../engine/ndarray.js';
import { fail } from '../errors.js';

const DotAttrs = z.object({ transpose_a: z.boolean().default(false), transpose_b: z.boolean().default(false) }).strict();
type DotAttrs = z.infer<typeof DotAttrs>;

/** The 2-D problem a dot reduces to: lhs as [m, k] (or [k, m]), rhs as [k, n] (or [n, k]). */
function dotPlan(a: readonly number[], b: readonly number[], t: DotAttrs) {
  const site = (arg: string) => `\`${arg}\` of \`dot\``;
  if ((t.transpose_a && a.length > 2) || (t.transpose_b && b.length > 2)) {
    throw fail('invalid_attribute', 'transpose_a and transpose_b of `dot` apply to 1-D and 2-D arrays; use transpose for higher ranks', { attribute: t.transpose_a ? 'transpose_a' : 'transpose_b' });
  }
  // lhs: contract its last axis (first when transposed); rhs: its first axis (last when transposed).
  const ka = t.transpose_a ? a[0] : a[a.length - 1];
  const m = sizeOf(a) / (ka || 1);
  const kb = t.transpose_b ? b[b.length - 1] : b[0];
  const n = sizeOf(b) / (kb || 1);
  if (ka !== kb) {
    throw fail('shape_mismatch', `${site('lhs')} has shape ${shapeStr(a)} and ${site('rhs')} has shape ${shapeStr(b)}: inner sizes ${ka} and ${kb} differ`, { arg: 'rhs' });
  }
  const outA = t.transpose_a ? (a.length === 2 ? [a[1]] : []) : a.slice(0, -1);
  const outB = t.transpose_b ? (b.length === 2 ? [b[0]] : []) : b.slice(1);
  const shape = [...outA, ...outB];
  return { m, n, k: ka, shape: shape.length ? shape : [1] };
}

export function dotForward(ctx: OpContext, a: NDArray, b: NDArray, t: DotAttrs): NDArray {
  sameDtype(a, b, { op: 'dot' });
  const p = dotPlan(a.shape, b.shape, t);
  return ctx.k.gemm(a, b, { batch: 1, m: p.m, n: p.n, k: p.k, transA: t.transpose_a, transB: t.transpose_b, strideA: 0, strideB: 0 }, p.shape);
}

/** a viewed as the 2-D matrix dot multiplies ([m, k], or [k, m] when transposed). */
function as2d(x: NDArray, lhs: boolean, trans: boolean): NDArray {
  const s = x.shape;
  const first = lhs !== trans;
  const k = first ? s[s.length - 1] : s[0];
  const rest = sizeOf(s) / (k || 1);
  const shape = first ? [rest, k] : [k, rest];
  return F.reshape(x, { shape });
}

defineOp({
  name: 'dot',
  examples: [
    { shapes: [[3, 4], [4, 5]] }, { shapes: [[4], [4]] }, { shapes: [[3, 4], [4]] }, { shapes: [[4], [4, 2]] },
    { shapes: [[4, 3], [4, 5]], attrs: { transpose_a: true } }, { shapes: [[3, 4], [5, 4]], attrs: { transpose_b: true } },
    { shapes: [[4, 3], [5, 4]], attrs: { transpose_a: true, transpose_b: true } }, { shapes: [[2, 3, 4], [4, 5]] },
  ],
  aliases: ['matmul'],
  doc: 'Matrix product (MXNet semantics: contracts the last axis of lhs with the first of rhs).',
  inputs: ['lhs', 'rhs'],
  attrs: DotAttrs,
  save: { inputs: true },
  forward: (ctx, [a, b], t) => dotForward(ctx, a, b, t),
  vjp({ g, x, attrs: t, shapes, needs }) {
    const a = as2d(x[0] as NDArray, true, t.transpose_a);
    const b = as2d(x[1] as NDArray, false, t.transpose_b);
    const p = dotPlan(shapes[0]!, shapes[1]!, t);
    const G = F.reshape(g[0], { shape: [p.m, p.n] });
    const dot = (l: NDArray, r: NDArray, ta: boolean, tb: boolean) => F.dot(l, r, { transpose_a: ta, transpose_b: tb });
    // C = op(A) op(B): each case is the textbook identity, written so the result has A's (B's) stored layout.
    // A product per input that wants a gradient: a layer's input data usually does not.
    const dA = needs[0] ? (t.transpose_a ? dot(b, G, t.transpose_b, true) : dot(G, b, false, !t.transpose_b)) : null;
    const dB = needs[1] ? (t.transpose_b ? dot(G, a, true, t.transpose_a) : dot(a, G, !t.transpose_a, false)) : null;
    return [dA && F.reshape(dA, { shape: [...shapes[0]!] }), dB && F.reshape(dB, { shape: [...shapes[1]!] })];
  },
});

/** batch_dot's problem: leading axes are the batch, the last two multiply as matrices. */
function batchPlan(a: readonly number[], b: readonly number[], t: DotAttrs) {
  const site = (arg: string) => `\`${arg}\` of \`batch_dot\``;
  if (a.length < 3) throw fail('shape_mismatch', `${site('lhs')} must have rank 3 or more ([batch, M, K]), got ${shapeStr(a)}`, { arg: 'lhs' });
  if (b.length !== a.length) throw fail('shape_mismatch', `${site('rhs')} must have the rank of \`lhs\` (${a.length}), got ${shapeStr(b)}`, { arg: 'rhs' });
  const lead = a.slice(0, -2);
  if (b.slice(0, -2).some((d, i) => d !== lead[i])) {
    throw fail('shape_mismatch', `batch axes of ${site('lhs')} ${shapeStr(a)} and ${site('rhs')} ${shapeStr(b)} differ`, { arg: 'rhs' });
  }
  const [a0, a1] = a.slice(-2);
  const [b0, b1] = b.slice(-2);
  const [m, ka] = t.transpose_a ? [a1, a0] : [a0, a1];
  const [kb, n] = t.transpose_b ? [b1, b0] : [b0, b1];
  if (ka !== kb) throw fail('shape_mismatch', `${site('lhs')} ${shapeStr(a)} and ${site('rhs')} ${shapeStr(b)}: inner sizes ${ka} and ${kb} differ`, { arg: 'rhs' });
  return { batch: sizeOf(lead), m, n, k: ka, shape: [...lead, m, n] };
}

defineOp({
  name: 'batch_dot',
  doc: 'Batched matrix product: [B, M, K] x [B, K, N] -> [B, M, N] (transpose_a/b transpose each matrix).',
  inputs: ['lhs', 'rhs'],
  attrs: DotAttrs,
  save: { inputs: true },
  examples: [
    { shapes: [[2, 3, 4], [2, 4, 5]] }, { shapes: [[2, 4, 3], [2, 4, 5]], attrs: { transpose_a: true } },
    { shapes: [[2, 3, 4], [2, 5, 4]], attrs: { transpose_b: true } }, { shapes: [[2, 4, 3], [2, 5, 4]], attrs: { transpose_a: true, transpose_b: true } },
  ],
  forward(ctx, [a, b], t) {
    sameDtype(a, b, { op: 'batch_dot' });
    const p = batchPlan(a.shape, b.shape, t);
    return ctx.k.gemm(a, b, { batch: p.batch, m: p.m, n: p.n, k: p.k, transA: t.transpose_a, transB: t.transpose_b, strideA: p.m * p.k, strideB: p.k * p.n }, p.shape);
  },
  vjp({ g, x, attrs: t, needs }) {
    const [a, b] = x as NDArray[];
    const bd = (l: NDArray, r: NDArray, ta: boolean, tb: boolean) => F.batch_dot(l, r, { transpose_a: ta, transpose_b: tb });
    const G = g[0];
    const dA = needs[0] ? (t.transpose_a ? bd(b, G, t.transpose_b, true) : bd(G, b, false, !t.transpose_b)) : null;
    const dB = needs[1] ? (t.transpose_b ? bd(G, a, true, t.transpose_a) : bd(a, G, !t.transpose_a, false)) : null;
    return [dA, dB];
  },
});

const FcAttrs = z.object({
  num_hidden: z.number().int().min(1),
  no_bias: z.boolean().default(false),
  flatten: z.boolean().default(true),
}).strict();

defineOp({
  name: 'FullyConnected',
  aliases: ['fully_connected'],
  doc: 'Dense layer y = x W^T + b with W of shape [num_hidden, in]; flatten=True collapses all axes of x but the first.',
  inputs: ['data', 'weight', 'bias'],
  // bias is left out when no_bias is true.
  variadic: true,
  attrs: FcAttrs,
  save: { inputs: [0, 1] },
  examples: [
    { shapes: [[4, 3], [5, 3], [5]], attrs: { num_hidden: 5 } },
    { shapes: [[2, 2, 3], [5, 6]], attrs: { num_hidden: 5, no_bias: true } },
    { shapes: [[2, 2, 3], [5, 3], [5]], attrs: { num_hidden: 5, flatten: false } },
  ],
  forward(ctx, xs, a) {
    const [x, w, b] = fcCheck(xs, a);
    const lead = a.flatten ? [x.shape[0]] : x.shape.slice(0, -1);
    const k = w.shape[1];
    const y = ctx.k.gemm(x, w, { batch: 1, m: sizeOf(lead), n: a.num_hidden, k, transA: false, transB: true, strideA: 0, strideB: 0 }, [...lead, a.num_hidden]);
    // The bias is added into the product's own buffer.
    return b ? ctx.k.binary('add', y, b, { op: 'FullyConnected', arg: 'bias' }, y) : y;
  },
  vjp({ g, x, attrs: a, shapes, needs }) {
    const [xs, w] = x as NDArray[];
    const k = shapes[1]![1];
    const G = F.reshape(g[0], { shape: [-1, a.num_hidden] });
    // The first layer's data needs no gradient: skipping it saves a product as large as the layer.
    const dx = needs[0] ? F.reshape(F.dot(G, w), { shape: [...shapes[0]!] }) : null;
    const dw = needs[1] ? F.dot(G, F.reshape(xs, { shape: [-1, k] }), { transpose_a: true }) : null;
    // The driver sums the bias gradient over the leading axes.
    return shapes.length > 2 ? [dx, dw, g[0]] : [dx, dw];
  },
});

function fcCheck(xs: NDArray[], a: z.infer<typeof FcAttrs>): [NDArray, NDArray, NDArray | undefined] {
  const want = a.no_bias ? 2 : 3;
  if (xs.length !== want) {
    throw fail('invalid_argument', `\`FullyConnected\` takes ${want} arrays (data, weight${a.no_bias ? '' : ', bias'}) with no_bias=${a.no_bias}; got ${xs.length}`, { arg: xs.length < 2 ? 'weight' : 'bias' });
  }
  const [x, w, b] = xs;
  sameDtype(x, w, { op: 'FullyConnected', arg: 'weight' });
  const k = a.flatten ? sizeOf(x.shape.slice(1)) : x.shape[x.shape.length - 1];
  if (w.shape.length !== 2 || w.shape[0] !== a.num_hidden || w.shape[1] !== k) {
    throw fail('shape_mismatch', `\`weight\` of \`FullyConnected\` must have shape [${a.num_hidden}, ${k}] (num_hidden, input features), got ${shapeStr(w.shape)}`, { arg: 'weight' });
  }
  if (b && (b.shape.length !== 1 || b.shape[0] !== a.num_hidden)) {
    throw fail('shape_mismatch', `\`bias\` of \`FullyConnected\` must have shape [${a.num_hidden}], got ${shapeStr(b.shape)}`, { arg: 'bias' });
  }
  return [x, w, b];
}
