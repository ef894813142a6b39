/**
 * Elementwise binary ops with NumPy broadcasting; either argument may be a scalar. Gradients come
 * back in the broadcast shape: the backward driver sums them down to each input's shape.
 */
import { defineOp, type Value } from './registry.js';
import { F } from './dispatch.js';
import type { BinaryKernel } from '../engine/backend.js';
import { NDArray } from '../engine/ndarray.js';
import { broadcastShapes } from '../engine/kernels.js';

/**
 * The gradient of one input, given the output's gradient g, the inputs a and b, and the output y
 * (null: that input gets none). Each row gives one rule per input, as PyTorch's derivatives.yaml
 * does, so that backward computes only the gradients some variable needs.
 */
type Rule = (g: NDArray, a: Value, b: Value, y: NDArray) => NDArray | null;

interface BinaryRow {
  name: string;
  aliases: string[];
  kernel: BinaryKernel;
  doc: string;
  save: { inputs?: boolean; outputs?: boolean };
  vjp?: [lhs: Rule, rhs: Rule];
  domain?: [number, number];
}

const { multiply: mul, divide: div, negative: neg } = F;

/** The log of a value that may be a scalar (power's gradient with respect to its exponent). */
const logOf = (v: Value): Value => (typeof v === 'number' ? Math.log(v) : F.log(v));

const ROWS: BinaryRow[] = [
  { name: 'add', aliases: ['broadcast_add', 'elemwise_add', 'plus', '_plus'], kernel: 'add', doc: 'Elementwise a + b.', save: {},
    vjp: [(g) => g, (g) => g] },
  { name: 'subtract', aliases: ['broadcast_sub', 'elemwise_sub', 'sub', 'minus', '_minus'], kernel: 'sub', doc: 'Elementwise a - b.', save: {},
    vjp: [(g) => g, (g) => neg(g)] },
  { name: 'multiply', aliases: ['broadcast_mul', 'elemwise_mul', 'mul', '_mul'], kernel: 'mul', doc: 'Elementwise a * b.', save: { inputs: true },
    vjp: [(g, _a, b) => mul(g, b), (g, a) => mul(g, a)] },
  { name: 'divide', aliases: ['broadcast_div', 'elemwise_div', 'div', 'true_divide', '_div'], kernel: 'div', doc: 'Elementwise a / b.', save: { inputs: true },
    vjp: [(g, _a, b) => div(g, b), (g, a, b) => (typeof b === 'number' ? null : neg(div(mul(g, a), mul(b, b))))], domain: [0.5, 2] },
  { name: 'power', aliases: ['broadcast_power', 'pow', '_power'], kernel: 'pow', doc: 'Elementwise a ** b.', save: { inputs: true, outputs: true },
    vjp: [
      (g, a, b) => (typeof a === 'number' ? null : mul(g, mul(b, F.power(a, typeof b === 'number' ? b - 1 : F.subtract(b, 1))))),
      (g, a, b, y) => (typeof b === 'number' ? null : mul(g, mul(y, logOf(a)))),
    ], domain: [0.5, 2] },
  { name: 'maximum', aliases: ['broadcast_maximum', '_maximum'], kernel: 'maximum', doc: 'Elementwise max(a, b); ties send the gradient to a.', save: { inputs: true },
    vjp: [(g, a, b) => mul(g, F.greater_equal(a, b)), (g, a, b) => mul(g, F.lesser(a, b))] },
  { name: 'minimum', aliases: ['broadcast_minimum', '_minimum'], kernel: 'minimum', doc: 'Elementwise min(a, b); ties send the gradient to a.', save: { inputs: true },
    vjp: [(g, a, b) => mul(g, F.lesser_equal(a, b)), (g, a, b) => mul(g, F.greater(a, b))] },
  { name: 'equal', aliases: ['broadcast_equal', '_equal'], kernel: 'eq', doc: '1 where a == b, else 0.', save: {} },
  { name: 'not_equal', aliases: ['broadcast_not_equal', '_not_equal'], kernel: 'ne', doc: '1 where a != b, else 0.', save: {} },
  { name: 'lesser', aliases: ['broadcast_lesser', 'less', '_lesser'], kernel: 'lt', doc: '1 where a < b, else 0.', save: {} },
  { name: 'lesser_equal', aliases: ['broadcast_lesser_equal', 'less_equal', '_lesser_equal'], kernel: 'le', doc: '1 where a <= b, else 0.', save: {} },
  { name: 'greater', aliases: ['broadcast_greater', '_greater'], kernel: 'gt', doc: '1 where a > b, else 0.', save: {} },
  { name: 'greater_equal', aliases: ['broadcast_greater_equal', '_greater_equal'], kernel: 'ge', doc: '1 where a >= b, else 0.', save: {} },
];

for (const row of ROWS) {
  // Kernel errors name the op; one site object per op, not per call.
  const site = { op: row.name };
  const rules = row.vjp;
  defineOp({
    name: row.name,
    aliases: row.aliases,
    doc: row.doc,
    inputs: ['lhs', 'rhs'],
    dtypes: 'numeric',
    scalarInputs: true,
    inPlace: true,
    domain: row.domain,
    save: row.save,
    examples: [
      { shapes: [[3, 4], [3, 4]] }, { shapes: [[3, 4], [4]] }, { shapes: [[2, 1, 4], [3, 1]] },
      { shapes: [[3, 4], null] }, { shapes: [null, [3, 4]] },
    ],
    forward: (ctx, x) => ctx.k.binary(row.kernel, x[0] as Value, x[1] as Value, site),
    vjp: rules && (({ g, x, y, needs }) => {
      const a = x[0] as Value;
      const b = x[1] as Value;
      return [needs[0] ? rules[0](g[0], a, b, y[0] as NDArray) : null, needs[1] ? rules[1](g[0], a, b, y[0] as NDArray) : null];
    }),
  });
}

defineOp({
  name: 'where',
  doc: 'Elementwise x where condition is non-zero, else y (broadcasting); condition gets no gradient.',
  inputs: ['condition', 'x', 'y'],
  dtypes: 'numeric',
  save: { inputs: [0] },
  examples: [{ shapes: [[3, 4], [3, 4], [3, 4]] }, { shapes: [[3, 1], [3, 4], [4]] }],
  forward(ctx, [c, a, b]) {
    broadcastShapes(c.shape, broadcastShapes(a.shape, b.shape, { op: 'where', arg: 'y' }), { op: 'where', arg: 'condition' });
    // The condition may be of any dtype, as in MXNet: its non-zeros, as 0/1 of the data's dtype.
    const cond = c.dtype === a.dtype ? c : ctx.k.cast(ctx.k.binary('ne', c, 0, { op: 'where', arg: 'condition' }), a.dtype);
    return ctx.k.where(cond, a, b, { op: 'where' });
  },
  vjp({ g, x }) {
    const c = x[0] as NDArray;
    const zero = F.zeros_like(g[0]);
    return [null, F.where(c, g[0], zero), F.where(c, zero, g[0])];
  },
});
