/**
 * Sessions share the native worker fairly, and a request's time budget covers the kernels it
 * queues. Over real servers: sessions' programs interleaved give what each gives alone; a request
 * whose queued products outrun GRADSERVE_REQUEST_TIMEOUT_MS is answered 422 `time_limit` long before
 * they would have finished, the arrays it was computing are unbound, what it did complete is
 * right, and the session and others go on working. Times are only compared with other times
 * measured in the same test, with wide margins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

const native = process.env.GRADSERVE_BACKEND !== 'reference';

let full: TestServer;
beforeAll(async () => { full = await startServer(); });
afterAll(async () => { await full.close(); });

/** The sum of an array, as the server computes it (a float64 session reads it exactly). */
async function sumOf(c: Client, name: string): Promise<number> {
  const b = await c.expr(`${name}.sum().asscalar()`);
  return b.result as number;
}

describe.skipIf(!native)('a fair worker', () => {
  it("each session's requests apply in order while other sessions' interleave: results equal a run alone", async () => {
    const programs = (i: number) => Array.from({ length: 5 }, (_, r) => [
      `c = nd.dot(c, m) * ${0.001 + i * 1e-4}`,
      `d = nd.tanh(c) + d * ${0.5 + r * 0.1}`,
      r % 2 === 0 ? `c = nd.dot(m, d) * 0.001` : `d = d - c * 0.5`,
    ].join('\n'));
    const open = async (i: number) => {
      const c = await Client.open(full.url, { seed: 10 + i, default_dtype: 'float64' });
      await c.expr('m = nd.random.uniform(shape=(700, 700))\nc = nd.random.uniform(shape=(700, 700))\nd = nd.zeros((700, 700))');
      return c;
    };
    // Alone: one session at a time, each request awaited.
    const alone: number[][] = [];
    for (let i = 0; i < 3; i++) {
      const c = await open(i);
      for (const p of programs(i)) await c.expr(p);
      alone.push([await sumOf(c, 'c'), await sumOf(c, 'd')]);
    }
    // Together: the three sessions send their requests at the same time, each in its own order.
    const sessions = await Promise.all([0, 1, 2].map(open));
    await Promise.all(sessions.map(async (c, i) => { for (const p of programs(i)) await c.expr(p); }));
    for (let i = 0; i < 3; i++) {
      expect([await sumOf(sessions[i], 'c'), await sumOf(sessions[i], 'd')], `session ${i}`).toEqual(alone[i]);
    }
  }, 180_000);
});

describe.skipIf(!native)('the time budget covers queued kernels', () => {
  const n = 1536;
  const count = 12;
  // Each product depends on the one before; `x` is there before the request and is not touched.
  const program = Array.from({ length: count }, (_, i) => `c${i + 1} = nd.dot(${i === 0 ? 'm' : `c${i}`}, m) * 0.001`).join('\n');
  const setup = `m = nd.random.uniform(shape=(${n}, ${n}))\nx = nd.array([1, 2, 3])`;

  it('a request whose queued products outrun it is answered 422 well before they would end, and the session stays consistent', async () => {
    // The whole program, unstopped, here and now.
    const ref = await Client.open(full.url, { seed: 3, default_dtype: 'float64' });
    await ref.expr(setup);
    let t0 = performance.now();
    await ref.expr(program);
    const fullMs = performance.now() - t0;

    const budget = Math.max(50, Math.round(fullMs / 10));
    const tight = await startServer({ GRADSERVE_REQUEST_TIMEOUT_MS: String(budget) });
    try {
      const c = await Client.open(tight.url, { seed: 3, default_dtype: 'float64' });
      await c.expr(setup);
      // Another session, beside it on the same worker.
      const other = await Client.open(full.url, { default_dtype: 'float64' });
      await other.expr('w = nd.ones((300, 300))');

      t0 = performance.now();
      // (then() sends a request at once.)
      const stopped = c.post('/ops', { expr: program }).then((x) => x);
      const beside = other.post('/ops', { expr: 'v = nd.dot(w, w)\nv.sum().asscalar()' }).then((x) => x);
      const r = await stopped;
      const stoppedMs = performance.now() - t0;
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body).toMatchObject({ code: 'time_limit', limit: 'request_time' });
      expect(stoppedMs).toBeLessThan(fullMs / 2);
      const { lost, changed } = r.body as { lost: string[]; changed: string[] };
      // Usually every statement has queued its product before the budget runs out (c12 is then
      // lost); on a starved machine the program may stop between statements first. Either way
      // the stopped products' names are lost.
      expect(lost.length).toBeGreaterThan(0);
      if (r.body.line === undefined) expect(lost).toContain(`c${count}`);
      for (const name of lost) expect(changed).not.toContain(name);
      const b = await beside;
      expect(b.status).toBe(200);
      expect(b.body.result).toBe(300 ** 3);

      // What a client can read now is either what was there before or fully computed.
      expect(await c.data('x')).toEqual([1, 2, 3]);
      for (const name of lost) expect((await c.get(`/arrays/${name}`)).status).toBe(404);
      const bound = new Set(((await c.get('/arrays').expect(200)).body.arrays as { name: string }[]).map((a) => a.name));
      for (let i = 1; i <= count; i++) {
        const name = `c${i}`;
        if (!bound.has(name)) continue;
        // Bound: completed, so listed as changed and equal to the unstopped run's value.
        expect(lost).not.toContain(name);
        expect(changed).toContain(name);
        expect(await sumOf(c, name), name).toBe(await sumOf(ref, name));
      }
      for (const name of changed) expect(bound.has(name), name).toBe(true);
      // The session keeps working: a request after the stop, within the budget.
      const after = await c.post('/ops', { expr: 'y = x * 2', fetch: ['y'] });
      expect(after.status).toBe(200);
      expect(after.body.outputs.y.data).toEqual([2, 4, 6]);
    } finally {
      await tight.close();
    }
  }, 180_000);

  it('a variable whose gradient a stopped backward was to write keeps its value and its old gradient', async () => {
    // The statements queue the forward products and the backward's in a few milliseconds (on a
    // quiet machine); the products themselves take seconds, so the budget runs out while they wait.
    const tight = await startServer({ GRADSERVE_REQUEST_TIMEOUT_MS: '600' });
    try {
      const c = await Client.open(tight.url, { seed: 5, default_dtype: 'float64' });
      await c.expr(`m = nd.random.uniform(shape=(${n}, ${n}))`);
      await c.expr(`w = nd.random.uniform(shape=(${n}, ${n}))`);
      await c.post('/arrays/w/attach-grad').expect(200);
      const wSum = await sumOf(c, 'w');
      const step = Array.from({ length: 12 }, () => 'h = nd.dot(h, w) * 0.001').join('\n');
      const r = await c.post('/ops', { expr: `with autograd.record():\n    h = nd.dot(m, w)\n${step.replace(/^/gm, '    ')}\n    loss = h.sum()\nloss.backward()` });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body).toMatchObject({ code: 'time_limit', limit: 'request_time' });
      // The products the record scope made are lost; w was only read by them, and the write of
      // its gradient (queued after them) was stopped before it ran, so w keeps its value and its
      // gradient buffer the zeros attach-grad gave it.
      expect(r.body.lost, JSON.stringify(r.body)).not.toContain('w');
      expect(r.body.lost).toContain('h');
      if (r.body.line === undefined) expect(r.body.kept, JSON.stringify(r.body)).toContain('w');
      expect(await sumOf(c, 'w')).toBe(wSum);
      expect(await sumOf(c, 'w.grad')).toBe(0);
      // m was only read: it is as it was, and the session goes on.
      const ok = await c.post('/ops', { expr: 'm.shape[0]' });
      expect(ok.status).toBe(200);
    } finally {
      await tight.close();
    }
  }, 120_000);

  it('an array written in place by a stopped kernel keeps the value it had', async () => {
    const tight = await startServer({ GRADSERVE_REQUEST_TIMEOUT_MS: '300' });
    try {
      const c = await Client.open(tight.url, { seed: 6, default_dtype: 'float64' });
      await c.expr(`m = nd.random.uniform(shape=(${n}, ${n}))`);
      await c.expr(`w = nd.random.uniform(shape=(${n}, ${n}))`);
      const before = await sumOf(c, 'w');
      // Ten products, then their result written over w: the write waits behind them.
      const chain = Array.from({ length: 10 }, () => 'h = nd.dot(h, m) * 0.001').join('\n');
      const r = await c.post('/ops', { expr: `h = m\n${chain}\nw[:] = h` });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body.lost).not.toContain('w');
      if (r.body.line === undefined) expect(r.body.kept, JSON.stringify(r.body)).toContain('w');
      expect(await sumOf(c, 'w')).toBe(before);
    } finally {
      await tight.close();
    }
  }, 120_000);

  it('a program stopped between statements also stops what its earlier statements queued', async () => {
    // The interpreter reads a value inside a loop (a synchronous wait on the worker) and checks
    // the budget between statements; either way the answer is 422 and nothing half-made is bound.
    const tight = await startServer({ GRADSERVE_REQUEST_TIMEOUT_MS: '150' });
    try {
      const c = await Client.open(tight.url, { seed: 4, default_dtype: 'float64' });
      await c.expr(`m = nd.random.uniform(shape=(${n}, ${n}))`);
      const r = await c.post('/ops', { expr: 'p = m\nfor i in range(40):\n    p = nd.dot(p, m) * 0.001\n    s = p.sum().asscalar()' });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body).toMatchObject({ code: 'time_limit', limit: 'request_time' });
      const names = ((await c.get('/arrays').expect(200)).body.arrays as { name: string }[]).map((a) => a.name);
      // Whatever is bound reads without error.
      for (const name of names) {
        const g = await c.post('/ops', { expr: `${name}.sum().asscalar()` });
        expect(g.status, name).toBe(200);
      }
    } finally {
      await tight.close();
    }
  }, 120_000);
});
