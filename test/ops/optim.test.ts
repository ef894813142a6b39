/** The optimizer updates against MXNet's formulas, step by step, and their in-place rules. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { near, rejects } from './helpers.js';
import { NO_PRESSURE } from './helpers.js';

let srv: TestServer;
let c: Client;
beforeAll(async () => { srv = await startServer(NO_PRESSURE); c = await Client.open(srv.url, { default_dtype: 'float64' }); });
afterAll(async () => { await srv.close(); });

const w0 = [0.5, -1, 2, 3];
const g0 = [1, -4, 0.5, 10];
const clip = (v: number, k: number) => (k > 0 ? Math.max(-k, Math.min(k, v)) : v);

describe('optimizer updates', () => {
  it('sgd_update: w = (1 - lr*wd) w - lr clip(rescale * g), in place, three steps', async () => {
    await c.expr(`w = nd.array(${JSON.stringify(w0)}); g = nd.array(${JSON.stringify(g0)})`);
    let w = [...w0];
    for (let step = 0; step < 3; step++) {
      const r = await c.expr('sgd_update(w, g, lr=0.1, wd=0.01, rescale_grad=0.5, clip_gradient=2, out=w); w');
      w = w.map((v, i) => (1 - 0.1 * 0.01) * v - 0.1 * clip(0.5 * g0[i], 2));
      near(r.result.data, w, 1e-12);
    }
  });

  it('sgd_update with its defaults (no rescale, no decay, no clip) is w - lr g, with Inf and NaN where they fall', async () => {
    const w1 = [0.5, Infinity, -2, NaN, -0];
    const g1 = [1, 2, -Infinity, 1, 0];
    await c.expr(`w = nd.array([0.5, float("inf"), -2, float("nan"), -0.0]); g = nd.array([1, 2, -float("inf"), 1, 0])`);
    const r = await c.expr('sgd_update(w, g, lr=0.25, out=w); w');
    const want = w1.map((v, i) => v - 0.25 * g1[i]);
    expect(r.result.data.map(String)).toEqual(want.map((v) => (Object.is(v, -0) ? '0' : String(v))));
    expect(r.result.data[1]).toBe('Infinity');
  });

  it('sgd_mom_update: mom = momentum mom - lr wd w - lr clip(rescale g); w += mom', async () => {
    await c.expr(`w = nd.array(${JSON.stringify(w0)}); g = nd.array(${JSON.stringify(g0)}); m = nd.zeros(4)`);
    let w = [...w0];
    let m = [0, 0, 0, 0];
    for (let step = 0; step < 3; step++) {
      await c.expr('sgd_mom_update(w, g, m, lr=0.1, momentum=0.9, wd=0.01, out=w)');
      m = m.map((v, i) => 0.9 * v - 0.1 * 0.01 * w[i] - 0.1 * g0[i]);
      w = w.map((v, i) => v + m[i]);
      near((await c.data('w')) as number[], w, 1e-12);
      near((await c.data('m')) as number[], m, 1e-12);
    }
  });

  it('adam_update: g = clip(rescale g + wd w); mean, var moving averages; w -= lr mean / (sqrt(var) + eps)', async () => {
    await c.expr(`w = nd.array(${JSON.stringify(w0)}); g = nd.array(${JSON.stringify(g0)}); mean = nd.zeros(4); var = nd.zeros(4)`);
    let w = [...w0];
    let m = [0, 0, 0, 0];
    let v = [0, 0, 0, 0];
    for (let step = 0; step < 3; step++) {
      await c.post('/ops', { ops: [{ op: 'adam_update', args: ['w', 'g', 'mean', 'var'], attrs: { lr: 0.01, wd: 0.1, clip_gradient: 5 } }] }).expect(200);
      const gs = g0.map((gi, i) => clip(gi + 0.1 * w[i], 5));
      m = m.map((x, i) => 0.9 * x + 0.1 * gs[i]);
      v = v.map((x, i) => 0.999 * x + 0.001 * gs[i] ** 2);
      w = w.map((x, i) => x - 0.01 * m[i] / (Math.sqrt(v[i]) + 1e-8));
      near((await c.data('w')) as number[], w, 1e-12);
      near((await c.data('mean')) as number[], m, 1e-12);
      near((await c.data('var')) as number[], v, 1e-12);
    }
  });

  it('are refused inside record scopes and on arrays a live tape needs (409)', async () => {
    await c.expr('w = nd.array([1, 2]); w.attach_grad()');
    const inScope = await c.post('/ops', { expr: 'with autograd.record():\n    sgd_update(w, w.grad, lr=0.1, out=w)' });
    expect(inScope.status).toBe(409);
    expect(inScope.body.code).toBe('inplace_on_recorded');
    await c.expr('with autograd.record():\n    y = (w * w).sum()');
    const live = await c.post('/ops', { expr: 'sgd_update(w, w.grad, lr=0.1, out=w)' });
    expect(live.status).toBe(409);
    await c.expr('y.backward(); sgd_update(w, w.grad, lr=0.5, out=w)');
    expect(await c.data('w')).toEqual([0, 0]);
  });

  it('reject mismatched shapes, naming the argument', async () => {
    await c.expr('w = nd.ones(3); g = nd.ones(4)');
    await rejects(c, 'sgd_update(w, g, lr=0.1)', 'sgd_update', 'grad', 'shape_mismatch');
    await rejects(c, 'adam_update(w, w, w, nd.ones(2), lr=0.1)', 'adam_update', 'var', 'shape_mismatch');
  });
});
