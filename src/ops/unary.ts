/**
 * Elementwise unary ops. Each row: MXNet name, aliases, kernel, what the vjp reads, the vjp written
 * with table ops (so it differentiates again), and the domain the generated tests sample from.
 * Activation (nn.ts) runs the rows of its act_types through `unaryRow`, so each rule exists once.
 */
import { z } from 'zod';
import { defineOp, type OpContext, type VjpArgs } from './registry.js';
import { fail } from '../errors.js';
import { F } from './dispatch.js';
import type { UnaryKernel } from '../engine/backend.js';
import type { NDArray } from '../engine/ndarray.js';

type Rule = (g: NDArray, x: NDArray, y: NDArray) => NDArray;

export interface UnaryRow {
  name: string;
  aliases?: string[];
  /** A kernel of backend.ts, or the forward of a composite (softsign). */
  kernel: UnaryKernel | ((ctx: OpContext, x: NDArray) => NDArray);
  doc: string;
  /** 'x': the vjp reads the input; 'y': the output; 'none': neither. */
  saves: 'x' | 'y' | 'none';
  vjp: Rule;
  domain?: [number, number];
}

const { multiply: mul, divide: div, subtract: sub, add } = F;
const zero: Rule = (g) => F.zeros_like(g);

function scaled(ctx: OpContext, x: NDArray, c: number): NDArray {
  return ctx.k.binary('mul', x, c, { op: ctx.op });
}

function cubeRoot(ctx: OpContext, x: NDArray): NDArray {
  return ctx.k.binary('mul', ctx.k.unary('sign', x), ctx.k.binary('pow', ctx.k.unary('abs', x), 1 / 3, { op: ctx.op }), { op: ctx.op });
}

const ROWS: UnaryRow[] = [
  { name: 'negative', aliases: ['neg'], kernel: 'neg', doc: 'Elementwise -x.', saves: 'none', vjp: (g) => F.negative(g) },
  { name: 'abs', kernel: 'abs', doc: 'Elementwise |x|.', saves: 'x', vjp: (g, x) => mul(g, F.sign(x)), domain: [0.1, 2] },
  { name: 'sign', kernel: 'sign', doc: 'Elementwise sign: -1, 0 or 1 (zero gradient).', saves: 'none', vjp: zero },
  { name: 'square', kernel: 'square', doc: 'Elementwise x².', saves: 'x', vjp: (g, x) => mul(g, mul(2, x)) },
  { name: 'sqrt', kernel: 'sqrt', doc: 'Elementwise square root.', saves: 'y', vjp: (g, _x, y) => div(g, mul(2, y)), domain: [0.2, 3] },
  { name: 'rsqrt', kernel: 'rsqrt', doc: 'Elementwise 1/sqrt(x).', saves: 'y', vjp: (g, _x, y) => mul(g, mul(-0.5, F.power(y, 3))), domain: [0.2, 3] },
  { name: 'reciprocal', kernel: 'reciprocal', doc: 'Elementwise 1/x.', saves: 'y', vjp: (g, _x, y) => mul(g, F.negative(F.square(y))), domain: [0.3, 3] },
  { name: 'exp', kernel: 'exp', doc: 'Elementwise e^x.', saves: 'y', vjp: (g, _x, y) => mul(g, y) },
  { name: 'expm1', kernel: 'expm1', doc: 'Elementwise e^x - 1, accurate near 0.', saves: 'y', vjp: (g, _x, y) => mul(g, add(y, 1)) },
  { name: 'log', kernel: 'log', doc: 'Elementwise natural logarithm.', saves: 'x', vjp: (g, x) => div(g, x), domain: [0.2, 3] },
  { name: 'log1p', kernel: 'log1p', doc: 'Elementwise log(1 + x), accurate near 0.', saves: 'x', vjp: (g, x) => div(g, add(x, 1)), domain: [-0.5, 2] },
  { name: 'sin', kernel: 'sin', doc: 'Elementwise sine.', saves: 'x', vjp: (g, x) => mul(g, F.cos(x)) },
  { name: 'cos', kernel: 'cos', doc: 'Elementwise cosine.', saves: 'x', vjp: (g, x) => mul(g, F.negative(F.sin(x))) },
  { name: 'tan', kernel: 'tan', doc: 'Elementwise tangent.', saves: 'y', vjp: (g, _x, y) => mul(g, add(F.square(y), 1)), domain: [-1.2, 1.2] },
  { name: 'arcsin', kernel: 'arcsin', doc: 'Elementwise inverse sine.', saves: 'x', vjp: (g, x) => div(g, F.sqrt(sub(1, F.square(x)))), domain: [-0.9, 0.9] },
  { name: 'arccos', kernel: 'arccos', doc: 'Elementwise inverse cosine.', saves: 'x', vjp: (g, x) => F.negative(div(g, F.sqrt(sub(1, F.square(x))))), domain: [-0.9, 0.9] },
  { name: 'arctan', kernel: 'arctan', doc: 'Elementwise inverse tangent.', saves: 'x', vjp: (g, x) => div(g, add(F.square(x), 1)) },
  { name: 'sinh', kernel: 'sinh', doc: 'Elementwise hyperbolic sine.', saves: 'x', vjp: (g, x) => mul(g, F.cosh(x)) },
  { name: 'cosh', kernel: 'cosh', doc: 'Elementwise hyperbolic cosine.', saves: 'x', vjp: (g, x) => mul(g, F.sinh(x)) },
  { name: 'tanh', kernel: 'tanh', doc: 'Elementwise hyperbolic tangent.', saves: 'y', vjp: (g, _x, y) => mul(g, sub(1, F.square(y))) },
  { name: 'arcsinh', kernel: 'arcsinh', doc: 'Elementwise inverse hyperbolic sine.', saves: 'x', vjp: (g, x) => div(g, F.sqrt(add(F.square(x), 1))) },
  { name: 'arccosh', kernel: 'arccosh', doc: 'Elementwise inverse hyperbolic cosine.', saves: 'x', vjp: (g, x) => div(g, F.sqrt(sub(F.square(x), 1))), domain: [1.2, 3] },
  { name: 'arctanh', kernel: 'arctanh', doc: 'Elementwise inverse hyperbolic tangent.', saves: 'x', vjp: (g, x) => div(g, sub(1, F.square(x))), domain: [-0.8, 0.8] },
  // As MXNet's, the rule reads the output (y > 0 exactly where x > 0), so a recorded relu may
  // write over a dying input: a dense layer's product, in `relu(FullyConnected(...))`.
  { name: 'relu', kernel: 'relu', doc: 'Elementwise max(x, 0).', saves: 'y', vjp: (g, _x, y) => mul(g, F.greater(y, 0)), domain: [0.1, 2] },
  { name: 'sigmoid', kernel: 'sigmoid', doc: 'Elementwise 1 / (1 + e^-x).', saves: 'y', vjp: (g, _x, y) => mul(g, mul(y, sub(1, y))) },
  { name: 'softrelu', aliases: ['softplus'], kernel: 'softrelu', doc: 'Elementwise log(1 + e^x).', saves: 'x', vjp: (g, x) => mul(g, F.sigmoid(x)) },
  { name: 'floor', kernel: 'floor', doc: 'Elementwise floor (zero gradient).', saves: 'none', vjp: zero },
  { name: 'ceil', kernel: 'ceil', doc: 'Elementwise ceiling (zero gradient).', saves: 'none', vjp: zero },
  { name: 'round', kernel: 'round', doc: 'Elementwise rounding, halves away from zero (zero gradient).', saves: 'none', vjp: zero },
  // MXNet's log2/log10/cbrt/rcbrt/radians/degrees: composites over existing kernels (no engine change).
  { name: 'log2', kernel: (ctx, x) => scaled(ctx, ctx.k.unary('log', x), 1 / Math.LN2), doc: 'Elementwise base-2 logarithm.', saves: 'x', vjp: (g, x) => div(g, mul(x, Math.LN2)), domain: [0.2, 3] },
  { name: 'log10', kernel: (ctx, x) => scaled(ctx, ctx.k.unary('log', x), 1 / Math.LN10), doc: 'Elementwise base-10 logarithm.', saves: 'x', vjp: (g, x) => div(g, mul(x, Math.LN10)), domain: [0.2, 3] },
  // sign(x)·|x|^(1/3), so that negative inputs have a real cube root as in MXNet.
  { name: 'cbrt', kernel: (ctx, x) => cubeRoot(ctx, x), doc: 'Elementwise cube root (real for negative x).', saves: 'y', vjp: (g, _x, y) => div(g, mul(3, F.square(y))), domain: [0.2, 3] },
  { name: 'rcbrt', kernel: (ctx, x) => ctx.k.unary('reciprocal', cubeRoot(ctx, x)), doc: 'Elementwise 1/cbrt(x).', saves: 'y', vjp: (g, _x, y) => mul(g, mul(-1 / 3, F.power(y, 4))), domain: [0.2, 3] },
  { name: 'radians', kernel: (ctx, x) => scaled(ctx, x, Math.PI / 180), doc: 'Elementwise degrees to radians.', saves: 'none', vjp: (g) => mul(g, Math.PI / 180) },
  { name: 'degrees', kernel: (ctx, x) => scaled(ctx, x, 180 / Math.PI), doc: 'Elementwise radians to degrees.', saves: 'none', vjp: (g) => mul(g, 180 / Math.PI) },
  {
    name: 'softsign',
    kernel: (ctx, x) => ctx.k.binary('div', x, ctx.k.binary('add', ctx.k.unary('abs', x), 1, { op: ctx.op }), { op: ctx.op }),
    doc: 'Elementwise x / (1 + |x|).',
    saves: 'x',
    vjp: (g, x) => div(g, F.square(add(F.abs(x), 1))),
  },
];

/** A row's forward, for its op and for Activation. */
export function unaryForward(row: UnaryRow, ctx: OpContext, x: NDArray): NDArray {
  return typeof row.kernel === 'string' ? ctx.k.unary(row.kernel, x) : row.kernel(ctx, x);
}

const byName = new Map<string, UnaryRow>();
const INTEGER_EXACT: ReadonlySet<string> = new Set(['neg', 'abs', 'sign', 'square', 'relu', 'floor', 'ceil', 'round']);

for (const row of ROWS) {
  byName.set(row.name, row);
  defineOp({
    name: row.name,
    aliases: row.aliases,
    doc: row.doc,
    inputs: ['data'],
    // Exact on integers (MXNet keeps the dtype); the rest need a float.
    dtypes: typeof row.kernel === 'string' && INTEGER_EXACT.has(row.kernel) ? 'numeric' : 'float',
    domain: row.domain ?? [-2, 2],
    save: { inputs: row.saves === 'x', outputs: row.saves === 'y' },
    // Composites (log2, softsign, ...) run several kernels, the first of which could overwrite x.
    inPlace: typeof row.kernel === 'string',
    forward: (ctx, [x]) => unaryForward(row, ctx, x),
    vjp: ({ g, x, y }: VjpArgs<unknown>) => [row.vjp(g[0], x[0] as NDArray, y[0] as NDArray)],
  });
}

/** The row of the unary op `name` (its canonical name). */
export function unaryRow(name: string): UnaryRow {
  const row = byName.get(name);
  if (!row) throw new Error(`internal: ${name} is not a unary op`);
  return row;
}

defineOp({
  name: 'clip',
  doc: 'Elementwise clip to [a_min, a_max]; the gradient passes where a_min <= x <= a_max.',
  inputs: ['data'],
  dtypes: 'numeric',
  positional: ['a_min', 'a_max'],
  attrs: z.object({ a_min: z.number(), a_max: z.number() }).strict(),
  save: { inputs: true },
  examples: [{ shapes: [[3, 4]], attrs: { a_min: -1, a_max: 0.5 } }],
  forward(ctx, [x], a) {
    if (!(a.a_min <= a.a_max)) throw fail('invalid_attribute', `\`a_min\` of \`clip\` (${a.a_min}) must not exceed \`a_max\` (${a.a_max})`, { attribute: 'a_min' });
    return ctx.k.binary('maximum', ctx.k.binary('minimum', x, a.a_max, { op: 'clip' }), a.a_min, { op: 'clip' });
  },
  vjp: ({ g, x, attrs }) => {
    const xs = x[0] as NDArray;
    return [mul(g[0], mul(F.greater_equal(xs, attrs.a_min), F.lesser_equal(xs, attrs.a_max)))];
  },
});
