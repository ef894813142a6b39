/**
 * Neural-network layers that are not convolutions: the softmax family, activations, Dropout and
 * BatchNorm. Softmaxes subtract the maximum before exponentiating, so large logits do not overflow.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { oneHotK } from './index_ops.js';
import { F } from '../autograd/apply.js';
import { normAxis, sameDtype } from '../engine/kernels.js';
import { shapeStr, sizeOf, type NDArray } from '../engine/ndarray.js';
import { fail } from '../errors.js';

const SoftmaxAttrs = z.object({
  axis: z.number().int().default(-1),
  temperature: z.number().positive().nullable().default(null),
}).strict();

/** x / temperature minus its max along axis, and that axis normalised. */
function shifted(ctx: OpContext, x: NDArray, a: z.infer<typeof SoftmaxAttrs>): { z: NDArray; ax: number } {
  const ax = normAxis(a.axis, x.shape.length, { op: ctx.op, arg: 'axis' });
  const site = { op: ctx.op };
  const xt = a.temperature === null || a.temperature === 1 ? x : ctx.k.binary('div', x, a.temperature, site);
  return { z: ctx.k.binary('sub', xt, ctx.k.reduce('max', xt, [ax], true), site), ax };
}

const inv = (t: number | null) => (t === null ? 1 : 1 / t);

defineOp({
  name: 'softmax',
  doc: 'exp(x) / sum(exp(x)) along `axis` (default the last), stable.',
  inputs: ['data'],
  positional: ['axis'],
  attrs: SoftmaxAttrs,
  save: { outputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[2, 3, 4]], attrs: { axis: 1, temperature: 2 } }],
  forward(ctx, [x], a) {
    const { z: s, ax } = shifted(ctx, x, a);
    const e = ctx.k.unary('exp', s);
    return ctx.k.binary('div', e, ctx.k.reduce('sum', e, [ax], true), { op: 'softmax' });
  },
  vjp({ g, y, attrs }) {
    const s = y[0]!;
    const ax = normAxis(attrs.axis, s.shape.length, { op: 'softmax', arg: 'axis' });
    const dot = F.sum(F.multiply(g[0], s), { axis: ax, keepdims: true });
    return [F.multiply(F.multiply(s, F.subtract(g[0], dot)), inv(attrs.temperature))];
  },
});

defineOp({
  name: 'log_softmax',
  doc: 'log(softmax(x)) along `axis`, computed as x - max - log(sum(exp(x - max))).',
  inputs: ['data'],
  positional: ['axis'],
  attrs: SoftmaxAttrs,
  save: { outputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[2, 3, 4]], attrs: { axis: 0, temperature: 0.5 } }],
  forward(ctx, [x], a) {
    const { z: s, ax } = shifted(ctx, x, a);
    const lse = ctx.k.unary('log', ctx.k.reduce('sum', ctx.k.unary('exp', s), [ax], true));
    return ctx.k.binary('sub', s, lse, { op: 'log_softmax' });
  },
  vjp({ g, y, attrs }) {
    const ls = y[0]!;
    const ax = normAxis(attrs.axis, ls.shape.length, { op: 'log_softmax', arg: 'axis' });
    const total = F.sum(g[0], { axis: ax, keepdims: true });
    return [F.multiply(F.subtract(g[0], F.multiply(F.exp(ls), total)), inv(attrs.temperature))];
  },
});

defineOp({
  name: 'softmax_cross_entropy',
  doc: 'sum over the batch of -log softmax(data)[i, label[i]]: data [N, C], label [N] of class indices; shape [1], as MXNet.',
  inputs: ['data', 'label'],
  save: { inputs: [0], outputs: true },
  visibleOutputs: 1,
  domain: [0, 2.9],
  examples: [{ shapes: [[4, 3], [4]] }],
  forward(ctx, [x, label]) {
    if (x.shape.length !== 2) throw fail('shape_mismatch', `\`data\` of \`softmax_cross_entropy\` must have shape [batch, classes], got ${shapeStr(x.shape)}`, { arg: 'data' });
    if (label.shape.length !== 1 || label.shape[0] !== x.shape[0]) {
      throw fail('shape_mismatch', `\`label\` of \`softmax_cross_entropy\` must have shape [${x.shape[0]}] (one class per row of data), got ${shapeStr(label.shape)}`, { arg: 'label' });
    }
    sameDtype(x, label, { op: 'softmax_cross_entropy', arg: 'label' });
    const site = { op: 'softmax_cross_entropy' };
    const s = ctx.k.binary('sub', x, ctx.k.reduce('max', x, [1], true), site);
    const ls = ctx.k.binary('sub', s, ctx.k.unary('log', ctx.k.reduce('sum', ctx.k.unary('exp', s), [1], true)), site);
    const oh = oneHotK(ctx, ctx.k.unary('floor', label), x.shape[1]);
    const picked = ctx.k.reduce('sum', ctx.k.binary('mul', ls, oh, site), [0, 1], false);
    return [ctx.k.unary('neg', picked), oh];
  },
  // d/d data of -sum(log_softmax(data) * onehot) is softmax(data) - onehot; the one-hot is the hidden output.
  vjp: ({ g, x, y }) => [F.multiply(F.subtract(F.softmax(x[0] as NDArray), y[1]!), g[0]), null],
});
