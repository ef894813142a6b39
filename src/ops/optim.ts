/**
 * MXNet's optimizer updates, in place: each writes the new weight (and its state arrays) into
 * the buffers it was given and returns the weight. The executor refuses them inside record scopes
 * and on arrays a live tape needs (`mutates`). Formulas follow MXNet's optimizer_op.
 */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { sameDtype } from '../engine/kernels.js';
import { sameShape, shapeStr, type NDArray } from '../engine/ndarray.js';
import { fail } from '../errors.js';

const common = {
  lr: z.number(),
  wd: z.number().default(0),
  rescale_grad: z.number().default(1),
  clip_gradient: z.number().default(-1).describe('clip the rescaled gradient to [-c, c]; c <= 0 turns clipping off'),
  lazy_update: z.boolean().default(true),
};

function checkSame(op: string, names: string[], xs: NDArray[]): void {
  xs.slice(1).forEach((x, i) => {
    sameDtype(xs[0], x, { op, arg: names[i + 1] });
    if (!sameShape(x.shape, xs[0].shape)) throw fail('shape_mismatch', `\`${names[i + 1]}\` of \`${op}\` has shape ${shapeStr(x.shape)} but \`weight\` has ${shapeStr(xs[0].shape)}`, { arg: names[i + 1] });
  });
}

function clipK(ctx: OpContext, g: NDArray, c: number): NDArray {
  if (!(c > 0)) return g;
  const site = { op: ctx.op };
  return ctx.k.binary('maximum', ctx.k.binary('minimum', g, c, site), -c, site);
}

const SGD = ['weight', 'grad'];
defineOp({
  name: 'sgd_update',
  doc: 'In place: weight = (1 - lr*wd) * weight - lr * clip(rescale_grad * grad).',
  inputs: SGD,
  attrs: z.object(common).strict(),
  mutates: [0],
  forward(ctx, xs, a) {
    checkSame('sgd_update', SGD, xs);
    const [w, g] = xs;
    const site = { op: 'sgd_update' };
    const step = ctx.k.binary('mul', clipK(ctx, ctx.k.binary('mul', g, a.rescale_grad, site), a.clip_gradient), a.lr, site);
    ctx.k.assign(ctx.k.binary('sub', ctx.k.binary('mul', w, 1 - a.lr * a.wd, site), step, site), w);
    return w;
  },
});

const MOM = ['weight', 'grad', 'mom'];
defineOp({
  name: 'sgd_mom_update',
  doc: 'In place: mom = momentum * mom - lr*wd * weight - lr * clip(rescale_grad * grad); weight += mom.',
  inputs: MOM,
  attrs: z.object({ ...common, momentum: z.number().default(0) }).strict(),
  mutates: [0, 2],
  forward(ctx, xs, a) {
    checkSame('sgd_mom_update', MOM, xs);
    const [w, g, mom] = xs;
    const site = { op: 'sgd_mom_update' };
    const gs = clipK(ctx, ctx.k.binary('mul', g, a.rescale_grad, site), a.clip_gradient);
    const decay = ctx.k.binary('mul', w, a.lr * a.wd, site);
    const next = ctx.k.binary('sub', ctx.k.binary('sub', ctx.k.binary('mul', mom, a.momentum, site), decay, site), ctx.k.binary('mul', gs, a.lr, site), site);
    ctx.k.assign(next, mom);
    ctx.k.assign(ctx.k.binary('add', w, next, site), w);
    return w;
  },
});

const ADAM = ['weight', 'grad', 'mean', 'var'];
defineOp({
  name: 'adam_update',
  doc: 'In place: g = clip(rescale_grad * grad + wd * weight); mean = b1*mean + (1-b1)*g; var = b2*var + (1-b2)*g²; weight -= lr * mean / (sqrt(var) + epsilon) (no bias correction: fold it into lr, as MXNet\'s Adam does).',
  inputs: ADAM,
  attrs: z.object({ ...common, beta1: z.number().default(0.9), beta2: z.number().default(0.999), epsilon: z.number().default(1e-8) }).strict(),
  mutates: [0, 2, 3],
  forward(ctx, xs, a) {
    checkSame('adam_update', ADAM, xs);
    const [w, g, mean, v] = xs;
    const site = { op: 'adam_update' };
    const gs = clipK(ctx, ctx.k.binary('add', ctx.k.binary('mul', g, a.rescale_grad, site), ctx.k.binary('mul', w, a.wd, site), site), a.clip_gradient);
    const m2 = ctx.k.binary('add', ctx.k.binary('mul', mean, a.beta1, site), ctx.k.binary('mul', gs, 1 - a.beta1, site), site);
    const v2 = ctx.k.binary('add', ctx.k.binary('mul', v, a.beta2, site), ctx.k.binary('mul', ctx.k.unary('square', gs), 1 - a.beta2, site), site);
    const denom = ctx.k.binary('add', ctx.k.unary('sqrt', v2), a.epsilon, site);
    const w2 = ctx.k.binary('sub', w, ctx.k.binary('mul', ctx.k.binary('div', m2, denom, site), a.lr, site), site);
    ctx.k.assign(m2, mean);
    ctx.k.assign(v2, v);
    ctx.k.assign(w2, w);
    return w;
  },
});
