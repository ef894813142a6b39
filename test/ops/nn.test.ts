/** Forward values and modes of the softmax family, activations, Dropout and BatchNorm. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { flat, lit, near, rejects, seq, val } from './helpers.js';
import { NO_PRESSURE } from './helpers.js';

let srv: TestServer;
let c: Client;
beforeAll(async () => { srv = await startServer(NO_PRESSURE); c = await Client.open(srv.url, { default_dtype: 'float64', seed: 5 }); });
afterAll(async () => { await srv.close(); });

const X = seq(12, -3, 3);
const rows = (v: number[], n: number) => Array.from({ length: v.length / n }, (_, i) => v.slice(i * n, (i + 1) * n));
const softmaxRow = (r: number[]) => { const e = r.map(Math.exp); const s = e.reduce((a, b) => a + b); return e.map((x) => x / s); };

describe('softmax family', () => {
  it('softmax rows sum to 1 and match exp(x)/sum(exp(x)), even for large logits', async () => {
    const y = await val(c, `x = nd.array(${lit(X, [3, 4])}); nd.softmax(x)`);
    near(y, rows(X, 4).flatMap(softmaxRow));
    rows(y, 4).forEach((r) => near([r.reduce((a, b) => a + b)], [1]));
    const big = await val(c, 'nd.softmax(nd.array([[1000, 1001, 1002]]))');
    near(big, softmaxRow([0, 1, 2]));
  });

  it('softmax along axis 0 and with a temperature', async () => {
    const y = await val(c, `nd.softmax(nd.array(${lit(X, [3, 4])}), axis=0, temperature=2)`);
    const cols = [0, 1, 2, 3].map((j) => softmaxRow([0, 1, 2].map((i) => X[i * 4 + j] / 2)));
    near(y, [0, 1, 2].flatMap((i) => cols.map((col) => col[i])));
  });

  it('log_softmax equals log(softmax) and stays finite for large logits', async () => {
    near(await val(c, `nd.log_softmax(nd.array(${lit(X, [3, 4])}))`), rows(X, 4).flatMap(softmaxRow).map(Math.log));
    const y = await val(c, 'nd.log_softmax(nd.array([[0, 1000]]))');
    near(y, [-1000, 0]);
  });

  it('softmax_cross_entropy sums -log softmax at the labels over the batch, shape [1]', async () => {
    const b = await c.expr(`nd.softmax_cross_entropy(nd.array(${lit(X, [3, 4])}), nd.array([0, 3, 1]))`);
    expect(b.result.shape).toEqual([1]);
    const p = rows(X, 4).map(softmaxRow);
    near(b.result.data, [-(Math.log(p[0][0]) + Math.log(p[1][3]) + Math.log(p[2][1]))]);
  });

  it('logsumexp is stable and matches the direct formula', async () => {
    near(await val(c, `nd.logsumexp(nd.array(${lit(X, [3, 4])}), axis=1)`), rows(X, 4).map((r) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0))));
    near(await val(c, 'nd.logsumexp(nd.array([1000, 1000]))'), [1000 + Math.log(2)]);
  });

  it('rejects a bad axis', async () => {
    await rejects(c, 'nd.softmax(nd.ones((2, 3)), axis=2)', 'softmax', 'axis');
    await rejects(c, 'nd.softmax_cross_entropy(nd.ones((2, 3)), nd.ones(3))', 'softmax_cross_entropy', 'label');
  });
});

describe('activations', () => {
  const xs = [-2, -0.5, 0.5, 2];
  it('Activation applies each act_type', async () => {
    near(await val(c, 'nd.Activation(nd.array([-2, -0.5, 0.5, 2]), act_type="relu")'), xs.map((x) => Math.max(x, 0)));
    near(await val(c, 'nd.Activation(nd.array([-2, -0.5, 0.5, 2]), act_type="sigmoid")'), xs.map((x) => 1 / (1 + Math.exp(-x))));
    near(await val(c, 'nd.Activation(nd.array([-2, -0.5, 0.5, 2]), act_type="tanh")'), xs.map(Math.tanh));
    near(await val(c, 'nd.Activation(nd.array([-2, -0.5, 0.5, 2]), act_type="softrelu")'), xs.map((x) => Math.log1p(Math.exp(x))));
    near(await val(c, 'nd.Activation(nd.array([-2, -0.5, 0.5, 2]), act_type="softsign")'), xs.map((x) => x / (1 + Math.abs(x))));
    near(await val(c, 'nd.softsign(nd.array([-2, -0.5, 0.5, 2]))'), xs.map((x) => x / (1 + Math.abs(x))));
  });

  it('LeakyReLU: leaky (slope 0.25 by default), elu and selu', async () => {
    near(await val(c, 'nd.LeakyReLU(nd.array([-2, -0.5, 0.5, 2]))'), xs.map((x) => (x > 0 ? x : 0.25 * x)));
    near(await val(c, 'nd.LeakyReLU(nd.array([-2, -0.5, 0.5, 2]), act_type="elu", slope=0.5)'), xs.map((x) => (x > 0 ? x : 0.5 * Math.expm1(x))));
    const [a, l] = [1.6732632423543772, 1.0507009873554805];
    near(await val(c, 'nd.LeakyReLU(nd.array([-2, -0.5, 0.5, 2]), act_type="selu")'), xs.map((x) => l * (x > 0 ? x : a * Math.expm1(x))));
  });

  it('hard_sigmoid and clip', async () => {
    near(await val(c, 'nd.hard_sigmoid(nd.array([-3, -0.5, 0.5, 3]))'), [0, 0.4, 0.6, 1]);
    near(await val(c, 'nd.clip(nd.array([-3, -0.5, 0.5, 3]), -1, 1)'), [-1, -0.5, 0.5, 1]);
    near(await val(c, 'nd.clip(nd.array([-3, -0.5, 0.5, 3]), a_min=0, a_max=0.4)'), [0, 0, 0.4, 0.4]);
  });

  it('rejects an unknown act_type and a clip with a_min > a_max', async () => {
    await rejects(c, 'nd.Activation(nd.ones(2), act_type="swish")', 'Activation', 'act_type', 'invalid_attribute');
    await rejects(c, 'nd.LeakyReLU(nd.ones(2), act_type="prelu")', 'LeakyReLU', 'act_type', 'invalid_attribute');
    await rejects(c, 'nd.clip(nd.ones(2), 1, 0)', 'clip', 'a_min', 'invalid_attribute');
  });
});

describe('Dropout', () => {
  it('is the identity in predict mode', async () => {
    const y = await val(c, 'x = nd.arange(1, 1001); nd.Dropout(x, p=0.5)');
    near(y, Array.from({ length: 1000 }, (_, i) => i + 1));
  });

  it('while training zeroes about p of the elements and scales the rest by 1/(1-p)', async () => {
    const y = await val(c, 'x = nd.ones(20000)\nwith autograd.train_mode():\n    y = nd.Dropout(x, p=0.3)\ny');
    const zeros = y.filter((v) => v === 0).length;
    expect(Math.abs(zeros / y.length - 0.3)).toBeLessThan(0.02);
    y.filter((v) => v !== 0).forEach((v) => expect(v).toBeCloseTo(1 / 0.7, 10));
    const mean = y.reduce((a, b) => a + b) / y.length;
    expect(Math.abs(mean - 1)).toBeLessThan(0.03);
  });

  it('mode="always" drops outside training too; the same seed gives the same mask', async () => {
    const mask = async () => {
      const s = await Client.open(srv.url, { seed: 11, default_dtype: 'float64' });
      return val(s, 'nd.Dropout(nd.ones(50), p=0.5, mode="always")');
    };
    const [a, b] = [await mask(), await mask()];
    expect(a).toEqual(b);
    expect(a.some((v) => v === 0)).toBe(true);
  });

  it('its gradient is the mask: zero where dropped, 1/(1-p) elsewhere', async () => {
    await c.expr('x = nd.ones(200); x.attach_grad()');
    const b = await c.post('/ops', { expr: 'with autograd.record():\n    y = nd.Dropout(x, p=0.4)\ny.backward()', fetch: ['y'] }).expect(200);
    const y = b.body.outputs.y.data as number[];
    const g = (await c.data('x/grad')) as number[];
    expect(g).toEqual(y);
  });

  it('rejects p outside [0, 1)', async () => {
    await rejects(c, 'nd.Dropout(nd.ones(3), p=1)', 'Dropout', '`p`', 'invalid_attribute');
    await rejects(c, 'nd.Dropout(nd.ones(3), p=-0.1)', 'Dropout', '`p`', 'invalid_attribute');
  });
});

describe('BatchNorm', () => {
  const data = seq(24, -2, 3, 9);
  const setup = `x = nd.array(${lit(data, [2, 3, 2, 2])}); gamma = nd.array([1, 2, 0.5]); beta = nd.array([0, 1, -1]); mm = nd.zeros(3); mv = nd.ones(3)`;
  /** per channel of [2, 3, 2, 2]: the 8 values of channel ch */
  const chan = (ch: number) => [0, 1].flatMap((n) => data.slice(n * 12 + ch * 4, n * 12 + ch * 4 + 4));

  it('training: batch statistics (biased variance), moving statistics updated in place with momentum', async () => {
    await c.expr(setup);
    const y = await val(c, 'with autograd.train_mode():\n    y = nd.BatchNorm(x, gamma, beta, mm, mv, fix_gamma=False, eps=1e-5)\ny');
    const gamma = [1, 2, 0.5];
    const beta = [0, 1, -1];
    const mean = [0, 1, 2].map((ch) => chan(ch).reduce((a, b) => a + b) / 8);
    const vr = [0, 1, 2].map((ch) => chan(ch).reduce((a, v) => a + (v - mean[ch]) ** 2, 0) / 8);
    const expected = data.map((v, i) => {
      const ch = Math.floor(i / 4) % 3;
      return gamma[ch] * (v - mean[ch]) / Math.sqrt(vr[ch] + 1e-5) + beta[ch];
    });
    near(y, expected);
    near((await c.data('mm')) as number[], mean.map((m) => 0.1 * m));
    near((await c.data('mv')) as number[], vr.map((v) => 0.9 + 0.1 * v));
  });

  it('fix_gamma=True (the default) ignores gamma', async () => {
    await c.expr(setup);
    const y = await val(c, 'with autograd.train_mode():\n    y = nd.BatchNorm(x, gamma, beta, mm, mv)\ny');
    const mean1 = chan(1).reduce((a, b) => a + b) / 8;
    const var1 = chan(1).reduce((a, v) => a + (v - mean1) ** 2, 0) / 8;
    near([y[4]], [(data[4] - mean1) / Math.sqrt(var1 + 1e-3) + 1]);
  });

  it('predict mode uses the moving statistics and leaves them alone', async () => {
    await c.expr(`${setup}; mm = nd.array([1, 2, 3]); mv = nd.array([4, 1, 0.25])`);
    const y = await val(c, 'nd.BatchNorm(x, gamma, beta, mm, mv, fix_gamma=False, eps=0)');
    const mmv = [1, 2, 3];
    const sd = [2, 1, 0.5];
    near(y, data.map((v, i) => { const ch = Math.floor(i / 4) % 3; return [1, 2, 0.5][ch] * (v - mmv[ch]) / sd[ch] + [0, 1, -1][ch]; }));
    expect(await c.data('mm')).toEqual([1, 2, 3]);
  });

  it('trains inside a record scope (updating the moving statistics there is allowed)', async () => {
    await c.expr(`${setup}; x.attach_grad(); gamma.attach_grad()`);
    await c.expr('with autograd.record():\n    y = nd.BatchNorm(x, gamma, beta, mm, mv, fix_gamma=False)\n    l = (y * y).sum()\nl.backward()');
    // y is normalised per channel, so sum(y) has zero gradient through the batch statistics.
    await c.expr('with autograd.record():\n    s = nd.BatchNorm(x, gamma, beta, mm, mv).sum()\ns.backward()');
    near(flat(await c.data('x/grad')), data.map(() => 0), 1e-8);
  });

  it('rejects statistics of the wrong shape and a bad axis', async () => {
    await c.expr(setup);
    await rejects(c, 'nd.BatchNorm(x, gamma, beta, nd.zeros(4), mv)', 'BatchNorm', 'moving_mean', 'shape_mismatch');
    await rejects(c, 'nd.BatchNorm(x, gamma, beta, mm, mv, axis=4)', 'BatchNorm', 'axis', 'invalid_attribute');
  });
});
