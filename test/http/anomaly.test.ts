/**
 * Anomaly mode (issue 17, item 3): `with autograd.detect_anomaly():` and `"detect_anomaly": true`
 * stop a program at the first op, forward or backward, whose output holds NaN or Inf, and say
 * which op, where it was recorded and what it read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const lines = (...ls: string[]) => ls.join('\n');
const gradOf = async (c: Client, name: string) => (await c.get(`/arrays/${name}/grad`).expect(200)).body.data;

/** The sqrt at 0 of `x`: every forward value is finite, the gradient at 0 is 0 / 0. */
const SQRT_AT_ZERO = lines(
  'x = nd.array([0, 1, 4])',
  'x.attach_grad()',
  'with autograd.record():',
  '    y = nd.sqrt(x)',
  '    z = (y * 0).sum()',
  'z.backward()',
);

/** A loss whose inputs are finite and whose last op makes the NaN: (6 - 6) / (3 - 3). */
const NAN_LOSS = lines(
  'x = nd.array([1, 2, 3])',
  'x.attach_grad()',
  'with autograd.record():',
  '    s = x.sum() - 6',
  '    m = x.max() - 3',
  '    loss = s / m',
);

describe('anomaly mode', () => {
  it('forward: log(0) stops the program at `log`, naming its line, its tape node and its input', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: lines(
      'x = nd.array([0, 1, 4])',
      'x.attach_grad()',
      'with autograd.detect_anomaly(), autograd.record():',
      '    y = nd.log(x)',
      '    z = y.sum()',
    ) });
    expect(r.status).toBe(422);
    expect(r.headers['content-type']).toContain('application/problem+json');
    expect(r.body).toMatchObject({
      code: 'anomaly_detected', type: '/problems/anomaly-detected', op: 'log', phase: 'forward', line: 4,
      recorded_at: { line: 4, statement: null }, changed: ['x'],
      outputs: [{ index: 0, shape: [3], dtype: 'float32', nan: 0, inf: 1 }],
    });
    // An expression is named by its lines, not by positions among its compiled statements.
    expect(r.body).not.toHaveProperty('statement');
    expect(r.body.tape_node).toEqual(expect.any(Number));
    expect(r.body.tape).toEqual(expect.any(String));
    expect(r.body.inputs).toEqual([{ arg: 'data', shape: [3], dtype: 'float32', min: 0, max: 4, mean: 5 / 3, nan: 0, inf: 0 }]);
    expect(r.body.detail).toMatch(/`log` at line 4 produced 1 Inf/);
    // Nothing after the failing op ran or bound.
    await c.get('/arrays/y').expect(404);
    await c.get('/arrays/z').expect(404);
  });

  it('forward, in a program the interpreter runs: the line and the traceback of the statement', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { detect_anomaly: true, expr: lines(
      'x = nd.array([1, 0, 2])',
      'for i in range(2):',
      '    y = nd.log(x * i)',
    ) });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'anomaly_detected', op: 'log', phase: 'forward', line: 3, recorded_at: { line: 3, statement: null } });
    expect(r.body.traceback.at(-1)).toMatchObject({ line: 3, statement: 'y = nd.log(x * i)' });
    expect(r.body.inputs[0]).toMatchObject({ min: 0, max: 0, nan: 0, inf: 0 });
  });

  it('backward: a gradient that is 0/0 while every forward value is finite stops at the `sqrt` node', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: SQRT_AT_ZERO, detect_anomaly: true });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      code: 'anomaly_detected', op: 'sqrt', phase: 'backward', line: 6,
      recorded_at: { line: 4, statement: null },
      inputs: [{ arg: 'data', shape: [3], dtype: 'float32', saved: false }],
      results: [{ index: 0, shape: [3], min: 0, max: 2, mean: 1, nan: 0, inf: 0 }],
      output_grads: [{ index: 0, shape: [3], min: 0, max: 0, nan: 0, inf: 0 }],
      grads: [{ arg: 'data', shape: [3], dtype: 'float32', nan: 1, inf: 0 }],
    });
    expect(r.body.detail).toMatch(/backward: the gradient of `sqrt` \(tape node \d+, recorded at line 4\)/);
    // The node named is the one that recorded sqrt, not the multiply or the sum after it.
    const tape = await c.get(`/tapes/${r.body.tape}`).expect(200);
    expect(tape.body.nodes.find((n: { id: number }) => n.id === r.body.tape_node)).toMatchObject({ op: 'sqrt' });
    // The backward wrote no gradient buffer.
    expect(await gradOf(c, 'x')).toEqual([0, 0, 0]);
  });

  it('a NaN that first appears in the loss is caught at the op that made it', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: NAN_LOSS, detect_anomaly: true });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      op: 'divide', phase: 'forward', line: 6, recorded_at: { line: 6 },
      outputs: [{ index: 0, shape: [1], nan: 1, inf: 0 }],
    });
    expect(r.body.inputs.map((i: { min: number; max: number }) => [i.min, i.max])).toEqual([[0, 0], [0, 0]]);
    expect(r.body.tape_node).toEqual(expect.any(Number));
  });

  it('without anomaly mode nothing is raised: NaN and Inf propagate as before', async () => {
    const c = await Client.open(srv.url);
    const loss = await c.expr(NAN_LOSS, { fetch: ['loss'] });
    expect(loss.outputs.loss.data).toEqual(['NaN']);
    await c.expr(SQRT_AT_ZERO);
    expect(await gradOf(c, 'x')).toEqual(['NaN', 0, 0]);
    const log = await c.expr('w = nd.log(nd.array([0, 1]))', { fetch: ['w'] });
    expect(log.outputs.w.data).toEqual(['-Infinity', 0]);
  });

  it('input statistics count NaN and Inf and range over the finite elements; an ops list has no line', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1, 'NaN', 'Infinity', -3, 2, -6] }).expect(201);
    const r = await c.post('/ops', { detect_anomaly: true, ops: [
      { op: 'exp', args: [[0, 1]], out: 'fine' },
      { op: 'multiply', args: ['x', 2], out: 'y' },
    ] });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ op: 'multiply', phase: 'forward', line: null, statement: '1', changed: ['fine'], recorded_at: { line: null, statement: '1' }, tape_node: null });
    expect(r.body.inputs).toEqual([
      { arg: expect.any(String), shape: [6], dtype: 'float32', min: -6, max: 2, mean: -1.5, nan: 1, inf: 1 },
      { arg: expect.any(String), value: 2 },
    ]);
    expect(r.body.outputs).toEqual([{ index: 0, shape: [6], dtype: 'float32', nan: 1, inf: 1 }]);
  });

  it('"detect_anomaly" on the backward endpoints checks a backward through nodes an earlier request recorded', async () => {
    const c = await Client.open(srv.url);
    await c.expr(SQRT_AT_ZERO.split('\n').slice(0, -1).join('\n'));
    const r = await c.post('/arrays/z/backward', { detect_anomaly: true, retain_graph: true });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'anomaly_detected', op: 'sqrt', phase: 'backward', line: null, recorded_at: { line: 4 } });
    const many = await c.post('/backward', { heads: 'z', detect_anomaly: true, retain_graph: true });
    expect(many.status).toBe(422);
    expect(many.body).toMatchObject({ op: 'sqrt', phase: 'backward' });
    const grad = await c.post('/grad', { heads: 'z', variables: 'x', detect_anomaly: true, retain_graph: true });
    expect(grad.status).toBe(422);
    expect(grad.body).toMatchObject({ op: 'sqrt', phase: 'backward' });
    // Without the flag the same backward answers, NaN and all.
    await c.post('/arrays/z/backward', {}).expect(200);
    expect(await gradOf(c, 'x')).toEqual(['NaN', 0, 0]);
  });

  it('a JSON program takes a detect_anomaly scope, nested in others', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [0, 1] }).expect(201);
    await c.post('/arrays/x/attach-grad').expect(200);
    const r = await c.post('/ops', { ops: [
      { op: 'scope', kind: 'record', body: [
        { op: 'scope', kind: 'detect_anomaly', body: [{ op: 'log', args: ['x'], out: 'y' }] },
      ] },
    ] });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ op: 'log', phase: 'forward', statement: '0.body.0.body.0', statement_path: [0, 'body', 0, 'body', 0] });
    expect(r.body.tape_node).toEqual(expect.any(Number));
  });

  it('POST /autograd/detect-anomaly keeps anomaly mode on across requests until /autograd/exit', async () => {
    const c = await Client.open(srv.url);
    const open = await c.post('/autograd/detect-anomaly').expect(200);
    expect(open.body).toMatchObject({ is_recording: false, is_training: false, scopes: [{ kind: 'detect_anomaly', tape: null }], tape: null });
    const r = await c.post('/ops', { expr: 'y = nd.log(nd.array([0, 1]))' });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'anomaly_detected', op: 'log', line: 1 });
    await c.post('/autograd/exit').expect(200);
    await c.post('/ops', { expr: 'y = nd.log(nd.array([0, 1]))' }).expect(200);
  });

  it('the session works normally after the error: scopes closed, nothing bound, training goes on', async () => {
    const c = await Client.open(srv.url);
    const bad = await c.post('/ops', { expr: SQRT_AT_ZERO, detect_anomaly: true });
    expect(bad.status).toBe(422);
    const state = await c.get('/autograd').expect(200);
    expect(state.body).toEqual({ is_recording: false, is_training: false, scopes: [] });
    // The anomaly scope closed with the request: a NaN now passes.
    const again = await c.post('/ops', { expr: 'q = nd.log(nd.array([0]))' });
    expect(again.status).toBe(200);
    // Anomaly mode on a healthy step changes nothing of its result.
    const step = await c.expr(lines(
      'w = nd.array([1, 2, 3])',
      'w.attach_grad()',
      'with autograd.detect_anomaly():',
      '    with autograd.record():',
      '        l = (nd.sqrt(w) * w).sum()',
      '    l.backward()',
    ), { fetch: ['w.grad'] });
    const g = step.outputs['w.grad'].data as number[];
    [1, 2, 3].forEach((v, i) => expect(g[i]).toBeCloseTo(1.5 * Math.sqrt(v), 5));
    // The failed backward left y and z bound, their history whole but for the nodes it walked.
    expect(await c.data('y')).toEqual([0, 1, 2]);
  });
});
