/** Creation ops: arrays from nothing but attributes (and the session's seed). None is differentiable. */
import { z } from 'zod';
import { defineOp, type OpContext } from './registry.js';
import { OptDType, OptFloatDType, Shape } from './attrs.js';
import { itemSize, type DType } from '../engine/backend.js';
import { NDArray, shapeStr, sizeOf } from '../engine/ndarray.js';
import { fail } from '../errors.js';
import { decodeBase64 } from '../engine/base64.js';

const dt = (ctx: OpContext, d?: DType) => d ?? ctx.defaultDtype;

for (const [name, value] of [['zeros', 0], ['ones', 1]] as const) {
  defineOp({
    name,
    doc: `An array of ${value === 0 ? 'zeros' : 'ones'} of the given shape.`,
    creation: true,
    positional: ['shape'],
    attrs: z.object({ shape: Shape, dtype: OptDType }).strict(),
    forward: (ctx, _x, a) => ctx.k.full(dt(ctx, a.dtype), a.shape, value),
  });
}

defineOp({
  name: 'full',
  doc: 'An array of the given shape filled with `val`.',
  creation: true,
  positional: ['shape', 'val'],
  attrs: z.object({ shape: Shape, val: z.number(), dtype: OptDType }).strict(),
  forward: (ctx, _x, a) => ctx.k.full(dt(ctx, a.dtype), a.shape, a.val),
});

defineOp({
  name: 'arange',
  doc: 'Evenly spaced values in [start, stop) with `step`; with one argument, [0, start).',
  creation: true,
  positional: ['start', 'stop', 'step'],
  attrs: z.object({
    start: z.number(),
    stop: z.number().nullable().default(null),
    step: z.number().default(1),
    repeat: z.number().int().min(1).default(1),
    dtype: OptDType,
  }).strict(),
  forward(ctx, _x, a) {
    const [start, stop] = a.stop === null ? [0, a.start] : [a.start, a.stop];
    if (a.step === 0 || !Number.isFinite(a.step)) throw fail('invalid_attribute', '`step` of `arange` must be a finite non-zero number', { attribute: 'step' });
    const n = Math.max(0, Math.ceil((stop - start) / a.step));
    if (!Number.isFinite(n)) throw fail('invalid_attribute', '`start` and `stop` of `arange` must be finite', { attribute: 'stop' });
    const base = ctx.k.arange(dt(ctx, a.dtype), n, start, a.step);
    if (a.repeat === 1) return base;
    // repeat each value `repeat` times, as MXNet does: a broadcast along a new trailing axis.
    return reshapeFlat(ctx, base, n, a.repeat);
  },
});

function reshapeFlat(ctx: OpContext, base: NDArray, n: number, r: number): NDArray {
  const g = ctx.k.gather(base, { shape: [n, r], strides: [1, 0], offset: 0 });
  return ctx.k.view(g, [n * r]);
}

defineOp({
  name: 'linspace',
  doc: '`num` evenly spaced values from start to stop (stop included unless endpoint is false).',
  creation: true,
  positional: ['start', 'stop', 'num'],
  attrs: z.object({
    start: z.number(), stop: z.number(), num: z.number().int().min(0),
    endpoint: z.boolean().default(true), dtype: OptDType,
  }).strict(),
  forward(ctx, _x, a) {
    const div = a.endpoint ? a.num - 1 : a.num;
    const step = div > 0 ? (a.stop - a.start) / div : 0;
    return ctx.k.arange(dt(ctx, a.dtype), a.num, a.start, step);
  },
});

defineOp({
  name: 'eye',
  doc: 'A 2-D array with ones on the k-th diagonal.',
  creation: true,
  positional: ['N', 'M', 'k'],
  attrs: z.object({
    N: z.number().int().min(0), M: z.number().int().min(0).default(0), k: z.number().int().default(0), dtype: OptDType,
  }).strict(),
  forward(ctx, _x, a) {
    return ctx.k.eye(dt(ctx, a.dtype), a.N, a.M || a.N, a.k);
  },
});

defineOp({
  name: 'random.normal',
  aliases: ['random_normal', 'normal'],
  doc: 'Samples of a normal distribution N(loc, scale²), from the session\'s seeded stream.',
  creation: true,
  positional: ['loc', 'scale', 'shape'],
  attrs: z.object({ loc: z.number().default(0), scale: z.number().min(0).default(1), shape: Shape.default([1]), dtype: OptFloatDType }).strict(),
  forward: (ctx, _x, a) => ctx.k.randomNormal(dt(ctx, a.dtype), a.shape, a.loc, a.scale, ctx.random),
});

defineOp({
  name: 'random.uniform',
  aliases: ['random_uniform', 'uniform'],
  doc: 'Samples of a uniform distribution on [low, high), from the session\'s seeded stream.',
  creation: true,
  positional: ['low', 'high', 'shape'],
  attrs: z.object({ low: z.number().default(0), high: z.number().default(1), shape: Shape.default([1]), dtype: OptFloatDType }).strict(),
  forward(ctx, _x, a) {
    if (!(a.high >= a.low)) throw fail('invalid_attribute', '`high` of `random.uniform` must be at least `low`', { attribute: 'high' });
    return ctx.k.randomUniform(dt(ctx, a.dtype), a.shape, a.low, a.high, ctx.random);
  },
});

for (const [name, value] of [['zeros_like', 0], ['ones_like', 1]] as const) {
  defineOp({
    name,
    doc: `An array of ${value === 0 ? 'zeros' : 'ones'} with the shape and dtype of \`data\`.`,
    inputs: ['data'],
    dtypes: 'any',
    forward: (ctx, [x]) => ctx.k.full(x.dtype, x.shape, value),
  });
}

defineOp({
  name: 'array',
  doc: 'An array from nested lists (an inline constant in args), like nd.array([[1, 2], [3, 4]]).',
  inputs: ['source_array'],
  dtypes: 'any',
  positional: ['dtype'],
  attrs: z.object({ dtype: OptDType }).strict(),
  forward: (ctx, [x], a) => ctx.k.cast(x, a.dtype ?? x.dtype),
});

defineOp({
  name: 'frombuffer',
  doc: 'An array from little-endian bytes, of `shape` and `dtype`, as numpy.frombuffer reads them: an upload inside a program. The bytes are `data` (base64) or, in a multipart program, the part named `part`.',
  creation: true,
  positional: ['data', 'shape', 'dtype'],
  attrs: z.object({ data: z.string().optional(), part: z.string().optional(), shape: Shape, dtype: OptDType }).strict(),
  forward(ctx, _x, a) {
    const dtype = dt(ctx, a.dtype);
    if ((a.data === undefined) === (a.part === undefined)) {
      throw fail('invalid_attribute', '`frombuffer` takes exactly one of `data` (base64) and `part` (the name of a multipart part)', { attribute: a.data === undefined ? 'data' : 'part' });
    }
    if (a.data !== undefined) return ctx.k.fromBytes(dtype, a.shape, decodeBase64(a.data, a.shape, dtype, 'data'));
    const bytes = ctx.upload(a.part!);
    const want = sizeOf(a.shape) * itemSize(dtype);
    if (bytes.length !== want) {
      throw fail('shape_mismatch', `part \`${a.part}\` holds ${bytes.length} bytes but shape ${shapeStr(a.shape)} of ${dtype} needs ${want}`, { attribute: 'part' });
    }
    return ctx.k.fromBytes(dtype, a.shape, bytes);
  },
});
