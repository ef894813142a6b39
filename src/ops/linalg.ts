/**
 * Matrix products on the engine's GEMM. dot follows MXNet: vector·vector is a shape-[1] array,
 * N-d·M-d contracts the last axis of lhs with the first of rhs.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { F } from '../autograd/apply.js';
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
  vjp({ g, x, attrs: t, shapes }) {
    const a = as2d(x[0] as NDArray, true, t.transpose_a);
    const b = as2d(x[1] as NDArray, false, t.transpose_b);
    const p = dotPlan(shapes[0]!, shapes[1]!, t);
    const G = F.reshape(g[0], { shape: [p.m, p.n] });
    const dot = (l: NDArray, r: NDArray, ta: boolean, tb: boolean) => F.dot(l, r, { transpose_a: ta, transpose_b: tb });
    // C = op(A) op(B): each case is the textbook identity, written so the result has A's (B's) stored layout.
    const dA = t.transpose_a ? dot(b, G, t.transpose_b, true) : dot(G, b, false, !t.transpose_b);
    const dB = t.transpose_b ? dot(G, a, true, t.transpose_a) : dot(a, G, !t.transpose_a, false);
    return [F.reshape(dA, { shape: [...shapes[0]!] }), F.reshape(dB, { shape: [...shapes[1]!] })];
  },
});
