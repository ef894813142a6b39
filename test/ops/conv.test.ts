/** Convolution and Pooling against naive loops written here in plain JS. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { lit, near, rejects, seq, shapeOf, val } from './helpers.js';
import { NO_PRESSURE } from './helpers.js';

let srv: TestServer;
let c: Client;
beforeAll(async () => { srv = await startServer(NO_PRESSURE); c = await Client.open(srv.url, { default_dtype: 'float64' }); });
afterAll(async () => { await srv.close(); });

interface Geo { k: number[]; s: number[]; p: number[]; d: number[] }

/** Direct 2-D convolution (cross-correlation) with groups: the definition, one output at a time. */
function conv2d(x: number[], [N, C, H, W]: number[], w: number[], F: number, b: number[] | null, g: Geo, G = 1): { y: number[]; shape: number[] } {
  const [kh, kw] = g.k;
  const OH = Math.floor((H + 2 * g.p[0] - g.d[0] * (kh - 1) - 1) / g.s[0]) + 1;
  const OW = Math.floor((W + 2 * g.p[1] - g.d[1] * (kw - 1) - 1) / g.s[1]) + 1;
  const Cg = C / G;
  const Fg = F / G;
  const y: number[] = [];
  for (let n = 0; n < N; n++) for (let f = 0; f < F; f++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let acc = b ? b[f] : 0;
    const grp = Math.floor(f / Fg);
    for (let cc = 0; cc < Cg; cc++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const hh = oh * g.s[0] - g.p[0] + i * g.d[0];
      const ww = ow * g.s[1] - g.p[1] + j * g.d[1];
      if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
      const ch = grp * Cg + cc;
      acc += x[((n * C + ch) * H + hh) * W + ww] * w[((f * Cg + cc) * kh + i) * kw + j];
    }
    y.push(acc);
  }
  return { y, shape: [N, F, OH, OW] };
}

function pool2d(x: number[], [N, C, H, W]: number[], type: 'max' | 'avg', g: Geo, full = false): { y: number[]; shape: number[] } {
  const [kh, kw] = g.k;
  const out = (n: number, k: number, s: number, p: number) => (full ? Math.ceil((n + 2 * p - k) / s) : Math.floor((n + 2 * p - k) / s)) + 1;
  const OH = out(H, kh, g.s[0], g.p[0]);
  const OW = out(W, kw, g.s[1], g.p[1]);
  const y: number[] = [];
  for (let n = 0; n < N; n++) for (let ch = 0; ch < C; ch++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    const h0 = oh * g.s[0] - g.p[0];
    const w0 = ow * g.s[1] - g.p[1];
    // MXNet's divisor: the window clipped to the padded data, padding included.
    const count = (Math.min(h0 + kh, H + g.p[0]) - h0) * (Math.min(w0 + kw, W + g.p[1]) - w0);
    let acc = type === 'max' ? -Infinity : 0;
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const hh = h0 + i;
      const ww = w0 + j;
      if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
      const v = x[((n * C + ch) * H + hh) * W + ww];
      acc = type === 'max' ? Math.max(acc, v) : acc + v;
    }
    y.push(type === 'max' ? acc : acc / count);
  }
  return { y, shape: [N, C, OH, OW] };
}

const t = (v: number[]) => `(${v.join(', ')}${v.length === 1 ? ',' : ''})`;

describe('Convolution', () => {
  const cases: { name: string; xs: number[]; F: number; geo: Geo; G?: number; bias?: boolean }[] = [
    { name: '3x3, no padding', xs: [2, 2, 5, 5], F: 3, geo: { k: [3, 3], s: [1, 1], p: [0, 0], d: [1, 1] } },
    { name: 'stride 2 and padding 1', xs: [2, 3, 6, 5], F: 4, geo: { k: [3, 3], s: [2, 2], p: [1, 1], d: [1, 1] } },
    { name: 'rectangular kernel, uneven stride and pad', xs: [1, 2, 7, 6], F: 2, geo: { k: [2, 3], s: [2, 1], p: [0, 2], d: [1, 1] } },
    { name: 'dilation 2', xs: [1, 2, 7, 7], F: 3, geo: { k: [3, 3], s: [1, 1], p: [1, 1], d: [2, 2] } },
    { name: 'two groups, no bias', xs: [2, 4, 5, 5], F: 6, geo: { k: [3, 3], s: [1, 1], p: [1, 1], d: [1, 1] }, G: 2, bias: false },
  ];
  for (const cs of cases) {
    it(`matches the direct loop: ${cs.name}`, async () => {
      const G = cs.G ?? 1;
      const bias = cs.bias ?? true;
      const [N, C, H, W] = cs.xs;
      const x = seq(N * C * H * W, -1, 1, 5);
      const wshape = [cs.F, C / G, ...cs.geo.k];
      const w = seq(wshape.reduce((a, b) => a * b), -1, 1, 7);
      const b = seq(cs.F, -1, 1, 9);
      const want = conv2d(x, cs.xs, w, cs.F, bias ? b : null, cs.geo, G);
      await c.expr(`x = nd.array(${lit(x, cs.xs)}); w = nd.array(${lit(w, wshape)}); b = nd.array(${lit(b, [cs.F])})`);
      const call = `nd.Convolution(x, w${bias ? ', b' : ''}, kernel=${t(cs.geo.k)}, stride=${t(cs.geo.s)}, pad=${t(cs.geo.p)}, dilate=${t(cs.geo.d)}, num_filter=${cs.F}, num_group=${G}${bias ? '' : ', no_bias=True'})`;
      expect(await shapeOf(c, call)).toEqual(want.shape);
      near(await val(c, call), want.y, 1e-9);
    });
  }

  it('1-D convolution is the 2-D one with a height of 1', async () => {
    const x = seq(2 * 2 * 7, -1, 1, 3);
    const w = seq(3 * 2 * 3, -1, 1, 4);
    const want = conv2d(x, [2, 2, 1, 7], w, 3, null, { k: [1, 3], s: [1, 2], p: [0, 1], d: [1, 1] });
    await c.expr(`x = nd.array(${lit(x, [2, 2, 7])}); w = nd.array(${lit(w, [3, 2, 3])})`);
    near(await val(c, 'nd.Convolution(x, w, kernel=(3,), stride=(2,), pad=(1,), num_filter=3, no_bias=True)'), want.y, 1e-9);
  });

  it('rejects bad shapes and attributes, naming them', async () => {
    await c.expr('x = nd.ones((1, 2, 5, 5)); w = nd.ones((3, 2, 3, 3)); b = nd.ones(3)');
    await rejects(c, 'nd.Convolution(x, w, b, kernel=(3, 3), num_filter=4)', 'Convolution', 'weight', 'shape_mismatch');
    await rejects(c, 'nd.Convolution(x, w, nd.ones(2), kernel=(3, 3), num_filter=3)', 'Convolution', 'bias', 'shape_mismatch');
    await rejects(c, 'nd.Convolution(x, w, b, kernel=(7, 7), num_filter=3)', 'Convolution', 'kernel');
    await rejects(c, 'nd.Convolution(x, w, b, kernel=(3, 3), stride=(0, 1), num_filter=3)', 'Convolution', 'stride', 'invalid_attribute');
    await rejects(c, 'nd.Convolution(x, w, b, kernel=(3, 3), pad=(1,), num_filter=3)', 'Convolution', 'pad', 'invalid_attribute');
    await rejects(c, 'nd.Convolution(x, w, b, kernel=(3, 3), num_filter=3, num_group=2)', 'Convolution', 'num_group', 'invalid_attribute');
    await rejects(c, 'nd.Convolution(nd.ones((2, 5, 5)), w, b, kernel=(3, 3), num_filter=3)', 'Convolution', 'data', 'shape_mismatch');
    await rejects(c, 'nd.Convolution(x, w, kernel=(3, 3), num_filter=3)', 'Convolution', 'bias', 'invalid_argument');
  });
});

describe('Pooling', () => {
  const cases: { name: string; type: 'max' | 'avg'; geo: Geo; full?: boolean }[] = [
    { name: 'max 2x2 stride 2', type: 'max', geo: { k: [2, 2], s: [2, 2], p: [0, 0], d: [1, 1] } },
    { name: 'max 3x3 stride 2 pad 1', type: 'max', geo: { k: [3, 3], s: [2, 2], p: [1, 1], d: [1, 1] } },
    { name: 'avg 3x3 stride 1 pad 1 (padding counted)', type: 'avg', geo: { k: [3, 3], s: [1, 1], p: [1, 1], d: [1, 1] } },
    { name: 'avg 2x2 stride 2, full convention', type: 'avg', geo: { k: [2, 2], s: [2, 2], p: [0, 0], d: [1, 1] }, full: true },
    { name: 'max 2x3 stride (1, 2), full convention', type: 'max', geo: { k: [2, 3], s: [1, 2], p: [0, 1], d: [1, 1] }, full: true },
  ];
  const xs = [2, 3, 5, 5];
  const x = seq(150, -2, 2, 13);
  for (const cs of cases) {
    it(`matches the direct loop: ${cs.name}`, async () => {
      const want = pool2d(x, xs, cs.type, cs.geo, cs.full);
      await c.expr(`x = nd.array(${lit(x, xs)})`);
      const call = `nd.Pooling(x, kernel=${t(cs.geo.k)}, stride=${t(cs.geo.s)}, pad=${t(cs.geo.p)}, pool_type="${cs.type}"${cs.full ? ', pooling_convention="full"' : ''})`;
      expect(await shapeOf(c, call)).toEqual(want.shape);
      near(await val(c, call), want.y, 1e-9);
    });
  }

  it('MXNet\'s default stride is 1; global pooling covers the whole image', async () => {
    await c.expr(`x = nd.array(${lit(x, xs)})`);
    expect(await shapeOf(c, 'nd.Pooling(x, kernel=(2, 2))')).toEqual([2, 3, 4, 4]);
    const g = await val(c, 'nd.Pooling(x, global_pool=True, pool_type="avg")');
    near(g, [...Array(6).keys()].map((i) => x.slice(i * 25, i * 25 + 25).reduce((a, b) => a + b) / 25), 1e-9);
    near(await val(c, 'nd.Pooling(x, kernel=(1,), global_pool=True)'), [...Array(6).keys()].map((i) => Math.max(...x.slice(i * 25, i * 25 + 25))), 1e-9);
  });

  it('max pooling sends the gradient to the maximum of each window only', async () => {
    await c.expr('x = nd.array([[[[1, 5, 2, 0], [3, 4, 8, 1]]]]); x.attach_grad()');
    await c.expr('with autograd.record():\n    y = nd.Pooling(x, kernel=(2, 2), stride=(2, 2))\ny.backward()');
    expect(await c.data('x/grad')).toEqual([[[[0, 1, 0, 0], [0, 0, 1, 0]]]]);
  });

  it('a tied window sends its gradient to its first maximum only, and overlapping windows add up, as MXNet', async () => {
    // After a relu whole windows are 0: each window's gradient goes to one element, never to all four.
    await c.expr('x = nd.array([[[[0, 0, 3, 3], [0, 0, 1, 3]]]]); x.attach_grad()');
    await c.expr('with autograd.record():\n    y = nd.Pooling(x, kernel=(2, 2), stride=(2, 2))\ny.backward()');
    expect(await c.data('x/grad')).toEqual([[[[1, 0, 1, 0], [0, 0, 0, 0]]]]);
    // Stride 1 and padding: the 3 wins two windows, the 9 two more; the padding never wins.
    await c.expr('x = nd.array([[[1, 3, 2, 9]]]); x.attach_grad()');
    await c.expr('with autograd.record():\n    y = nd.Pooling(x, kernel=(2,), stride=(1,), pad=(1,))\n    z = (y * nd.array([[[1, 10, 100, 1000, 10000]]])).sum()\nz.backward()');
    expect(await val(c, 'y')).toEqual([1, 3, 3, 9, 9]);
    expect(await c.data('x/grad')).toEqual([[[1, 110, 0, 11000]]]);
  });

  it('a NaN in a window is its maximum, and takes its gradient', async () => {
    await c.expr('x = nd.array([[[[1, -1], [-1, 4]]]]).sqrt(); x.attach_grad()');
    await c.expr('with autograd.record():\n    y = nd.Pooling(x, kernel=(2, 2))\ny.backward()');
    expect(await val(c, '(y != y).sum()')).toEqual([1]);
    expect(await c.data('x/grad')).toEqual([[[[0, 1], [0, 0]]]]);
  });

  it('rejects bad kernels, strides and pads', async () => {
    await c.expr('x = nd.ones((1, 2, 4, 4))');
    await rejects(c, 'nd.Pooling(x)', 'Pooling', 'kernel', 'invalid_attribute');
    await rejects(c, 'nd.Pooling(x, kernel=(5, 5))', 'Pooling', 'kernel', 'shape_mismatch');
    await rejects(c, 'nd.Pooling(x, kernel=(2,))', 'Pooling', 'kernel', 'invalid_attribute');
    await rejects(c, 'nd.Pooling(x, kernel=(2, 2), stride=(0, 1))', 'Pooling', 'stride', 'invalid_attribute');
    await rejects(c, 'nd.Pooling(x, kernel=(2, 2), pad=(2, 2))', 'Pooling', 'pad', 'invalid_attribute');
    await rejects(c, 'nd.Pooling(x, kernel=(2, 2), pool_type="lp")', 'Pooling', 'pool_type', 'invalid_attribute');
  });
});
