/**
 * Programs with Python's control flow, run by the server (issue 16), over a real listening server:
 * the chapter's cells 8 and 9 verbatim, value-dependent loops, recursion, definitions kept by the
 * session, custom autograd.Function, higher-order gradients through a branch, every limit, and
 * the traceback of a failure.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

/** Cell `In [n]:` of the chapter, verbatim: the lines up to the first blank one. */
function cell(n: number): string {
  const text = readFileSync(new URL('../fixtures/d2l-automatic-gradient/chapter.txt', import.meta.url), 'utf8');
  const lines = text.split('\n');
  const start = lines.indexOf(`In [${n}]:`);
  expect(start).toBeGreaterThan(0);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end).join('\n');
}

async function fails(c: Client, expr: string, status: number) {
  const r = await c.post('/ops', { expr });
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers['content-type']).toContain('application/problem+json');
  return r.body;
}

describe("the chapter's control flow, as one program", () => {
  it('cells 8 and 9 verbatim, then a.grad == c / a, whichever branch the seed takes', async () => {
    const src = `${cell(8)}\n\n${cell(9)}\n`;
    expect(src).toContain('while b.norm().asscalar() < 1000:');
    const branches = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const c = await Client.open(srv.url, { seed });
      const r = await c.expr(src, { fetch: ['a', 'c'] });
      expect(Object.keys(r.outputs)).toEqual(['a', 'c']);
      const a = (r.outputs.a.data as number[])[0]!;
      const cv = (r.outputs.c.data as number[])[0]!;
      // c = b leaves |c| below 2000; c = 100 * b puts it at 100000 or more.
      branches.add(Math.abs(cv) < 2000 ? 'c = b' : 'c = 100 * b');
      expect(Math.sign(cv)).toBe(Math.sign(a));
      const check = await c.expr('a.grad == c / a');
      expect(check.result.data).toEqual([1]);
      // f stays in the session, as in a notebook: a later request calls it.
      const again = await c.expr('d = f(a)\n(d - c).abs().sum().asscalar()');
      expect(again.result).toBe(0);
    }
    // Both of the chapter's branches ran for some seed (a positive a takes c = b).
    expect(branches.size).toBe(2);
  });

  it('a loop whose count depends on the data: doubling until the norm passes 1000', async () => {
    const c = await Client.open(srv.url, { seed: 7 });
    for (const start of [0.001, 1, -3, 999, 1001]) {
      const r = await c.expr(`b = nd.array([${start}])\nn = 0\nwhile b.norm().asscalar() < 1000:\n    b = b * 2\n    n += 1\nn`);
      let expected = 0;
      for (let v = Math.abs(Math.fround(start)); v < 1000; v *= 2) expected++;
      expect(r.result).toBe(expected);
    }
  });

  it('for over range, lists and tuples, with break and continue; and/or/not; print comes back', async () => {
    const c = await Client.open(srv.url);
    const r = await c.expr([
      'total = 0',
      'for i in range(10):',
      '    if i % 2 == 0:',
      '        continue',
      '    if i > 7:',
      '        break',
      '    total += i',
      'names = []',
      'for k, v in [("a", 1), ("b", 2)]:',
      '    names.append(k * v)',
      'for w in (nd.ones(2), nd.zeros(2)):',
      '    print(w.sum().asscalar() > 0 and "ones" or "zeros", not w.sum().asscalar())',
      'print(total, names, len(names), min(3, 1, 2), max([4, 9]), abs(-2.5), 7 // 2, -7 % 2, 1 if total else 0)',
    ].join('\n'));
    expect(r.printed).toBe('ones False\nzeros True\n16 [\'a\', \'bb\'] 2 1 9 2.5 3 1 1\n');
    // A tuple holds the array a name held, not the name: rebinding the name later changes nothing.
    expect((await c.expr('a = nd.ones(1)\nt = (a, 2)\na = nd.zeros(1)\nprint(t[0].sum().asscalar() == 1, t)')).printed).toMatch(/^True \(\n\[1\.\]/);
    // A list that holds itself prints as Python prints it, instead of recursing without end.
    expect((await c.expr('q = [1]\nq.append(q)\nprint(q, (q,))')).printed).toBe('[1, [...]] ([1, [...]],)\n');
  });

  it("float() and int() of strings as Python reads them: 'inf', '-Infinity', 'nan', ' 2.5e1 '; anything else is a ValueError", async () => {
    const c = await Client.open(srv.url);
    const r = await c.expr('print(float("inf"), float(" -Infinity "), float("NaN") != float("nan"), float(" 2.5e1 "), int(" -7 "), float("+inf") > 1e308)');
    expect(r.printed).toBe('inf -inf True 25.0 -7 True\n');
    const a = await c.expr('x = nd.array([float("inf"), -float("inf")]); x');
    expect(a.result.data).toEqual(['Infinity', '-Infinity']);
    const bad = await c.post('/ops', { expr: 'float("infinite")' });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ exception: 'ValueError', detail: expect.stringContaining('could not convert string to float: "infinite"') });
    const badInt = await c.post('/ops', { expr: 'int("1.5")' });
    expect(badInt.body).toMatchObject({ exception: 'ValueError', detail: expect.stringContaining('invalid literal for int() with base 10') });
  });
});

describe('functions', () => {
  it('recursion, keyword and default arguments; definitions listed, replaced and deleted', async () => {
    const c = await Client.open(srv.url);
    await c.expr('def fact(n):\n    if n <= 1:\n        return 1\n    return n * fact(n - 1)\n\ndef scale(x, by=2.0):\n    return x * by');
    const r = await c.expr('y = scale(nd.ones(2), by=fact(5))\nz = scale(nd.ones(1))\nfact(10)', { fetch: ['y', 'z'] });
    expect(r.result).toBe(3628800);
    expect(r.outputs.y.data).toEqual([120, 120]);
    expect(r.outputs.z.data).toEqual([2]);
    const info = (await c.get('').expect(200)).body;
    expect(info.definitions.map((d: { name: string }) => d.name)).toEqual(['fact', 'scale']);
    expect(info.definitions[1]).toEqual({ name: 'scale', kind: 'function', signature: 'x, by=...', source: 'def scale(x, by=2.0):\n    return x * by' });
    // Locals stay local: the function's x and b do not touch the session's names.
    await c.expr('def g(x):\n    b = x + 1\n    return b\nb = nd.zeros(1)\nq = g(nd.ones(1))');
    expect(await c.data('b')).toEqual([0]);
    expect(await c.data('q')).toEqual([2]);
    await c.expr('del fact');
    expect((await c.get('').expect(200)).body.definitions.map((d: { name: string }) => d.name)).toEqual(['scale', 'g']);
    const p = await fails(c, 'fact(3)', 422);
    expect(p.code).toBe('unknown_op');
  });

  it('a failure names the line, the function and the statement of every frame, like a traceback', async () => {
    const c = await Client.open(srv.url);
    await c.expr('def inner(a):\n    b = a * 2\n    return b.nope()\n\ndef outer(a):\n    return inner(a) + 1');
    const p = await fails(c, 'x = nd.ones(2)\ny = outer(x)', 422);
    expect(p.code).toBe('unknown_op');
    expect(p.detail).toMatch(/^line 3, in inner: there is no op `nope`/);
    expect(p).toMatchObject({ line: 3, function: 'inner' });
    expect(p.traceback).toEqual([
      { function: '<module>', line: 2, statement: 'y = outer(x)' },
      { function: 'outer', line: 6, statement: 'return inner(a) + 1' },
      { function: 'inner', line: 3, statement: 'return b.nope()' },
    ]);
    // What ran before the failure stays: x was bound, y was not.
    expect(await c.data('x')).toEqual([1, 1]);
    expect((await c.get('/arrays/y')).status).toBe(404);
    const a = await fails(c, 'n = 3\nassert n == 4, "n is " + str(n)', 422);
    expect(a).toMatchObject({ code: 'assertion_failed', exception: 'AssertionError', line: 2 });
    expect(a.detail).toContain('n is 3');
    const v = await fails(c, 'if nd.ones(3):\n    pass', 422);
    expect(v).toMatchObject({ code: 'program_error', exception: 'ValueError' });
    const u = await fails(c, 'def h():\n    k = k + 1\n    return k\nh()', 422);
    expect(u).toMatchObject({ code: 'program_error', exception: 'UnboundLocalError', function: 'h' });
  });

  it('nothing of the host is reachable: attributes of Python values, imports, files', async () => {
    const c = await Client.open(srv.url);
    await c.expr('def f(a):\n    return a');
    for (const probe of ['f.__globals__', 'print.__self__', 'len.__call__', 'f.constructor', 'range(3).start', 'super().__init__.__globals__']) {
      const p = await fails(c, `q = ${probe}`, 422);
      expect(p, probe).toMatchObject({ code: 'program_error', exception: 'AttributeError' });
    }
    // Compiled ahead (nothing calls the interpreter), these are refused before running.
    for (const probe of ['(1, 2).__class__', '"s".join', 'x.__proto__']) expect((await fails(c, `q = ${probe}`, 400)).code).toBe('invalid_expression');
    expect((await fails(c, 'x = nd.ones(1).__class__\nprint(1)', 422)).code).toBe('program_error');
    expect((await fails(c, 'print((1, 2).__class__)', 422)).code).toBe('program_error');
    expect((await fails(c, 'import os\nprint(1)', 400)).code).toBe('invalid_expression');
    expect((await fails(c, 'print(open("/etc/passwd"))', 422)).code).toBe('unknown_op');
    expect((await fails(c, 'class K(os.Thing):\n    pass', 400)).code).toBe('invalid_expression');
  });
});

describe('custom gradients: autograd.Function', () => {
  const SIGMOID = [
    'class Sigmoid(autograd.Function):',
    '    def forward(self, x):',
    '        y = 1 / (1 + nd.exp(-x))',
    '        self.save_for_backward(y)',
    '        return y',
    '',
    '    def backward(self, dy):',
    '        y, = self.saved_tensors',
    '        return dy * y * (1 - y)',
  ].join('\n');

  it("a sigmoid's gradient matches finite differences (float64) and the same function of table ops", async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const xs = [-2, -0.5, 0, 0.3, 3];
    const r = await c.expr(`${SIGMOID}\nx = nd.array([${xs.join(', ')}], dtype='float64')\nx.attach_grad()\nwith autograd.record():\n    y = Sigmoid()(x)\n    l = (y * y).sum()\nl.backward()\ncustom = x.grad.copy()`, { fetch: ['y', 'custom'] });
    expect(r.outputs.y.recorded).toBe(false); // backward freed it
    const custom = r.outputs.custom.data as number[];
    // The loss of table ops, differentiated by the server, for comparison.
    await c.expr('with autograd.record():\n    t = 1 / (1 + nd.exp(-x))\n    l2 = (t * t).sum()\nl2.backward()');
    const table = (await c.data('x/grad')) as number[];
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const h = 1e-6;
    xs.forEach((v, i) => {
      const fd = (sig(v + h) ** 2 - sig(v - h) ** 2) / (2 * h);
      expect(custom[i]).toBeCloseTo(fd, 8);
      expect(custom[i]).toBeCloseTo(table[i]!, 12);
    });
  });

  it('two inputs and two outputs, backward in a later request; each instance is called once', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.expr([
      'class DivMul(autograd.Function):',
      '    def forward(self, x, y):',
      '        self.save_for_backward(x, y)',
      '        return x / y, x * y',
      '    def backward(self, dm, dn):',
      '        x, y = self.saved_tensors',
      '        return dm / y + dn * y, dn * x - dm * x / y / y',
      'x = nd.array([1.0, 2.0, 3.0])',
      'y = nd.array([0.5, 4.0, -1.0])',
      'x.attach_grad()',
      'y.attach_grad()',
      'with autograd.record():',
      '    f = DivMul()',
      '    m, n = f(x, y)',
    ].join('\n'));
    // A plain JSON backward, in another request, still runs the class's backward.
    await c.post('/ops', { ops: [{ op: 'backward', args: ['m', 'n'] }] }).expect(200);
    expect(await c.data('x/grad')).toEqual([1 / 0.5 + 0.5, 1 / 4 + 4, 1 / -1 - 1]);
    expect(await c.data('y/grad')).toEqual([1 - 1 / 0.25, 2 - 2 / 16, 3 - 3]);
    const p = await fails(c, 'f = DivMul()\nwith autograd.record():\n    a = f(x, y)\n    b = f(x, y)', 422);
    expect(p).toMatchObject({ code: 'program_error', exception: 'AssertionError', line: 4 });
    expect(p.detail).toContain('Each Function instance can only be called once');
  });

  it('forward runs with recording paused: the call is one node on the tape', async () => {
    const c = await Client.open(srv.url);
    await c.expr([
      'class Twice(autograd.Function):',
      '    def forward(self, x):',
      '        return (x * 1 + x) * 1',
      '    def backward(self, d):',
      '        return d * 2',
      'x = nd.ones(2)',
      'x.attach_grad()',
      'with autograd.record():',
      '    y = Twice()(x)',
      '    z = y * 3',
    ].join('\n'));
    expect((await c.get('').expect(200)).body.tape_nodes).toBe(2);
    const s = await c.expr('z.backward()', { fetch: ['x.grad'] });
    expect(s.outputs['x.grad'].data).toEqual([6, 6]);
  });
});

describe('array lifetimes of interpreted programs (reference counts)', () => {
  it("a custom Function's saved tensors live while its node can run, and go with it", async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.expr([
      'class Square(autograd.Function):',
      '    def forward(self, x):',
      '        self.save_for_backward(x * 1)',
      '        return x * x',
      '    def backward(self, d):',
      '        x, = self.saved_tensors',
      '        return 2 * x * d',
      'x = nd.array([1.0, -2.0])',
      'x.attach_grad()',
      'with autograd.record():',
      '    y = Square()(x)',
    ].join('\n'));
    // Saved by the node only (no name holds the copy): two backward passes read it.
    await c.post('/ops', { ops: [{ op: 'backward', args: ['y'], attrs: { retain_graph: true } }] }).expect(200);
    expect(await c.data('x/grad')).toEqual([2, -4]);
    await c.post('/ops', { ops: [{ op: 'backward', args: ['y'] }] }).expect(200);
    expect(await c.data('x/grad')).toEqual([2, -4]);
    await c.del('/arrays/y').expect(204);
    await c.del('/arrays/x').expect(204);
    const info = (await c.get('').expect(200)).body;
    expect(info.bytes).toBe(0);
    expect(info.buffers).toBe(0);
  });

  it('loops and calls leave nothing behind but the names they bind', async () => {
    const c = await Client.open(srv.url);
    await c.expr('def step(w):\n    for i in range(20):\n        w = w * 1.5 + i\n    return w\nacc = []\nfor k in range(5):\n    acc.append(step(nd.ones(3)))\nr = acc[4] - acc[0]');
    const info = (await c.get('').expect(200)).body;
    expect(info.arrays).toBe(1);
    expect(info.buffers).toBe(1);
  });

  it('prints integer arrays as numpy does, floats with a point', async () => {
    const c = await Client.open(srv.url);
    const r = await c.expr("print(nd.array([1, 2], dtype='int32'), nd.array([1, 2]))");
    expect(r.printed).toBe('\n[1 2]\n<NDArray 2 @cpu(0)> \n[1. 2.]\n<NDArray 2 @cpu(0)>\n');
  });
});

describe('higher-order gradients through a function with a branch', () => {
  it('the second derivative of x**3 or -x**2, picked by the sign of x', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    for (const [x0, d2] of [[2, 12], [-3, -2]] as const) {
      await c.expr(`def f(x):\n    if x.sum().asscalar() > 0:\n        return x ** 3\n    else:\n        return -x ** 2\nx = nd.array([${x0}])\nx.attach_grad()\nwith autograd.record():\n    y = f(x)`);
      await c.post('/autograd/record', {}).expect(200);
      await c.post('/grad', { heads: ['y'], variables: ['x'], create_graph: true, out: ['dx'] }).expect(200);
      await c.post('/autograd/exit').expect(200);
      await c.post('/arrays/dx/backward', {}).expect(200);
      expect(await c.data('x/grad')).toEqual([d2]);
    }
  });
});

describe("autograd.grad inside a program (MXNet's signature)", () => {
  it('answers a list even for one variable, and differentiates again with create_graph', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const xs = [0.3, -1.2, 2.0];
    const r = await c.expr([
      `x = nd.array([${xs.join(', ')}])`,
      'x.attach_grad()',
      'with autograd.record():',
      '    y = nd.sin(x) * x',
      // MXNet: grad returns a list, so [0] is the gradient, not its first element.
      '    dx = autograd.grad(y, [x], create_graph=True)[0]',
      '    gs = autograd.grad(dx, x, create_graph=True)',
      '    d2 = gs[0]',
      'd3 = autograd.grad(d2, [x])[0]',
      'n = len(gs)',
      'n',
    ].join('\n'), { fetch: ['dx', 'd2', 'd3'] });
    expect(r.result).toBe(1);
    const at = (name: string) => r.outputs[name].data as number[];
    // y = x sin x: y' = sin x + x cos x, y'' = 2 cos x - x sin x, y''' = -3 sin x - x cos x.
    xs.forEach((x, i) => {
      expect(at('dx')[i]).toBeCloseTo(Math.sin(x) + x * Math.cos(x), 12);
      expect(at('d2')[i]).toBeCloseTo(2 * Math.cos(x) - x * Math.sin(x), 12);
      expect(at('d3')[i]).toBeCloseTo(-3 * Math.sin(x) - x * Math.cos(x), 12);
    });
    // The gradient buffer is left alone, as MXNet's autograd.grad leaves it.
    expect(await c.data('x/grad')).toEqual([0, 0, 0]);
  });

  it('head_grads weight the heads; a function of two variables against central differences', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    const f = (a: number, b: number) => Math.exp(a * b) + a * a;
    const r = await c.expr([
      'def f(a, b):',
      '    return nd.exp(a * b) + a * a',
      'a = nd.array([0.5, -0.25])',
      'b = nd.array([1.5, 2.0])',
      'a.attach_grad()',
      'b.attach_grad()',
      'with autograd.record():',
      '    y = f(a, b)',
      'ga, gb = autograd.grad(y, [a, b], head_grads=nd.array([2.0, -1.0]))',
    ].join('\n'), { fetch: ['ga', 'gb'] });
    const h = 1e-6;
    const A = [0.5, -0.25], B = [1.5, 2.0], w = [2, -1];
    A.forEach((a, i) => {
      const b = B[i]!;
      expect((r.outputs.ga.data as number[])[i]).toBeCloseTo(w[i]! * (f(a + h, b) - f(a - h, b)) / (2 * h), 6);
      expect((r.outputs.gb.data as number[])[i]).toBeCloseTo(w[i]! * (f(a, b + h) - f(a, b - h)) / (2 * h), 6);
    });
  });

  it('refuses a variable without a gradient buffer, naming it, and keeps the session', async () => {
    const c = await Client.open(srv.url);
    const body = await fails(c, 'x = nd.array([1.0])\nz = nd.array([2.0])\nx.attach_grad()\nwith autograd.record():\n    y = x * z\ng = autograd.grad(y, [z])', 409);
    expect(body.code).toBe('no_grad');
    expect(body.line).toBe(6);
    expect(await c.data('x')).toEqual([1]);
  });
});

describe('limits: each refusal is a 4xx naming its limit and where, and the session goes on', () => {
  let tight: TestServer;
  beforeAll(async () => {
    tight = await startServer({ GRADSERVE_MAX_STEPS: '500', GRADSERVE_MAX_CALL_DEPTH: '20', GRADSERVE_MAX_DEFINITIONS: '2', GRADSERVE_MAX_SESSION_BYTES: String(32 << 20) });
  });
  afterAll(async () => { await tight.close(); });

  async function intact(c: Client) {
    const r = await c.expr('keep = keep + 1\nkeep.asscalar()');
    return r.result;
  }

  it('the step budget, the call depth and the definitions cap', async () => {
    const c = await Client.open(tight.url);
    await c.expr('keep = nd.zeros(1)');
    const steps = await fails(c, 'i = 0\nwhile True:\n    i += 1', 429);
    expect(steps).toMatchObject({ code: 'quota_exceeded', limit: 'steps' });
    expect([2, 3]).toContain(steps.line);
    expect(steps.detail).toContain('GRADSERVE_MAX_STEPS');
    expect(await intact(c)).toBe(1);
    const depth = await fails(c, 'def down(n):\n    return down(n + 1)\ndown(0)', 429);
    expect(depth).toMatchObject({ code: 'quota_exceeded', limit: 'call_depth', function: 'down', line: 2 });
    expect(depth.traceback[0]).toEqual({ function: '<module>', line: 3, statement: 'down(0)' });
    expect(await intact(c)).toBe(2);
    await c.expr('del down\ndef a():\n    return 1');
    const defs = await fails(c, 'def b():\n    return 2\ndef c():\n    return 3', 429);
    expect(defs).toMatchObject({ code: 'quota_exceeded', limit: 'definitions', line: 3 });
    // b was defined before c was refused; replacing a definition is always allowed.
    await c.expr('def b():\n    return 20\nkeep = keep + b()');
    expect(await intact(c)).toBe(23);
  });

  it('what a loop rebinds is freed as it goes: 150 MB of 1 MB arrays under a 32 MB quota', async () => {
    const c = await Client.open(tight.url);
    const r = await c.expr([
      'def grow(b, n):',
      '    for i in range(n):',
      '        b = b * 1 + 0',
      '    return b',
      'x = nd.ones((512, 512))',
      'y = grow(x, 75)',
      'for w in [x * 2, x * 3]:',
      '    q = grow(w, 2)',
      'q.sum().asscalar()',
    ].join('\n'));
    expect(r.result).toBe(3 * 512 * 512);
    expect((await c.get('').expect(200)).body.peak_bytes).toBeLessThan(32 << 20);
  });

  it('the time budget, read inside a loop', async () => {
    const slow = await startServer({ GRADSERVE_MAX_STEPS: '100000000', GRADSERVE_REQUEST_TIMEOUT_MS: '300' });
    try {
      const c = await Client.open(slow.url);
      await c.expr('keep = nd.zeros(1)');
      const t0 = Date.now();
      const p = await fails(c, 'n = 0\nwhile True:\n    n = n + 1', 422);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(p).toMatchObject({ code: 'time_limit', limit: 'request_time' });
      expect([2, 3]).toContain(p.line);
      const q = await fails(c, 'x = nd.ones(4)\nwhile True:\n    x = x * 1', 422);
      expect(q).toMatchObject({ code: 'time_limit', limit: 'request_time' });
      expect(await intact(c)).toBe(1);
    } finally {
      await slow.close();
    }
  });
});
