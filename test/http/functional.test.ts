/**
 * autograd's transforms of functions (vjp, jvp, jacobian, hessian, hvp, per-sample gradients,
 * gradcheck), in programs and as endpoints, over a real server. The reference is PyTorch's
 * torch.autograd.functional (Debian's python3-torch), run on the same def text: random functions
 * built from table ops (elementwise, a reduction, a matrix product), each answered by both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { spawn } from 'node:child_process';
import { close } from '../helpers/session.js';
import { rng } from '../helpers/rng.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const TORCH = fileURLToPath(new URL('../reference/torch_functional.py', import.meta.url));

/** PyTorch's answers for one case (test/reference/torch_functional.py reads it on stdin). */
function torchReference(input: unknown): Promise<Record<string, Tree>> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', [TORCH], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the torch reference failed (${code}): ${err}`))));
    p.stdin.end(JSON.stringify(input));
  });
}

/** A random elementwise expression of x and y from ops both sides spell alike. */
function expression(r: () => number, depth: number): string {
  if (depth === 0 || r() < 0.2) return r() < 0.5 ? 'x' : 'y';
  const a = () => expression(r, depth - 1);
  const pick = Math.floor(r() * 9);
  switch (pick) {
    case 0: return `nd.sin(${a()})`;
    case 1: return `nd.tanh(${a()})`;
    case 2: return `nd.exp(${a()} * 0.5)`;
    case 3: return `nd.sigmoid(${a()})`;
    case 4: return `nd.cos(${a()})`;
    case 5: return `(${a()} + ${a()})`;
    case 6: return `(${a()} * ${a()})`;
    case 7: return `(${a()} - ${a()} * 0.7)`;
    default: return `(${a()} * 1.5 + 0.25)`;
  }
}

const numbers = (r: () => number, n: number) => Array.from({ length: n }, () => Math.round((r() * 2 - 1) * 1e6) / 1e6);
const SHAPE = [2, 3];

interface Flat { shape: number[]; data: number[] }
type Tree = Flat | Tree[];

function flatten(d: { shape: number[]; data: unknown }): Flat {
  const out: number[] = [];
  const walk = (v: unknown) => (Array.isArray(v) ? v.forEach(walk) : out.push(v as number));
  walk(d.data);
  return { shape: d.shape, data: out };
}

function expectClose(ours: Tree, theirs: Tree, what: string): void {
  if (Array.isArray(theirs)) {
    expect(Array.isArray(ours), what).toBe(true);
    expect((ours as Tree[]).length, what).toBe(theirs.length);
    theirs.forEach((t, i) => expectClose((ours as Tree[])[i]!, t, `${what}[${i}]`));
    return;
  }
  const o = ours as Flat;
  // MXNet's sum() has shape (1,) where torch's has (): the leading 1 is the only difference.
  const squeeze = (s: number[]) => (s.length && s[0] === 1 && s.length > theirs.shape.length ? s.slice(1) : s);
  expect(squeeze(o.shape), what).toEqual(theirs.shape);
  expect(close(o.data, theirs.data, 1e-9, 1e-11), what).toBeNull();
}

describe('against torch.autograd.functional, on random functions of table ops (float64)', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`function #${seed}: vjp, jvp, jacobian, hessian and hvp match PyTorch's`, async () => {
      const r = rng(seed);
      const e1 = expression(r, 3), e2 = expression(r, 3), e3 = expression(r, 3);
      const source = [
        'def f(x, y):',
        `    return (${e1}, (${e2}).sum(axis=1), nd.dot(${e2}, nd.transpose(y)))`,
        'def g(x, y):',
        `    return ((${e3}) * (${e1})).sum()`,
      ].join('\n');
      const n = SHAPE[0]! * SHAPE[1]!;
      const inputs = [numbers(r, n), numbers(r, n)];
      const v = [numbers(r, n), numbers(r, SHAPE[0]!), numbers(r, SHAPE[0]! * SHAPE[0]!)];
      const tangents = [numbers(r, n), numbers(r, n)];
      const hv = [numbers(r, n), numbers(r, n)];
      const ref = await torchReference({ source, inputs: inputs.map((d) => [d, SHAPE]), v, tangents, hv });

      const c = await Client.open(srv.url, { default_dtype: 'float64' });
      const arr = (name: string, d: number[], shape: number[]) => `${name} = nd.array([${d.join(', ')}]).reshape((${shape.join(', ')}))`;
      const program = [
        source,
        arr('x', inputs[0]!, SHAPE), arr('y', inputs[1]!, SHAPE),
        arr('v0', v[0]!, SHAPE), arr('v1', v[1]!, [SHAPE[0]!]), arr('v2', v[2]!, [SHAPE[0]!, SHAPE[0]!]),
        arr('t0', tangents[0]!, SHAPE), arr('t1', tangents[1]!, SHAPE),
        arr('h0', hv[0]!, SHAPE), arr('h1', hv[1]!, SHAPE),
        'vj = autograd.vjp(f, (x, y), (v0, v1, v2))[1]',
        'vjp0 = vj[0]', 'vjp1 = vj[1]',
        'jv = autograd.jvp(f, (x, y), (t0, t1))[1]',
        'jvp0 = jv[0]', 'jvp1 = jv[1]', 'jvp2 = jv[2]',
        'J = autograd.jacobian(f, (x, y))',
        'J00 = J[0][0]', 'J01 = J[0][1]', 'J10 = J[1][0]', 'J11 = J[1][1]', 'J20 = J[2][0]', 'J21 = J[2][1]',
        'H = autograd.hessian(g, (x, y))',
        'H00 = H[0][0]', 'H01 = H[0][1]', 'H10 = H[1][0]', 'H11 = H[1][1]',
        'hv = autograd.hvp(g, (x, y), (h0, h1))[1]',
        'hvp0 = hv[0]', 'hvp1 = hv[1]',
      ].join('\n');
      const names = ['vjp0', 'vjp1', 'jvp0', 'jvp1', 'jvp2', 'J00', 'J01', 'J10', 'J11', 'J20', 'J21', 'H00', 'H01', 'H10', 'H11', 'hvp0', 'hvp1'];
      const res = await c.expr(program, { fetch: names });
      const got = (k: string) => flatten(res.outputs[k]);
      expectClose([got('vjp0'), got('vjp1')], ref.vjp!, 'vjp');
      expectClose([got('jvp0'), got('jvp1'), got('jvp2')], ref.jvp!, 'jvp');
      expectClose([[got('J00'), got('J01')], [got('J10'), got('J11')], [got('J20'), got('J21')]], ref.jacobian!, 'jacobian');
      expectClose([[got('H00'), got('H01')], [got('H10'), got('H11')]], ref.hessian!, 'hessian');
      expectClose([got('hvp0'), got('hvp1')], ref.hvp!, 'hvp');
    });
  }
});

const flat = (d: unknown): number[] => (Array.isArray(d) ? d.flatMap(flat) : [d as number]);

describe('create_graph: the transforms differentiate again', () => {
  it("a Jacobian recorded with create_graph, differentiated again, gives the second derivative", async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const xs = [0.3, -1.2, 2.0];
    const r = await c.expr([
      'def h(x):',
      '    return nd.sin(x) * x',
      `x = nd.array([${xs.join(', ')}])`,
      'x.attach_grad()',
      'with autograd.record():',
      '    J = autograd.jacobian(h, x, create_graph=True)',
      '    s = (J * nd.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])).sum()',
      'd2 = autograd.grad(s, [x])[0]',
      'with autograd.record():',
      '    _, g = autograd.vjp(h, x, nd.ones((3,)), create_graph=True)',
      'd2v = autograd.grad(g, [x])[0]',
    ].join('\n'), { fetch: ['J', 'd2', 'd2v'] });
    // h' = sin x + x cos x on the diagonal; h'' = 2 cos x - x sin x.
    const J = flat(r.outputs.J.data);
    xs.forEach((x, i) => {
      expect(J[i * 3 + i]).toBeCloseTo(Math.sin(x) + x * Math.cos(x), 12);
      expect(r.outputs.d2.data[i]).toBeCloseTo(2 * Math.cos(x) - x * Math.sin(x), 12);
      expect(r.outputs.d2v.data[i]).toBeCloseTo(2 * Math.cos(x) - x * Math.sin(x), 12);
    });
    expect(r.outputs.J.shape).toEqual([3, 3]);
  });

  it('jvp and hvp with create_graph differentiate again (third derivatives of x^4)', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const xs = [0.5, -1.5, 2.0], vs = [1.0, 2.0, -0.5];
    const r = await c.expr([
      'def cube(x):',
      '    return x * x * x',
      'def quart(x):',
      '    return (x * x * x * x).sum()',
      `x = nd.array([${xs.join(', ')}])`,
      `v = nd.array([${vs.join(', ')}])`,
      'x.attach_grad()',
      'with autograd.record():',
      '    _, jv = autograd.jvp(cube, x, v, create_graph=True)',
      'djv = autograd.grad(jv, [x])[0]',
      'with autograd.record():',
      '    _, hv = autograd.hvp(quart, x, v, create_graph=True)',
      'dhv = autograd.grad(hv, [x])[0]',
    ].join('\n'), { fetch: ['jv', 'djv', 'hv', 'dhv'] });
    xs.forEach((x, i) => {
      const v = vs[i]!;
      // J v = 3x^2 v, its gradient 6x v; H v = 12x^2 v, its gradient 24x v.
      expect(r.outputs.jv.data[i]).toBeCloseTo(3 * x * x * v, 12);
      expect(r.outputs.djv.data[i]).toBeCloseTo(6 * x * v, 12);
      expect(r.outputs.hv.data[i]).toBeCloseTo(12 * x * x * v, 12);
      expect(r.outputs.dhv.data[i]).toBeCloseTo(24 * x * v, 12);
    });
  });

  it('without create_graph the answers have no history, and the value is detached', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const r = await c.expr([
      'def h(x):',
      '    return nd.exp(x)',
      'x = nd.array([0.5, 1.0])',
      'x.attach_grad()',
      'out, g = autograd.vjp(h, x, nd.ones((2,)))',
    ].join('\n'), { fetch: ['out', 'g'] });
    expect(r.outputs.out.recorded).toBe(false);
    expect(r.outputs.g.recorded).toBe(false);
    expect(r.outputs.g.data[1]).toBeCloseTo(Math.E, 12);
    // The variable's gradient buffer is left alone, as autograd.grad leaves it.
    expect(await c.data('x/grad')).toEqual([0, 0]);
  });
});

describe('per-sample gradients', () => {
  it('autograd.grad(losses, params, per_sample=True) gives (B,) + param.shape, summing to the batch gradient', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const r0 = rng(42);
    const X = numbers(r0, 4 * 3), Y = numbers(r0, 4 * 2), W = numbers(r0, 3 * 2);
    const r = await c.expr([
      `X = nd.array([${X.join(', ')}]).reshape((4, 3))`,
      `Y = nd.array([${Y.join(', ')}]).reshape((4, 2))`,
      `w = nd.array([${W.join(', ')}]).reshape((3, 2))`,
      'w.attach_grad()',
      'with autograd.record():',
      '    losses = ((nd.dot(X, w) - Y) ** 2).sum(axis=1)',
      'ps = autograd.grad(losses, [w], per_sample=True)[0]',
      'losses.backward()',
    ].join('\n'), { fetch: ['ps', 'w.grad'] });
    expect(r.outputs.ps.shape).toEqual([4, 3, 2]);
    const ps = flat(r.outputs.ps.data);
    // Sample b: d/dw of |X_b w - Y_b|^2 = 2 X_b^T (X_b w - Y_b).
    for (let b = 0; b < 4; b++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          let resid = -Y[b * 2 + j]!;
          for (let k = 0; k < 3; k++) resid += X[b * 3 + k]! * W[k * 2 + j]!;
          expect(ps[b * 6 + i * 2 + j]).toBeCloseTo(2 * X[b * 3 + i]! * resid, 12);
        }
      }
    }
    const total = flat(r.outputs['w.grad'].data);
    total.forEach((t, k) => expect([0, 1, 2, 3].reduce((s, b) => s + ps[b * 6 + k]!, 0)).toBeCloseTo(t, 12));
  });
});

const CUBE_FUNCTION = (backward: string) => [
  'class Cube(autograd.Function):',
  '    def forward(self, x):',
  '        self.save_for_backward(x)',
  '        return x * x * x',
  '    def backward(self, dy):',
  '        x, = self.saved_tensors',
  `        return ${backward}`,
  'def f(x):',
  '    return Cube()(x) + nd.sin(x)',
  'x = nd.array([0.5, -1.5, 2.0])',
].join('\n');

describe('gradcheck', () => {
  it('passes a right rule, and names the input, index and values where a wrong one is off', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const ok = await c.expr(`${CUBE_FUNCTION('dy * 3 * x * x')}\nautograd.gradcheck(f, x)`);
    expect(ok.result).toBe(true);
    const c2 = await Client.open(srv.url, { default_dtype: 'float64' });
    const bad = await c2.post('/ops', { expr: `${CUBE_FUNCTION('dy * 3 * x')}\nautograd.gradcheck(f, x)` });
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe('gradcheck_failed');
    const [w] = bad.body.inputs;
    // The wrong rule gives 3x + cos x where 3x^2 + cos x is right: farthest off at x = -1.5.
    expect(w).toMatchObject({ input: 0, output: 0, output_index: [1], input_index: [1] });
    expect(w.analytic).toBeCloseTo(3 * -1.5 + Math.cos(-1.5), 9);
    expect(w.numeric).toBeCloseTo(3 * 2.25 + Math.cos(-1.5), 6);
    expect(bad.body.detail).toMatch(/input 0 .*input index \(1\)/);
    const quiet = await c2.expr(`${CUBE_FUNCTION('dy * 3 * x')}\nautograd.gradcheck(f, x, raise_exception=False)`);
    expect(quiet.result).toBe(false);
  });

  it('gradgradcheck catches a rule right to first order whose own gradient is wrong', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    // stop_gradient hides x from the rule's own derivative: first order right, second wrong.
    const hidden = CUBE_FUNCTION('dy * 3 * nd.stop_gradient(x) * nd.stop_gradient(x)');
    expect((await c.expr(`${hidden}\nautograd.gradcheck(f, x)`)).result).toBe(true);
    const bad = await c.post('/ops', { expr: `${hidden}\nautograd.gradgradcheck(f, x)` });
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe('gradcheck_failed');
    expect((await c.expr(`${CUBE_FUNCTION('dy * 3 * x * x')}\nautograd.gradgradcheck(f, x)`)).result).toBe(true);
  });

  it('runs in float64 whatever the inputs are', async () => {
    const c = await Client.open(srv.url);
    const r = await c.expr('def f(x):\n    return nd.tanh(x) * nd.exp(x)\nx = nd.array([0.1, 0.7, -0.4])\nautograd.gradcheck(f, x)');
    expect(r.result).toBe(true);
  });
});

describe('limits and errors', () => {
  it("a Jacobian larger than an array may be, or than the session's bytes, is refused before any work", async () => {
    const small = await startServer({ GRADSERVE_MAX_ARRAY_ELEMENTS: '10000', GRADSERVE_MAX_SESSION_BYTES: String(256 << 10) });
    try {
      const c = await Client.open(small.url, { default_dtype: 'float64' });
      const t0 = Date.now();
      const r = await c.post('/ops', { expr: 'def f(x):\n    return x * 2\nx = nd.ones((200,))\nJ = autograd.jacobian(f, x)' });
      expect(r.status).toBe(413);
      expect(r.body).toMatchObject({ code: 'array_too_large', limit: 'array_elements', value: 40000 });
      // Two blocks of 90 x 90 fit an array; with their rows, 4 x 90 x 90 x 8 bytes do not fit 256 KiB.
      const q = await c.post('/ops', { expr: 'def f(x, y):\n    return x * y\nx = nd.ones((90,))\ny = nd.ones((90,))\nJ = autograd.jacobian(f, (x, y))' });
      expect(q.status, JSON.stringify(q.body)).toBe(429);
      expect(q.body).toMatchObject({ code: 'quota_exceeded', limit: 'session_bytes' });
      // Refused up front: no row was computed (each takes a backward).
      expect(Date.now() - t0).toBeLessThan(5000);
      expect((await c.expr('z = x + 1', { fetch: ['z'] })).outputs.z.shape).toEqual([90]);
    } finally {
      await small.close();
    }
  });

  it('a v of the wrong shape, and a Hessian of a function with many elements, are ValueErrors naming them', async () => {
    const c = await Client.open(srv.url);
    const wrong = await c.post('/ops', { expr: 'def f(x):\n    return x * x\nx = nd.ones((3,))\nr = autograd.vjp(f, x, nd.ones((4,)))' });
    expect(wrong.status).toBe(422);
    expect(wrong.body).toMatchObject({ code: 'program_error', exception: 'ValueError' });
    expect(wrong.body.detail).toMatch(/v\[0\] has shape \(4\) but must have \(3\)/);
    const many = await c.post('/ops', { expr: 'def f(x):\n    return x * x\nx = nd.ones((3,))\nr = autograd.hessian(f, x)' });
    expect(many.status).toBe(422);
    expect(many.body.detail).toMatch(/hessian needs func to return a single NDArray of one element/);
    const none = await c.post('/ops', { expr: 'def f(x):\n    return x * x\nx = nd.ones((3,))\nr = autograd.vjp(f, x)' });
    expect(none.body.detail).toMatch(/v can be None only/);
  });
});

describe('as endpoints', () => {
  it('POST /vjp, /jvp, /jacobian, /hessian and /hvp answer what the program answers; out binds the result', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.expr([
      'def f(a, b):',
      '    return nd.sin(a) * b',
      'def g(a, b):',
      '    return (a * a * b).sum()',
      'a = nd.array([0.2, -0.7])',
      'b = nd.array([1.5, 0.5])',
      'v = nd.array([1.0, -2.0])',
    ].join('\n'));
    const vjp = await c.post('/vjp', { function: 'f', inputs: ['a', 'b'], v: 'v', out: ['ga', 'gb'] });
    expect(vjp.status, JSON.stringify(vjp.body)).toBe(200);
    expect(vjp.body.value.data[0]).toBeCloseTo(Math.sin(0.2) * 1.5, 12);
    expect(vjp.body.result.map((d: { name: string }) => d.name)).toEqual(['ga', 'gb']);
    expect(vjp.body.result[0].data[1]).toBeCloseTo(-2 * Math.cos(-0.7) * 0.5, 12);
    expect(await c.data('gb')).toEqual([Math.sin(0.2), -2 * Math.sin(-0.7)].map((x) => expect.closeTo(x, 12)));
    const jvp = await c.post('/jvp', { function: 'f', inputs: ['a', 'b'], v: ['v', 'v'] });
    expect(jvp.body.result.data[0]).toBeCloseTo(Math.cos(0.2) * 1.5 + Math.sin(0.2), 12);
    const J = await c.post('/jacobian', { function: 'f', inputs: ['a', 'b'] });
    expect(J.body.result.map((d: { shape: number[] }) => d.shape)).toEqual([[2, 2], [2, 2]]);
    expect(J.body.result[0].data[1][1]).toBeCloseTo(Math.cos(-0.7) * 0.5, 12);
    expect(J.body.result[1].data[1][0]).toBe(0);
    const H = await c.post('/hessian', { function: 'g', inputs: ['a', 'b'] });
    expect(H.body.result.length).toBe(2);
    expect(H.body.result[0][1].data[0][0]).toBeCloseTo(2 * 0.2, 12);
    // g = sum(a^2 b): H_aa = diag(2b), H_ab = diag(2a), so (H v)_a = 2 b v + 2 a v.
    const hvp = await c.post('/hvp', { function: 'g', inputs: ['a', 'b'], v: ['v', 'v'] });
    expect(hvp.body.result[0].data).toEqual([2 * 1.5 + 2 * 0.2, 2 * 0.5 * -2 + 2 * -0.7 * -2].map((x) => expect.closeTo(x, 12)));
  });

  it('POST /gradcheck answers the largest error per input; a missing function is a 404, a stray field a 400', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.expr(`${CUBE_FUNCTION('dy * 3 * x')}\ny = nd.array([1.0, 2.0, 3.0])`);
    const r = await c.post('/gradcheck', { function: 'f', inputs: 'x' });
    expect(r.status).toBe(200);
    expect(r.body.passed).toBe(false);
    expect(r.body.inputs[0]).toMatchObject({ input: 0, input_index: [1] });
    // Second order checks the rule's own gradient against differences of the rule: here they agree.
    const second = await c.post('/gradcheck', { function: 'f', inputs: 'x', second_order: true, grad_outputs: 'y' });
    expect(second.body.passed).toBe(true);
    const c2 = await Client.open(srv.url, { default_dtype: 'float64' });
    await c2.expr(CUBE_FUNCTION('dy * 3 * nd.stop_gradient(x) * nd.stop_gradient(x)'));
    expect((await c2.post('/gradcheck', { function: 'f', inputs: 'x' })).body.passed).toBe(true);
    expect((await c2.post('/gradcheck', { function: 'f', inputs: 'x', second_order: true })).body.passed).toBe(false);
    expect((await c.post('/gradcheck', { function: 'nope', inputs: 'x' })).status).toBe(404);
    const stray = await c.post('/vjp', { function: 'f', inputs: 'x', tangents: 'y' });
    expect(stray.status).toBe(400);
    expect(stray.body.detail).toMatch(/tangents/);
  });
});
