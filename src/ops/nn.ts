/**
 * Neural-network layers that are not convolutions: the softmax family, activations, Dropout and
 * BatchNorm. Softmaxes subtract the maximum before exponentiating, so large logits do not overflow.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { oneHotK } from './index_ops.js';
import { unaryForward, unaryRow, type UnaryRow } from './unary.js';
import { F } from './dispatch.js';
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
    // s is this forward's own temporary: each step writes over it instead of a new array.
    const e = ctx.k.unary('exp', s, s);
    return ctx.k.binary('div', e, ctx.k.reduce('sum', e, [ax], true), { op: 'softmax' }, e);
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
    const sums = ctx.k.reduce('sum', ctx.k.unary('exp', s), [ax], true);
    const lse = ctx.k.unary('log', sums, sums);
    return ctx.k.binary('sub', s, lse, { op: 'log_softmax' }, s);
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
    // Every intermediate but the one-hot (a hidden output) is this forward's own: steps write
    // over them instead of allocating.
    const s = ctx.k.binary('sub', x, ctx.k.reduce('max', x, [1], true), site);
    const sums = ctx.k.reduce('sum', ctx.k.unary('exp', s), [1], true);
    const ls = ctx.k.binary('sub', s, ctx.k.unary('log', sums, sums), site, s);
    const floor = ctx.k.unary('floor', label);
    const oh = oneHotK(ctx, floor, x.shape[1]);
    const picked = ctx.k.reduce('sum', ctx.k.binary('mul', ls, oh, site, ls), [0, 1], false);
    return [ctx.k.unary('neg', picked, picked), oh];
  },
  // d/d data of -sum(log_softmax(data) * onehot) is softmax(data) - onehot; the one-hot is the hidden output.
  vjp: ({ g, x, y }) => [F.multiply(F.subtract(F.softmax(x[0] as NDArray), y[1]!), g[0]), null],
});

// --- activations ---

/** Activation's act_types are unary ops of unary.ts: it runs their rows (forward and vjp). */
const ACT_TYPES = ['relu', 'sigmoid', 'tanh', 'softrelu', 'softsign'] as const;
const ACTIVATIONS = Object.fromEntries(ACT_TYPES.map((t) => [t, unaryRow(t)])) as Record<(typeof ACT_TYPES)[number], UnaryRow>;

defineOp({
  name: 'Activation',
  aliases: ['activation'],
  doc: 'An elementwise activation chosen by act_type: relu, sigmoid, tanh, softrelu or softsign.',
  inputs: ['data'],
  positional: ['act_type'],
  attrs: z.object({ act_type: z.enum(ACT_TYPES) }).strict(),
  // Rules read the input (relu, softrelu, softsign) or the output (sigmoid, tanh).
  save: { inputs: true, outputs: true },
  // Away from relu's kink at 0.
  domain: [0.1, 2],
  examples: ACT_TYPES.map((act_type) => ({ shapes: [[3, 4]], attrs: { act_type } })),
  forward: (ctx, [x], a) => unaryForward(ACTIVATIONS[a.act_type], ctx, x),
  vjp: ({ g, x, y, attrs }) => [ACTIVATIONS[attrs.act_type].vjp(g[0], x[0] as NDArray, y[0] as NDArray)],
});

defineOp({
  name: 'hard_sigmoid',
  doc: 'Elementwise clip(alpha * x + beta, 0, 1).',
  inputs: ['data'],
  attrs: z.object({ alpha: z.number().default(0.2), beta: z.number().default(0.5) }).strict(),
  save: { inputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[3, 4]], attrs: { alpha: 0.5, beta: 0.2 } }],
  forward(ctx, [x], a) {
    const site = { op: 'hard_sigmoid' };
    const lin = ctx.k.binary('add', ctx.k.binary('mul', x, a.alpha, site), a.beta, site);
    return ctx.k.binary('maximum', ctx.k.binary('minimum', lin, 1, site), 0, site);
  },
  vjp({ g, x, attrs }) {
    const lin = F.add(F.multiply(x[0] as NDArray, attrs.alpha), attrs.beta);
    const inside = F.multiply(F.greater(lin, 0), F.lesser(lin, 1));
    return [F.multiply(g[0], F.multiply(inside, attrs.alpha))];
  },
});

// SELU's constants (Klambauer et al. 2017), as MXNet uses them.
const SELU_ALPHA = 1.6732632423543772848170429916717;
const SELU_LAMBDA = 1.0507009873554804934193349852946;

defineOp({
  name: 'LeakyReLU',
  aliases: ['leaky_relu'],
  doc: 'Leaky rectifiers by act_type: leaky (x or slope*x), elu (x or slope*(e^x - 1)), selu (scaled elu with fixed constants).',
  inputs: ['data'],
  positional: ['act_type', 'slope'],
  attrs: z.object({ act_type: z.enum(['leaky', 'elu', 'selu']).default('leaky'), slope: z.number().default(0.25) }).strict(),
  save: { inputs: true },
  examples: [{ shapes: [[3, 4]] }, { shapes: [[3, 4]], attrs: { act_type: 'elu', slope: 0.5 } }, { shapes: [[3, 4]], attrs: { act_type: 'selu' } }],
  forward(ctx, [x], a) {
    const site = { op: 'LeakyReLU' };
    const pos = ctx.k.binary('gt', x, 0, site);
    if (a.act_type === 'leaky') return ctx.k.where(pos, x, ctx.k.binary('mul', x, a.slope, site), site);
    const [alpha, scale] = a.act_type === 'elu' ? [a.slope, 1] : [SELU_ALPHA, SELU_LAMBDA];
    const y = ctx.k.where(pos, x, ctx.k.binary('mul', ctx.k.unary('expm1', x), alpha, site), site);
    return scale === 1 ? y : ctx.k.binary('mul', y, scale, site);
  },
  vjp({ g, x, attrs }) {
    const xs = x[0] as NDArray;
    const pos = F.greater(xs, 0);
    if (attrs.act_type === 'leaky') return [F.where(pos, g[0], F.multiply(g[0], attrs.slope))];
    const [alpha, scale] = attrs.act_type === 'elu' ? [attrs.slope, 1] : [SELU_ALPHA, SELU_LAMBDA];
    return [F.multiply(F.where(pos, g[0], F.multiply(g[0], F.multiply(F.exp(xs), alpha))), scale)];
  },
});

// --- Dropout ---

defineOp({
  name: 'Dropout',
  aliases: ['dropout'],
  doc: 'While training (or with mode="always"): zeroes each element with probability p and scales the rest by 1/(1-p); otherwise the identity.',
  inputs: ['data'],
  positional: ['p'],
  attrs: z.object({ p: z.number().default(0.5), mode: z.enum(['training', 'always']).default('training') }).strict(),
  modeDependent: true,
  visibleOutputs: 1,
  // The mask (hidden output 1) is all the vjp needs.
  save: { outputs: true },
  // The mask is random, so finite differences can only check p = 0 here; test/ops/nn.test.ts checks the rest.
  examples: [{ shapes: [[3, 4]], attrs: { p: 0 } }],
  forward(ctx, [x], a) {
    if (!(a.p >= 0 && a.p < 1)) throw fail('invalid_attribute', `\`p\` of \`Dropout\` must lie in [0, 1), got ${a.p}`, { attribute: 'p' });
    if (!(ctx.isTraining || a.mode === 'always') || a.p === 0) return [ctx.k.copy(x), ctx.k.full(x.dtype, [1], 1)];
    const u = ctx.k.randomUniform(x.dtype, x.shape, 0, 1, ctx.random);
    const mask = ctx.k.binary('mul', ctx.k.binary('ge', u, a.p, { op: 'Dropout' }), 1 / (1 - a.p), { op: 'Dropout' });
    return [ctx.k.binary('mul', x, mask, { op: 'Dropout' }), mask];
  },
  vjp: ({ g, y }) => [F.multiply(g[0], y[1]!)],
});

// --- BatchNorm ---

const BatchNormAttrs = z.object({
  eps: z.number().min(0).default(1e-3),
  momentum: z.number().min(0).max(1).default(0.9),
  fix_gamma: z.boolean().default(true),
  use_global_stats: z.boolean().default(false),
  axis: z.number().int().default(1),
  output_mean_var: z.boolean().default(false),
  cudnn_off: z.boolean().default(false),
}).strict();

const BN_ARGS = ['data', 'gamma', 'beta', 'moving_mean', 'moving_var'];

defineOp({
  name: 'BatchNorm',
  aliases: ['batch_norm'],
  doc: 'Batch normalisation over every axis but `axis`: batch statistics while training (updating moving_mean/moving_var in place), the moving ones otherwise. fix_gamma=True (the default) ignores gamma.',
  inputs: BN_ARGS,
  attrs: BatchNormAttrs,
  modeDependent: true,
  mutates: [3, 4],
  mutatesWhileRecording: true,
  // Hidden outputs: the mean and 1/std used, and t (1 for batch statistics, 0 for moving ones).
  visibleOutputs: 1,
  save: { inputs: [0, 1], outputs: true },
  domain: [0.5, 2],
  examples: [
    { shapes: [[4, 3], [3], [3], [3], [3]], attrs: { fix_gamma: false } },
    { shapes: [[2, 3, 2, 2], [3], [3], [3], [3]] },
    { shapes: [[2, 2, 3], [3], [3], [3], [3]], attrs: { axis: -1, fix_gamma: false, use_global_stats: true } },
  ],
  forward(ctx, xs, a) {
    const [x, gamma, beta, mm, mv] = xs;
    const ax = normAxis(a.axis, x.shape.length, { op: 'BatchNorm', arg: 'axis' });
    const C = x.shape[ax];
    xs.slice(1).forEach((p, i) => {
      sameDtype(x, p, { op: 'BatchNorm', arg: BN_ARGS[i + 1] });
      if (p.shape.length !== 1 || p.shape[0] !== C) {
        throw fail('shape_mismatch', `\`${BN_ARGS[i + 1]}\` of \`BatchNorm\` must have shape [${C}] (axis ${ax} of data ${shapeStr(x.shape)}), got ${shapeStr(p.shape)}`, { arg: BN_ARGS[i + 1] });
      }
    });
    const site = { op: 'BatchNorm' };
    const kept = x.shape.map((d, i) => (i === ax ? d : 1));
    const axes = x.shape.map((_, i) => i).filter((i) => i !== ax);
    const n = sizeOf(x.shape) / C;
    const batch = ctx.isTraining && !a.use_global_stats;
    let mean: NDArray;
    let invstd: NDArray;
    if (batch) {
      mean = ctx.k.binary('div', ctx.k.reduce('sum', x, axes, false), n, site);
      const xc = ctx.k.binary('sub', x, ctx.k.view(mean, kept), site);
      // The biased variance, for normalising and for the moving average alike, as MXNet does.
      const varB = ctx.k.binary('div', ctx.k.reduce('sum', ctx.k.unary('square', xc), axes, false), n, site);
      invstd = ctx.k.unary('rsqrt', ctx.k.binary('add', varB, a.eps, site));
      updateMoving(ctx, mm, mean, a.momentum);
      updateMoving(ctx, mv, varB, a.momentum);
    } else {
      mean = ctx.k.copy(mm);
      invstd = ctx.k.unary('rsqrt', ctx.k.binary('add', mv, a.eps, site));
    }
    const xhat = ctx.k.binary('mul', ctx.k.binary('sub', x, ctx.k.view(mean, kept), site), ctx.k.view(invstd, kept), site);
    const scaled = a.fix_gamma ? xhat : ctx.k.binary('mul', xhat, ctx.k.view(gamma, kept), site);
    const y = ctx.k.binary('add', scaled, ctx.k.view(beta, kept), site);
    return [y, mean, invstd, ctx.k.full(x.dtype, [1], batch ? 1 : 0)];
  },
  vjp({ g, x, y, attrs, shapes }) {
    const shape = shapes[0]!;
    const ax = normAxis(attrs.axis, shape.length, { op: 'BatchNorm', arg: 'axis' });
    const C = shape[ax];
    const kept = shape.map((d, i) => (i === ax ? d : 1));
    const axes = shape.map((_, i) => i).filter((i) => i !== ax);
    const n = sizeOf(shape) / C;
    const [data, gamma] = x as NDArray[];
    const [, mean, invstd, t] = y as NDArray[];
    const b = (v: NDArray) => F.reshape(v, { shape: kept });
    const sumK = (v: NDArray) => F.sum(v, { axis: axes, keepdims: true });
    const xhat = F.multiply(F.subtract(data, b(mean)), b(invstd));
    const dxhat = attrs.fix_gamma ? g[0] : F.multiply(g[0], b(gamma));
    // With batch statistics (t = 1) the mean and the variance depend on x: the usual three-term rule.
    const centred = F.add(sumK(dxhat), F.multiply(xhat, sumK(F.multiply(dxhat, xhat))));
    let dx = F.multiply(b(invstd), F.subtract(dxhat, F.multiply(t, F.divide(centred, n))));
    // Gradients reaching the hidden mean and 1/std outputs (only in higher-order graphs).
    const gMean = F.multiply(F.divide(b(g[1]), n), t);
    const gInv = F.multiply(F.negative(F.divide(F.multiply(F.multiply(b(g[2]), F.square(b(invstd))), xhat), n)), t);
    dx = F.add(dx, F.add(gMean, gInv));
    const dgamma = attrs.fix_gamma ? F.zeros_like(gamma) : F.reshape(sumK(F.multiply(g[0], xhat)), { shape: [C] });
    const dbeta = F.reshape(sumK(g[0]), { shape: [C] });
    // With moving statistics (t = 0) the output depends on them too; MXNet leaves their gradient
    // out, but the true one costs two sums and keeps every gradient here a derivative.
    const off = F.subtract(1, t);
    const fromY = F.negative(F.reshape(F.multiply(sumK(dxhat), b(invstd)), { shape: [C] }));
    // The hidden outputs are then moving_mean itself and (moving_var + eps)^-1/2: what reaches them
    // (in higher-order graphs) belongs to the moving statistics, not to x.
    const dmm = F.multiply(F.add(fromY, g[1]), off);
    // d/d invstd, times invstd (y's part is sum(dxhat * xhat)); d invstd / d moving_var = -invstd³/2.
    const dInvScaled = F.add(F.reshape(sumK(F.multiply(dxhat, xhat)), { shape: [C] }), F.multiply(g[2], invstd));
    const dmv = F.multiply(F.multiply(dInvScaled, F.multiply(-0.5, F.square(invstd))), off);
    return [dx, dgamma, dbeta, dmm, dmv];
  },
});

/** moving = momentum * moving + (1 - momentum) * batch, written into moving's buffer. */
function updateMoving(ctx: OpContext, moving: NDArray, batch: NDArray, momentum: number): void {
  const site = { op: 'BatchNorm' };
  const next = ctx.k.binary('add', ctx.k.binary('mul', moving, momentum, site), ctx.k.binary('mul', batch, 1 - momentum, site), site);
  ctx.k.assign(next, moving);
}
