/**
 * The seed chapter (d2l "Automatic Gradient"), cell by cell, over a real listening server, with
 * the chapter's printed outputs as the expected values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('the seed chapter over HTTP', () => {
  it('In[2]-In[6]: y = 2 x^T x and its gradient 4x', async () => {
    const c = await Client.open(srv.url);
    // In[2]
    const r2 = await c.expr('x = nd.arange(4).reshape((4, 1))', { fetch: ['x'] });
    expect(r2.outputs.x).toMatchObject({ shape: [4, 1], dtype: 'float32', data: [[0], [1], [2], [3]] });
    // In[3]
    const r3 = await c.post('/arrays/x/attach-grad', {}).expect(200);
    expect(r3.body.grad_req).toBe('write');
    // In[4]
    const r4 = await c.expr('y = 2 * nd.dot(x.T, x)', { record: true });
    // dot of [1, 4] and [4, 1] is [1, 1] in MXNet; the chapter calls it a scalar.
    expect(r4.outputs.y).toMatchObject({ shape: [1, 1], recorded: true });
    expect(r4.autograd).toEqual({ is_recording: false, is_training: false, scopes: [] });
    // In[5]
    const r5 = await c.post('/arrays/y/backward', {}).expect(200);
    expect(Object.keys(r5.body.grads)).toEqual(['x']);
    // In[6]: assert (x.grad - 4 * x).norm().asscalar() == 0; x.grad
    const r6 = await c.expr('(x.grad - 4 * x).norm().asscalar()');
    expect(r6.result).toBe(0);
    const g = await c.get('/arrays/x/grad').expect(200);
    expect(g.body.data).toEqual([[0], [4], [8], [12]]);
    // y's history was freed by backward.
    expect((await c.get('/arrays/y').expect(200)).body.recorded).toBe(false);
  });

  it('In[7]: is_training is False outside record and True inside', async () => {
    const c = await Client.open(srv.url);
    expect((await c.get('/autograd').expect(200)).body).toMatchObject({ is_recording: false, is_training: false });
    const rec = await c.post('/autograd/record', {}).expect(200);
    expect(rec.body).toMatchObject({ is_recording: true, is_training: true });
    expect(typeof rec.body.tape).toBe('string');
    expect((await c.get('/autograd').expect(200)).body).toMatchObject({ is_recording: true, is_training: true });
    expect((await c.post('/autograd/exit').expect(200)).body).toMatchObject({ is_recording: false, is_training: false });
  });

  /**
   * In[8]-In[10]: f(a) with the client's while and if, one request per step, as the chapter runs
   * it. Returns the branch taken so tests can cover both.
   */
  async function controlFlow(c: Client, a: string): Promise<'c = b' | 'c = 100 * b'> {
    await c.expr(a);
    await c.post('/arrays/a/attach-grad', {}).expect(200);
    await c.post('/autograd/record', {}).expect(200);
    await c.expr('b = a * 2');
    let steps = 0;
    while ((await c.expr('b.norm().asscalar()')).result < 1000) {
      await c.expr('b = b * 2');
      if (++steps > 100) throw new Error('the loop did not end');
    }
    const branch = (await c.expr('b.sum().asscalar()')).result > 0 ? 'c = b' : 'c = 100 * b';
    await c.expr(branch);
    await c.post('/autograd/exit').expect(200);
    await c.post('/arrays/c/backward', {}).expect(200);
    return branch;
  }

  it('In[9]-In[10]: the gradient of Python control flow, a = nd.random.normal(shape=1)', async () => {
    // With seed 1, a = nd.random.normal(shape=1) is positive, so f takes the `c = b` branch.
    const c = await Client.open(srv.url, { seed: 1 });
    const branch = await controlFlow(c, 'a = nd.random.normal(shape=1)');
    expect(branch).toBe('c = b');
    const r = await c.expr('a.grad == c / a');
    expect(r.result).toMatchObject({ shape: [1], data: [1] });
  });

  it('the other branch (c = 100 * b): a.grad equals c / a to 1e-6', async () => {
    const c = await Client.open(srv.url);
    const branch = await controlFlow(c, 'a = nd.array([-0.3])');
    expect(branch).toBe('c = 100 * b');
    const r = await c.expr('nd.abs(a.grad / (c / a) - 1).max().asscalar()');
    expect(r.result).toBeLessThan(1e-6);
  });

  it('the exercise: a vector and a matrix a, non-scalar c, gradient of the sum', async () => {
    for (const shape of ['(5,)', '(3, 4)']) {
      const c = await Client.open(srv.url, { seed: 3 });
      await controlFlow(c, `a = nd.random.normal(shape=${shape})`);
      // Relative: on the `100 * b` branch c / a rounds in float32.
      const diff = await c.expr('nd.abs(a.grad / (c / a) - 1).max().asscalar()');
      expect(diff.result).toBeLessThan(1e-6);
      const ok = await c.expr('(a.grad == c / a).min().asscalar()');
      expect([0, 1]).toContain(ok.result);
    }
  });

  it('every non-autograd statement of the chapter runs verbatim as an expression', async () => {
    const c = await Client.open(srv.url, { seed: 5 });
    await c.expr('x = nd.arange(4).reshape((4, 1))');
    await c.expr('a = nd.random.normal(shape=1)');
    await c.expr('b = a * 2');
    expect(typeof (await c.expr('b.norm().asscalar()')).result).toBe('number');
    expect(typeof (await c.expr('b.sum().asscalar()')).result).toBe('number');
    await c.expr('c = 100 * b');
    expect((await c.expr('c / a')).result).toMatchObject({ shape: [1], data: [200] });
    await c.expr('y = x');
    expect((await c.expr('x == y')).result.data).toEqual([[1], [1], [1], [1]]);
  });
});
