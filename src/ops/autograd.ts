/** Ops about the graph itself: cutting it, copying, converting, reading a scalar. */
import { z } from 'zod';
import { defineOp } from './registry.js';
import { DType } from './attrs.js';
import { F } from './dispatch.js';
import { shapeStr } from '../engine/ndarray.js';
import { fail } from '../errors.js';

// detach and stop_gradient are views with no vjp: the output is a constant to autograd.
defineOp({
  name: 'detach',
  dtypes: 'any',
  doc: 'The same data with no autograd history: a constant to later recordings.',
  inputs: ['data'],
  forward: (ctx, [x]) => ctx.k.view(x, x.shape),
});

defineOp({
  name: 'stop_gradient',
  dtypes: 'any',
  aliases: ['BlockGrad', 'block_grad'],
  doc: 'Passes data forward and no gradient backward (MXNet BlockGrad).',
  inputs: ['data'],
  forward: (ctx, [x]) => ctx.k.view(x, x.shape),
});

defineOp({
  name: 'copy',
  dtypes: 'any',
  aliases: ['identity', '_copy'],
  doc: 'A copy of the data (differentiable: the gradient passes through).',
  inputs: ['data'],
  forward: (ctx, [x]) => ctx.k.copy(x),
  vjp: ({ g }) => [g[0]],
});

defineOp({
  name: 'astype',
  dtypes: 'any',
  examples: [{ shapes: [[3, 4]], attrs: { dtype: 'float64' } }],
  aliases: ['cast', 'Cast'],
  doc: 'A copy converted to `dtype`.',
  inputs: ['data'],
  positional: ['dtype'],
  attrs: z.object({ dtype: DType }).strict(),
  forward: (ctx, [x], a) => ctx.k.cast(x, a.dtype),
  vjp: ({ g, dtypes }) => [F.astype(g[0], { dtype: dtypes[0] })],
});

defineOp({
  name: 'asscalar',
  dtypes: 'any',
  doc: 'The single value of a one-element array (a JSON number when it is the result of a request).',
  inputs: ['data'],
  forward(ctx, [x]) {
    if (x.size !== 1) throw fail('shape_mismatch', `\`asscalar\` needs exactly one element; \`data\` has shape ${shapeStr(x.shape)}`, { arg: 'data' });
    return ctx.k.view(x, [1]);
  },
});
