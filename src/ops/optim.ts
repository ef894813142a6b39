/**
 * MXNet's optimizer updates, in place: each writes the new weight (and its state arrays) into
 * the buffers it was given and returns the weight. The executor refuses them inside record scopes
 * and on arrays a live tape needs (`mutates`). Formulas follow MXNet's optimizer_op, evaluated in
 * the same order as the reference formulas (so results are bitwise the same), with each step
 * written into the state it updates or into one or two scratch arrays: a step allocates the
 * scratch only, not a temporary per term. When two of the inputs share a buffer, the updates are
 * computed out of place first, as the formulas read the old values throughout.
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

/** Clips g (a scratch array) to [-c, c] in place. */
function clipInto(ctx: OpContext, g: NDArray, c: number): void {
  if (!(c > 0)) return;
  const site = { op: ctx.op };
  ctx.k.binary('minimum', g, c, site, g);
  ctx.k.binary('maximum', g, -c, site, g);
}

/** True when no two of xs share a buffer (then each can be written while the others are read). */
function distinct(xs: NDArray[]): boolean {
  for (let i = 0; i < xs.length; i++) for (let j = i + 1; j < xs.length; j++) if (xs[i].cell === xs[j].cell) return false;
  return true;
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
    const k = ctx.k;
    if (!distinct(xs)) {
      const step = k.binary('mul', clipK(ctx, k.binary('mul', g, a.rescale_grad, site), a.clip_gradient), a.lr, site);
      k.assign(k.binary('sub', k.binary('mul', w, 1 - a.lr * a.wd, site), step, site), w);
      return w;
    }
    // step = lr * clip(rescale_grad * grad); weight = weight * (1 - lr*wd) - step. A product by 1
    // (the defaults rescale_grad=1, wd=0) changes no value, Inf and NaN included, so it is not
    // run: the defaults take two passes over the weight's size instead of four.
    const scaled = a.rescale_grad !== 1 || a.clip_gradient > 0;
    const step = k.binary('mul', g, scaled ? a.rescale_grad : a.lr, site);
    if (scaled) {
      clipInto(ctx, step, a.clip_gradient);
      k.binary('mul', step, a.lr, site, step);
    }
    const keep = 1 - a.lr * a.wd;
    if (keep !== 1) k.binary('mul', w, keep, site, w);
    k.binary('sub', w, step, site, w);
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
    const k = ctx.k;
    if (!distinct(xs)) {
      const gs = clipK(ctx, k.binary('mul', g, a.rescale_grad, site), a.clip_gradient);
      const decay = k.binary('mul', w, a.lr * a.wd, site);
      const next = k.binary('sub', k.binary('sub', k.binary('mul', mom, a.momentum, site), decay, site), k.binary('mul', gs, a.lr, site), site);
      k.assign(next, mom);
      k.assign(k.binary('add', w, next, site), w);
      return w;
    }
    // mom = (momentum * mom - lr*wd * weight) - lr * clip(rescale_grad * grad); weight += mom.
    const gs = k.binary('mul', g, a.rescale_grad, site);
    clipInto(ctx, gs, a.clip_gradient);
    const decay = k.binary('mul', w, a.lr * a.wd, site);
    k.binary('mul', mom, a.momentum, site, mom);
    k.binary('sub', mom, decay, site, mom);
    k.binary('mul', gs, a.lr, site, gs);
    k.binary('sub', mom, gs, site, mom);
    k.binary('add', w, mom, site, w);
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
    const k = ctx.k;
    if (!distinct(xs)) {
      const gs = clipK(ctx, k.binary('add', k.binary('mul', g, a.rescale_grad, site), k.binary('mul', w, a.wd, site), site), a.clip_gradient);
      const m2 = k.binary('add', k.binary('mul', mean, a.beta1, site), k.binary('mul', gs, 1 - a.beta1, site), site);
      const v2 = k.binary('add', k.binary('mul', v, a.beta2, site), k.binary('mul', k.unary('square', gs), 1 - a.beta2, site), site);
      const denom = k.binary('add', k.unary('sqrt', v2), a.epsilon, site);
      const w2 = k.binary('sub', w, k.binary('mul', k.binary('div', m2, denom, site), a.lr, site), site);
      k.assign(m2, mean);
      k.assign(v2, v);
      k.assign(w2, w);
      return w;
    }
    // gs = clip(rescale_grad * grad + wd * weight), in gs; t is the second scratch array.
    const gs = k.binary('mul', g, a.rescale_grad, site);
    const t = k.binary('mul', w, a.wd, site);
    k.binary('add', gs, t, site, gs);
    clipInto(ctx, gs, a.clip_gradient);
    // mean = b1 * mean + (1 - b1) * gs
    k.binary('mul', mean, a.beta1, site, mean);
    k.binary('mul', gs, 1 - a.beta1, site, t);
    k.binary('add', mean, t, site, mean);
    // var = b2 * var + (1 - b2) * gs²
    k.binary('mul', v, a.beta2, site, v);
    k.unary('square', gs, t);
    k.binary('mul', t, 1 - a.beta2, site, t);
    k.binary('add', v, t, site, v);
    // weight -= lr * mean / (sqrt(var) + epsilon)
    k.unary('sqrt', v, t);
    k.binary('add', t, a.epsilon, site, t);
    k.binary('div', mean, t, site, t);
    k.binary('mul', t, a.lr, site, t);
    k.binary('sub', w, t, site, w);
    return w;
  },
});
