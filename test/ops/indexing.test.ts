/** take, pick, one_hot, Embedding, slice, slice_axis, flip, concat, stack, split, tile, repeat, where. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { flat, near, rejects, shapeOf, val } from './helpers.js';
import { NO_PRESSURE } from './helpers.js';

let srv: TestServer;
let c: Client;
beforeAll(async () => {
  srv = await startServer(NO_PRESSURE);
  c = await Client.open(srv.url, { default_dtype: 'float64' });
  await c.expr('a = nd.arange(12).reshape((3, 4)); t = nd.arange(24).reshape((2, 3, 4))');
});
afterAll(async () => { await srv.close(); });

describe('indexing by arrays', () => {
  it('take along axis 0 (clip mode by default) and along another axis', async () => {
    expect((await c.expr('nd.take(a, nd.array([[2, 0], [1, 7]]))')).result.data).toEqual([[[8, 9, 10, 11], [0, 1, 2, 3]], [[4, 5, 6, 7], [8, 9, 10, 11]]]);
    expect((await c.expr('nd.take(t, nd.array([3, 0]), axis=2)')).result.data).toEqual([[[3, 0], [7, 4], [11, 8]], [[15, 12], [19, 16], [23, 20]]]);
    expect(flat((await c.expr('nd.take(a, nd.array([-1, 4]), mode="wrap")')).result.data)).toEqual([8, 9, 10, 11, 4, 5, 6, 7]);
  });

  it('pick picks one element per row, with keepdims', async () => {
    expect((await c.expr('nd.pick(a, nd.array([0, 3, 1]))')).result.data).toEqual([0, 7, 9]);
    expect((await c.expr('nd.pick(a, nd.array([2, 0, 1, 2]), axis=0, keepdims=True)')).result.data).toEqual([[8, 1, 6, 11]]);
  });

  it('one_hot with on/off values', async () => {
    expect((await c.expr('nd.one_hot(nd.array([1, 0, 5]), 3)')).result.data).toEqual([[0, 1, 0], [1, 0, 0], [0, 0, 0]]);
    expect((await c.expr('nd.one_hot(nd.array([2]), depth=3, on_value=5, off_value=-1)')).result.data).toEqual([[-1, -1, 5]]);
  });

  it('Embedding looks rows up and sends gradients back to them (summed for repeats)', async () => {
    await c.expr('W = nd.arange(8).reshape((4, 2)); W.attach_grad(); idx = nd.array([[1, 3], [1, 0]])');
    expect((await c.expr('nd.Embedding(idx, W, input_dim=4, output_dim=2)')).result.data).toEqual([[[2, 3], [6, 7]], [[2, 3], [0, 1]]]);
    await c.expr('with autograd.record():\n    e = nd.Embedding(idx, W, input_dim=4, output_dim=2)\ne.backward()');
    expect(await c.data('W/grad')).toEqual([[1, 1], [2, 2], [0, 0], [1, 1]]);
  });

  it('errors name the argument', async () => {
    await rejects(c, 'nd.pick(a, nd.array([0, 1]))', 'pick', 'index', 'shape_mismatch');
    await rejects(c, 'nd.pick(a, nd.array([0, 1, 2]), axis=2)', 'pick', 'axis', 'invalid_attribute');
    await rejects(c, 'nd.take(a, nd.array([0]), axis=-3)', 'take', 'axis', 'invalid_attribute');
    await rejects(c, 'nd.take(a, nd.array([0]), mode="raise")', 'take', 'mode', 'invalid_attribute');
    await rejects(c, 'nd.Embedding(nd.array([0]), a, input_dim=4, output_dim=3)', 'Embedding', 'weight', 'shape_mismatch');
  });
});

describe('slicing', () => {
  it('slice with None entries and negative steps, as MXNet', async () => {
    expect((await c.expr('nd.slice(a, begin=(1, None), end=(3, None))')).result.data).toEqual([[4, 5, 6, 7], [8, 9, 10, 11]]);
    expect((await c.expr('nd.slice(a, begin=(None, 3), end=(None, 0), step=(2, -2))')).result.data).toEqual([[3, 1], [11, 9]]);
    expect((await c.expr('nd.slice_axis(a, axis=1, begin=1, end=-1)')).result.data).toEqual([[1, 2], [5, 6], [9, 10]]);
    expect((await c.expr('nd.slice_axis(a, axis=0, begin=2, end=None)')).result.data).toEqual([[8, 9, 10, 11]]);
  });

  it('flip and its alias reverse', async () => {
    expect((await c.expr('nd.flip(a, axis=1)')).result.data).toEqual([[3, 2, 1, 0], [7, 6, 5, 4], [11, 10, 9, 8]]);
    expect((await c.expr('nd.reverse(a, axis=(0, 1))')).result.data).toEqual([[11, 10, 9, 8], [7, 6, 5, 4], [3, 2, 1, 0]]);
  });

  it('errors name the argument', async () => {
    await rejects(c, 'nd.slice(a, begin=(0,), end=(1, 2))', 'slice', 'end', 'invalid_attribute');
    await rejects(c, 'nd.slice(a, begin=(0,), end=(1,), step=(0,))', 'slice', 'step', 'invalid_attribute');
    await rejects(c, 'nd.slice_axis(a, axis=1, begin=5, end=None)', 'slice_axis', 'begin', 'invalid_attribute');
    await rejects(c, 'nd.slice_axis(a, axis=1, begin=2, end=1)', 'slice_axis', 'end', 'invalid_attribute');
    await rejects(c, 'nd.flip(a, axis=2)', 'flip', 'axis', 'invalid_attribute');
  });
});

describe('joining and repeating', () => {
  it('concat along dim 1 (the default) and dim 0', async () => {
    expect((await c.expr('nd.concat(nd.ones((2, 1)), nd.zeros((2, 2)))')).result.data).toEqual([[1, 0, 0], [1, 0, 0]]);
    expect(await shapeOf(c, 'nd.concat(a, a, a, dim=0)')).toEqual([9, 4]);
  });

  it('stack adds an axis', async () => {
    expect((await c.expr('nd.stack(nd.array([1, 2]), nd.array([3, 4]), axis=1)')).result.data).toEqual([[1, 3], [2, 4]]);
    expect(await shapeOf(c, 'nd.stack(a, a)')).toEqual([2, 3, 4]);
  });

  it('split gives several outputs', async () => {
    const r = await c.post('/ops', { ops: [{ op: 'split', args: ['a'], attrs: { num_outputs: 2 }, out: ['p', 'q'] }], fetch: ['p', 'q'] }).expect(200);
    expect(r.body.outputs.p.data).toEqual([[0, 1], [4, 5], [8, 9]]);
    expect(r.body.outputs.q.data).toEqual([[2, 3], [6, 7], [10, 11]]);
    const s = await c.post('/ops', { ops: [{ op: 'split', args: ['a'], attrs: { num_outputs: 3, axis: 0, squeeze_axis: true }, out: ['r0', 'r1', 'r2'] }], fetch: ['r2'] }).expect(200);
    expect(s.body.outputs.r2.data).toEqual([8, 9, 10, 11]);
  });

  it('tile and repeat follow NumPy', async () => {
    expect((await c.expr('nd.tile(nd.array([[1, 2]]), reps=(2, 2))')).result.data).toEqual([[1, 2, 1, 2], [1, 2, 1, 2]]);
    expect((await c.expr('nd.tile(nd.array([1, 2]), reps=(2, 1, 2))')).result.shape).toEqual([2, 1, 4]);
    expect((await c.expr('nd.repeat(nd.array([[1, 2], [3, 4]]), repeats=2, axis=1)')).result.data).toEqual([[1, 1, 2, 2], [3, 3, 4, 4]]);
    expect((await c.expr('nd.repeat(nd.array([[1, 2], [3, 4]]), repeats=2)')).result.data).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
  });

  it('where picks from x or y and sends gradients to each side only', async () => {
    await c.expr('x = nd.array([1, 2, 3]); y = nd.array([10, 20, 30]); x.attach_grad(); y.attach_grad()');
    const r = await c.expr('with autograd.record():\n    z = nd.where(nd.array([1, 0, 1]), x, y)\nz.backward()\nz');
    expect(r.result.data).toEqual([1, 20, 3]);
    expect(await c.data('x/grad')).toEqual([1, 0, 1]);
    expect(await c.data('y/grad')).toEqual([0, 1, 0]);
  });

  it('errors name the argument', async () => {
    await rejects(c, 'nd.concat(a, nd.ones((2, 4)))', 'concat', 'data[1]', 'shape_mismatch');
    await rejects(c, 'nd.concat(a, a, dim=2)', 'concat', 'dim', 'invalid_attribute');
    await rejects(c, 'nd.stack(a, nd.ones((4, 3)))', 'stack', 'data[1]', 'shape_mismatch');
    const r = await c.post('/ops', { ops: [{ op: 'split', args: ['a'], attrs: { num_outputs: 3 } }] });
    expect(r.status).toBe(422);
    expect(r.body.detail).toContain('num_outputs');
    await rejects(c, 'nd.where(nd.ones(2), a, a)', 'where', 'condition');
  });
});

describe('linear algebra', () => {
  it('batch_dot multiplies each pair of matrices', async () => {
    const r = await c.expr('nd.batch_dot(t.reshape((2, 3, 4)), t.reshape((2, 4, 3)))');
    const tv = [...Array(24).keys()];
    const want: number[] = [];
    for (let b = 0; b < 2; b++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += tv[b * 12 + i * 4 + k] * tv[b * 12 + k * 3 + j];
      want.push(s);
    }
    expect(flat(r.result.data)).toEqual(want);
    expect(await shapeOf(c, 'nd.batch_dot(t, t, transpose_b=True)')).toEqual([2, 3, 3]);
    await rejects(c, 'nd.batch_dot(t, t)', 'batch_dot', 'rhs', 'shape_mismatch');
    await rejects(c, 'nd.batch_dot(a, a)', 'batch_dot', 'lhs', 'shape_mismatch');
  });

  it('FullyConnected computes x W^T + b, flattening by default', async () => {
    await c.expr('W = nd.arange(24).reshape((2, 12)) / 10; bb = nd.array([1, -1])');
    const x = [...Array(24).keys()];
    const w = x.slice(0, 24).map((v) => v / 10);
    const want = [0, 1].flatMap((n) => [0, 1].map((h) => x.slice(n * 12, n * 12 + 12).reduce((acc, v, k) => acc + v * w[h * 12 + k], 0) + [1, -1][h]));
    near(flat((await c.expr('nd.FullyConnected(t, W, bb, num_hidden=2)')).result.data), want);
    expect(await shapeOf(c, 'nd.FullyConnected(t, nd.ones((5, 4)), num_hidden=5, no_bias=True, flatten=False)')).toEqual([2, 3, 5]);
    await rejects(c, 'nd.FullyConnected(t, W, bb, num_hidden=3)', 'FullyConnected', 'weight', 'shape_mismatch');
    await rejects(c, 'nd.FullyConnected(t, W, nd.ones(3), num_hidden=2)', 'FullyConnected', 'bias', 'shape_mismatch');
    await rejects(c, 'nd.FullyConnected(t, W, num_hidden=2)', 'FullyConnected', 'bias', 'invalid_argument');
  });

  it('dot contracts the last axis of lhs with the first of rhs for N-d arrays', async () => {
    expect(await shapeOf(c, 'nd.dot(t, nd.ones((4, 2, 5)))')).toEqual([2, 3, 2, 5]);
  });
});
