/** MXNet autograd semantics over HTTP: grad_req, retain_graph, heads, scopes, higher order, programs. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

async function withVar(c: Client, init: string, req = 'write') {
  await c.expr(init);
  await c.post('/arrays/x/attach-grad', { grad_req: req }).expect(200);
}

describe('grad_req', () => {
  it('write overwrites and add accumulates on each backward', async () => {
    for (const [req, second] of [['write', [2, 4, 6]], ['add', [4, 8, 12]]] as const) {
      const c = await Client.open(srv.url);
      await withVar(c, 'x = nd.array([1, 2, 3])', req);
      for (let i = 0; i < 2; i++) {
        await c.expr('y = x * x', { record: true });
        await c.post('/arrays/y/backward', {}).expect(200);
      }
      expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual(second);
    }
  });

  it('null reads zeros, records ops, and alone gives 409 no_grad', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])', 'null');
    const r = await c.expr('y = x * 3', { record: true });
    expect(r.outputs.y.recorded).toBe(true);
    const b = await c.post('/arrays/y/backward', {}).expect(409);
    expect(b.body.code).toBe('no_grad');
    expect(b.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(await c.get('/arrays/x/grad').then((q) => q.body.data)).toEqual([0, 0]);
  });

  it('attach-grad with an unknown grad_req is 400 and the session stays usable', async () => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.array([1])');
    const r = await c.post('/arrays/x/attach-grad', { grad_req: 'sometimes' }).expect(400);
    expect(r.body.code).toBe('invalid_request');
    expect(r.body.detail).toMatch(/grad_req/);
    await c.post('/arrays/x/attach-grad', {}).expect(200);
  });

  it('attach-grad on an array with history cuts it (a fresh leaf)', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.expr('y = x * 2', { record: true });
    await c.post('/arrays/y/attach-grad', {}).expect(200);
    expect((await c.get('/arrays/y')).body.recorded).toBe(false);
    await c.expr('z = y * y', { record: true });
    const r = await c.post('/arrays/z/backward', {}).expect(200);
    expect(Object.keys(r.body.grads)).toEqual(['y']);
    expect(await c.get('/arrays/y/grad').then((q) => q.body.data)).toEqual([4, 8]);
    expect(await c.get('/arrays/x/grad').then((q) => q.body.data)).toEqual([0, 0]);
  });
});

describe('graphs', () => {
  it('retain_graph keeps the history; without it a second backward is 409 graph_freed', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([3])');
    await c.expr('y = x * x', { record: true });
    await c.post('/arrays/y/backward', { retain_graph: true }).expect(200);
    await c.post('/arrays/y/backward', {}).expect(200);
    const r = await c.post('/arrays/y/backward', {}).expect(409);
    expect(r.body.code).toBe('graph_freed');
    expect(r.body.detail).toMatch(/retain_graph/);
    expect((await c.get('/arrays/y')).body.recorded).toBe(false);
  });

  it('backward on an array never recorded is 409 no_graph; on an unknown array 404', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([3])');
    await c.expr('y = x * x');
    expect((await c.post('/arrays/y/backward', {}).expect(409)).body.code).toBe('no_graph');
    expect((await c.post('/arrays/nope/backward', {}).expect(404)).body.code).toBe('not_found');
    await c.expr('y = x * x', { record: true });
    await c.post('/arrays/y/backward', {}).expect(200);
  });

  it('several heads are summed; head gradients weight them and must match the head shape', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.expr('y = x * x; z = 3 * x', { record: true });
    await c.post('/backward', { heads: ['y', 'z'], head_grads: [null, [10, 100]] }).expect(200);
    expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual([2 + 30, 4 + 300]);
    await c.expr('y = x * x', { record: true });
    const bad = await c.post('/arrays/y/backward', { head_grad: [1, 2, 3] }).expect(422);
    expect(bad.body.code).toBe('shape_mismatch');
    await c.post('/arrays/y/backward', { head_grad: [1, 1] }).expect(200);
  });

  it('fan-out accumulates along every path', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([2])');
    await c.expr('a = x * x; b = a * x; y = a + b', { record: true });
    await c.post('/arrays/y/backward', {}).expect(200);
    // y = x^2 + x^3: dy/dx = 2x + 3x^2 = 16
    expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual([16]);
  });

  it('detach and stop_gradient cut the gradient', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2, 3])');
    await c.expr('y = x * x; u = y.detach(); z = u * x; w = nd.stop_gradient(y) * x', { record: true });
    await c.post('/arrays/z/backward', {}).expect(200);
    expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual([1, 4, 9]);
    await c.post('/arrays/w/backward', {}).expect(200);
    expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual([1, 4, 9]);
  });
});

describe('scopes', () => {
  it('pause inside record makes constants; nested scopes restore the flags they changed', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    expect((await c.post('/autograd/record', { train_mode: false }).expect(200)).body).toMatchObject({ is_recording: true, is_training: false });
    expect((await c.post('/autograd/pause', { train_mode: true }).expect(200)).body).toMatchObject({ is_recording: false, is_training: true });
    const paused = await c.expr('p = x * 5');
    expect(paused.outputs.p.recorded).toBe(false);
    expect((await c.post('/autograd/predict-mode').expect(200)).body).toMatchObject({ is_recording: false, is_training: false });
    expect((await c.get('/autograd')).body.scopes.map((s: { kind: string }) => s.kind)).toEqual(['record', 'pause', 'predict_mode']);
    expect((await c.post('/autograd/exit').expect(200)).body).toMatchObject({ is_recording: false, is_training: true });
    expect((await c.post('/autograd/exit').expect(200)).body).toMatchObject({ is_recording: true, is_training: false });
    expect((await c.post('/autograd/train-mode').expect(200)).body).toMatchObject({ is_recording: true, is_training: true });
    await c.post('/autograd/exit').expect(200);
    const y = await c.expr('y = x * p');
    expect(y.outputs.y.recorded).toBe(true);
    expect((await c.post('/autograd/exit').expect(200)).body).toMatchObject({ is_recording: false, is_training: false });
    const e = await c.post('/autograd/exit').expect(409);
    expect(e.body.code).toBe('scope_empty');
    await c.post('/arrays/y/backward', {}).expect(200);
    expect(await c.get('/arrays/x/grad').then((r) => r.body.data)).toEqual([5, 10]);
  });

  it('an op is recorded only when an input is a variable or has history (MXNet rule)', async () => {
    const c = await Client.open(srv.url);
    await c.expr('k = nd.array([1, 2])');
    const r = await c.expr('m = k * 2', { record: true });
    expect(r.outputs.m.recorded).toBe(false);
  });

  it('train_mode on /ops overrides the mode for one request', async () => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.array([1])');
    const r = await c.post('/ops', { expr: 'y = x + 1', train_mode: true, record: true }).expect(200);
    expect(r.body.autograd).toMatchObject({ is_recording: false, is_training: false });
  });
});

describe('grad (autograd.grad) and higher order', () => {
  it('returns new arrays and leaves .grad alone', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.expr('y = x * x * x', { record: true });
    const r = await c.post('/grad', { heads: 'y', variables: 'x', out: ['dx'] }).expect(200);
    expect(r.body.grads.x.name).toBe('dx');
    expect(await c.data('dx')).toEqual([3, 12]);
    expect(await c.get('/arrays/x/grad').then((q) => q.body.data)).toEqual([0, 0]);
  });

  it('third derivative of sin is -cos', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await withVar(c, 'x = nd.array([0.1, 0.7, 1.9])');
    await c.expr('y = nd.sin(x)', { record: true });
    await c.post('/grad', { heads: ['y'], variables: ['x'], create_graph: true, out: ['d1'] }).expect(200);
    await c.post('/grad', { heads: ['d1'], variables: ['x'], create_graph: true, out: ['d2'] }).expect(200);
    await c.post('/grad', { heads: ['d2'], variables: ['x'], out: ['d3'] }).expect(200);
    const d3 = (await c.data('d3')) as number[];
    [0.1, 0.7, 1.9].forEach((v, i) => expect(d3[i]).toBeCloseTo(-Math.cos(v), 12));
    const d2 = (await c.data('d2')) as number[];
    [0.1, 0.7, 1.9].forEach((v, i) => expect(d2[i]).toBeCloseTo(-Math.sin(v), 12));
  });

  it('second derivative through dot: d/dx of x^T A x gradient is A + A^T', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.expr('A = nd.array([[1, 2], [3, 4]])');
    await withVar(c, 'x = nd.array([[0.5], [-1.5]])');
    await c.expr('y = nd.dot(x.T, nd.dot(A, x))', { record: true });
    await c.post('/grad', { heads: ['y'], variables: ['x'], create_graph: true, out: ['g'] }).expect(200);
    // g = (A + A^T) x; the gradient of g[i] over i is the column sums of (A + A^T).
    for (const [i, row] of [[0, [2, 5]], [1, [5, 8]]] as const) {
      await c.expr(`gi = g[${i}]`, { record: true });
      await c.post('/grad', { heads: ['gi'], variables: ['x'], out: ['h'], retain_graph: true }).expect(200);
      expect(await c.data('h')).toEqual(row.map((v) => [v]));
    }
  });

  it('a gradient that does not depend on the variables stays differentiable (zeros)', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.expr('y = 3 * x', { record: true });
    await c.post('/grad', { heads: 'y', variables: 'x', create_graph: true, out: ['g'] }).expect(200);
    expect(await c.data('g')).toEqual([3, 3]);
    await c.post('/grad', { heads: 'g', variables: 'x', out: ['h'] }).expect(200);
    expect(await c.data('h')).toEqual([0, 0]);
  });

  it('/grad with respect to an array without a buffer is 409 no_grad', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1])');
    await c.expr('k = nd.array([1]); y = x * k', { record: true });
    expect((await c.post('/grad', { heads: 'y', variables: 'k' }).expect(409)).body.code).toBe('no_grad');
  });
});

describe('programs: a training step in one request', () => {
  it('the contract\'s expression form updates W and b in place, keeping their gradient buffers', async () => {
    const c = await Client.open(srv.url, { seed: 2 });
    await c.expr('X = nd.random.normal(shape=(8, 3)); W = nd.random.normal(shape=(3, 4)) * 0.1; b = nd.zeros((4,))');
    await c.post('/ops', { ops: [{ op: 'array', args: [[0, 1, 2, 3, 0, 1, 2, 3]], out: 'y' }] }).expect(200);
    await c.post('/arrays/W/attach-grad', {}).expect(200);
    await c.post('/arrays/b/attach-grad', {}).expect(200);
    const step = [
      'with autograd.record():',
      '    l = -nd.pick(nd.log_softmax(nd.dot(X, W) + b), y).mean()',
      'l.backward()',
      'W[:] = W - lr * W.grad',
      'b[:] = b - lr * b.grad',
      'l.asscalar()',
    ].join('\n').replace(/lr/g, '0.5');
    const first = await c.post('/ops', { expr: step });
    expect(first.status).toBe(200);
    let last = first.body.result;
    for (let i = 0; i < 20; i++) last = (await c.expr(step)).result;
    expect(last).toBeLessThan(first.body.result);
    expect((await c.get('/arrays/W')).body.grad_req).toBe('write');
  });

  it('JSON programs: scope, attach_grad, backward and into in one ops list', async () => {
    const c = await Client.open(srv.url);
    await c.expr('w = nd.array([1, 2, 3])');
    const r = await c.post('/ops', {
      ops: [
        { op: 'attach_grad', args: ['w'] },
        { op: 'scope', kind: 'record', body: [{ op: 'multiply', args: ['w', 'w'], out: 'l' }] },
        { op: 'backward', args: ['l'] },
        { op: 'multiply', args: [0.5, 'w.grad'], out: 'step' },
        { op: 'subtract', args: ['w', 'step'], into: 'w' },
      ],
      fetch: ['w'],
    }).expect(200);
    expect(r.body.outputs.w.data).toEqual([0, 0, 0]);
    expect(r.body.outputs.w.grad_req).toBe('write');
  });

  it('writing in place into an array a live tape needs, while recording, is 409 inplace_on_recorded', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.post('/autograd/record').expect(200);
    await c.expr('y = x * x');
    const r = await c.post('/ops', { expr: 'x[:] = 5' }).expect(409);
    expect(r.body.code).toBe('inplace_on_recorded');
    await c.post('/autograd/exit').expect(200);
    await c.post('/arrays/y/backward', {}).expect(200);
    expect(await c.get('/arrays/x/grad').then((q) => q.body.data)).toEqual([2, 4]);
  });

  it('a failing statement stops the program and says which one and what changed', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: 'a = nd.ones((2, 3))\nb = nd.ones((4,))\nc = nd.dot(a, b)' }).expect(422);
    expect(r.body.code).toBe('shape_mismatch');
    // An expression's errors name the line as written, from 1, as its syntax errors do.
    expect(r.body.line).toBe(3);
    expect(r.body).not.toHaveProperty('statement');
    expect(r.body.detail).toMatch(/^line 3 \(`dot`\)/);
    expect(r.body.changed).toEqual(['a', 'b']);
    expect(r.body.detail).toMatch(/rhs/);
  });

  it('inside a with block, the line is the one written, not a position among compiled statements', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: 'a = nd.ones((2,))\nwith autograd.record():\n    b = a * 2\n    c = b + nd.ones((3,))' }).expect(422);
    expect(r.body).toMatchObject({ code: 'shape_mismatch', line: 4, op: 'add' });
    const v = await c.post('/ops', { expr: 'a = nd.ones((2,))\n\nb = nd.frobnicate(a)' }).expect(422);
    expect(v.body).toMatchObject({ code: 'unknown_op', line: 3 });
  });

  it('every statement is checked before the first runs', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { ops: [{ op: 'ones', attrs: { shape: [2] }, out: 'a' }, { op: 'frobnicate', args: ['a'] }] }).expect(422);
    expect(r.body.code).toBe('unknown_op');
    expect((await c.get('/arrays/a')).status).toBe(404);
  });
});

describe('tapes', () => {
  it('lists, renders (JSON and DOT) and deletes a tape', async () => {
    const c = await Client.open(srv.url);
    await withVar(c, 'x = nd.array([1, 2])');
    await c.expr('y = nd.exp(x) * x', { record: true });
    const list = (await c.get('/tapes').expect(200)).body.tapes;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ nodes: 2, open: false });
    expect(list[0].saved_bytes).toBeGreaterThan(0);
    const t = (await c.get(`/tapes/${list[0].id}`).expect(200)).body;
    expect(t.nodes.map((n: { op: string }) => n.op)).toEqual(['exp', 'multiply']);
    expect(t.nodes[1].outputs[0].name).toBe('y');
    const dot = await c.get(`/tapes/${list[0].id}?format=dot`).expect(200);
    expect(dot.text).toMatch(/^digraph/);
    expect(dot.text).toMatch(/-> n\d+/);
    await c.del(`/tapes/${list[0].id}`).expect(204);
    expect((await c.get('/arrays/y')).body.recorded).toBe(false);
    expect((await c.post('/arrays/y/backward', {}).expect(409)).body.code).toBe('graph_freed');
    expect((await c.get(`/tapes/${list[0].id}`).expect(404)).body.code).toBe('not_found');
  });
});
