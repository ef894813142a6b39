/**
 * The TypeScript client (clients/typescript) against a real listening server: the seed chapter written
 * with it, the autograd scopes, errors, and the op Proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, GradserveError, NDArray, type Session } from '../../clients/typescript/src/index.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('the seed chapter with the TypeScript client', () => {
  it('In[2]-In[6]: y = 2 x^T x, backward, x.grad == 4x', async () => {
    const gs = await connect(srv.url, { seed: 1 });
    // In[2]: x = nd.arange(4).reshape((4, 1))
    const x = await gs.nd.arange(4).reshape([4, 1]);
    expect(x).toBeInstanceOf(NDArray);
    expect(x.shape).toEqual([4, 1]);
    expect(await x.tolist()).toEqual([[0], [1], [2], [3]]);
    // In[3]: x.attach_grad()
    await x.attachGrad();
    expect(x.gradReq).toBe('write');
    // In[4]: with autograd.record(): y = 2 * nd.dot(x.T, x)
    const y = await gs.autograd.record(() => gs.nd.dot(x.T(), x).mul(2));
    expect(y.shape).toEqual([1, 1]);
    const h = await y.history();
    expect(h.recorded).toBe(true);
    expect(h.tape).toMatch(/^t\d+$/);
    // In[5]: y.backward()
    await y.backward();
    // In[6]: (x.grad - 4 * x).norm().asscalar() == 0; x.grad
    expect(await x.grad().sub(x.mul(4)).norm().asscalar()).toBe(0);
    expect(await x.grad().tolist()).toEqual([[0], [4], [8], [12]]);
    expect((await y.history()).recorded).toBe(false);
    await gs.close();
  });

  it('In[7]: is_training is false outside record and true inside', async () => {
    const gs = await connect(srv.url);
    expect(await gs.autograd.isTraining()).toBe(false);
    expect(await gs.autograd.isRecording()).toBe(false);
    const inside = await gs.autograd.record(async () => [await gs.autograd.isRecording(), await gs.autograd.isTraining()]);
    expect(inside).toEqual([true, true]);
    expect(await gs.autograd.isTraining()).toBe(false);
    await gs.close();
  });

  /** In[8]: the chapter's f(a), with JS control flow; each step is one request. */
  async function f(a: NDArray): Promise<NDArray> {
    let b = await a.mul(2);
    while ((await b.norm().asscalar()) < 1000) b = await b.mul(2);
    return (await b.sum().asscalar()) > 0 ? b : a.session.nd.multiply(100, b);
  }

  it('In[9]-In[10]: the gradient of control flow, a.grad == c / a', async () => {
    const gs = await connect(srv.url, { seed: 1 });
    const a = await gs.nd.random.normal({ shape: 1 });
    await a.attachGrad();
    const c = await gs.autograd.record(() => f(a));
    await c.backward();
    expect(await a.grad().eq(c.div(a)).tolist()).toEqual([1]);
    await gs.close();
  });

  it('the other branch (c = 100 * b) gives a.grad == c / a to 1e-6', async () => {
    const gs = await connect(srv.url);
    const a = await gs.nd.array([-0.3]);
    await a.attachGrad();
    const c = await gs.autograd.record(() => f(a));
    await c.backward();
    const [g] = (await a.grad().tolist()) as number[];
    const [q] = (await c.div(a).tolist()) as number[];
    expect(Math.abs(g - q)).toBeLessThan(1e-6 * Math.abs(q));
    await gs.close();
  });
});

describe('autograd scopes and functions', () => {
  let gs: Session;
  beforeAll(async () => { gs = await connect(srv.url, { seed: 2 }); });
  afterAll(async () => { await gs.close(); });

  it('record exits its scope even when the callback throws', async () => {
    await expect(gs.autograd.record(async () => {
      expect(await gs.autograd.isRecording()).toBe(true);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await gs.autograd.isRecording()).toBe(false);
    // A server error inside is a GradserveError, and the scope is closed too.
    const err = await gs.autograd.record(() => gs.nd.dot(gs.nd.ones([2, 3]), gs.nd.ones([2, 3]))).catch((e) => e);
    expect(err).toBeInstanceOf(GradserveError);
    expect(err).toMatchObject({ code: 'shape_mismatch', status: 422 });
    expect(err.detail).toMatch(/dot/);
    expect((await gs.autograd.isRecording())).toBe(false);
  });

  it('pause, trainMode and predictMode nest like MXNet', async () => {
    const seen = await gs.autograd.record(() => gs.autograd.pause(async () => [
      await gs.autograd.isRecording(),
      await gs.autograd.isTraining(),
      await gs.autograd.trainMode(() => gs.autograd.isTraining()),
    ]));
    expect(seen).toEqual([false, false, true]);
    expect(await gs.autograd.trainMode(() => gs.autograd.predictMode(() => gs.autograd.isTraining()))).toBe(false);
    expect(await gs.autograd.record(() => gs.autograd.isTraining(), { trainMode: false })).toBe(false);
  });

  it('detectAnomaly: the op that makes a NaN or Inf fails with anomaly_detected, and the scope closes', async () => {
    const x = await gs.nd.array([0, 1]);
    const err = await gs.autograd.detectAnomaly(() => gs.nd.log(x)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GradserveError);
    expect((err as GradserveError).code).toBe('anomaly_detected');
    expect((err as GradserveError).status).toBe(422);
    expect(await gs.autograd.isRecording()).toBe(false);
    expect(await (await gs.nd.log(x)).tolist()).toEqual([-Infinity, 0]);
  });

  it('autograd.backward with several heads and autograd.grad as new arrays', async () => {
    const x = await gs.nd.array([1, 2, 3]);
    await x.attachGrad();
    const [y, z] = await gs.autograd.record(async () => [await x.mul(x).sum(), await x.mul(3).sum()]);
    await gs.autograd.backward([y, z]);
    expect(await x.grad().tolist()).toEqual([5, 7, 9]);
    const w = await gs.autograd.record(() => x.pow(3).sum());
    const [g] = await gs.autograd.grad(w, [x]);
    expect(await g.tolist()).toEqual([3, 12, 27]);
    // .grad untouched by autograd.grad
    expect(await x.grad().tolist()).toEqual([5, 7, 9]);
  });

  it('backward with a head gradient, and grad_req add accumulates', async () => {
    const x = await gs.nd.array([[1, 2]]);
    await x.attachGrad('add');
    for (let i = 0; i < 2; i++) {
      const y = await gs.autograd.record(() => x.mul(2));
      await y.backward({ headGrad: [[1, 10]] });
    }
    expect(await x.grad().tolist()).toEqual([[4, 40]]);
  });
});

describe('nd', () => {
  let gs: Session;
  beforeAll(async () => { gs = await connect(srv.url, { seed: 3 }); });
  afterAll(async () => { await gs.close(); });

  it('has every op GET /v1/ops lists, names and aliases, dotted names as namespaces', async () => {
    expect(gs.ops.length).toBeGreaterThan(20);
    for (const o of gs.ops) {
      for (const n of [o.name, ...o.aliases]) {
        const fn = n.split('.').reduce<unknown>((t, k) => (t as Record<string, unknown>)[k], gs.nd);
        expect(typeof fn, n).toBe('function');
      }
    }
    expect('dot' in gs.nd).toBe(true);
    expect(() => (gs.nd as unknown as Record<string, unknown>).dott).toThrow(/gs.nd.dott is not an op of this server/);
    const r = await gs.nd.random_normal({ shape: [2, 3], loc: 5 });
    expect(r.shape).toEqual([2, 3]);
    expect((await gs.nd.random.uniform(0, 1, [4])).shape).toEqual([4]);
  });

  it('takes scalars, inline constants, positional and keyword attrs; values round-trip with NaN', async () => {
    const x = await gs.nd.array([[1, 2], [3, 4]], { dtype: 'float64' });
    expect(x.dtype).toBe('float64');
    expect(await gs.nd.add(x, [[10, 20], [30, 40]]).tolist()).toEqual([[11, 22], [33, 44]]);
    expect(await x.sum({ axis: 1 }).tolist()).toEqual([3, 7]);
    expect(await gs.nd.sum(x, 0).tolist()).toEqual([4, 6]);
    expect(await x.op('clip', 2, 3).tolist()).toEqual([[2, 2], [3, 3]]);
    const n = await gs.nd.array([NaN, Infinity, -Infinity, 0.5]);
    expect(await n.tolist()).toEqual([NaN, Infinity, -Infinity, 0.5]);
    const t = await gs.nd.array(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    expect(t).toMatchObject({ shape: [2, 3], dtype: 'float64' });
    expect(await t.T().tolist()).toEqual([[1, 4], [2, 5], [3, 6]]);
    const parts = await gs.nd.call('split', [t, { num_outputs: 3, axis: 1 }]);
    expect(parts.length).toBe(3);
    expect(await parts[2].tolist()).toEqual([[3], [6]]);
    await expect(gs.nd.split(t, { num_outputs: 3, axis: 1 })).rejects.toThrow(/gs.nd.call\('split'/);
  });

  it('get() wraps names bound by expressions; asscalar refuses arrays of several elements', async () => {
    await gs.expr('v = nd.arange(3) * 2');
    const v = await gs.nd.get('v');
    expect(v.shape).toEqual([3]);
    expect(await v.tolist()).toEqual([0, 2, 4]);
    const err = await v.asscalar().catch((e) => e);
    expect(err).toBeInstanceOf(GradserveError);
    expect(err.status).toBe(422);
  });

  it('the session can be exported and imported, and tapes drawn', async () => {
    const x = await gs.nd.array([1, 2]);
    await x.attachGrad();
    const y = await gs.autograd.record(() => x.mul(x).sum());
    const svg = (await gs.tape((await y.history()).tape!, 'svg')) as string;
    expect(svg).toMatch(/<svg[\s\S]*multiply[\s\S]*<\/svg>/);
    const file = await gs.exportFile();
    const other = await connect(srv.url);
    const answer = await other.importFile(file);
    expect(answer.arrays.length).toBeGreaterThan(2);
    expect(Buffer.from(await other.exportFile()).equals(Buffer.from(file))).toBe(true);
    await other.close();
  });
});

describe('errors', () => {
  it('problem answers become GradserveError with code, status and detail', async () => {
    const gs = await connect(srv.url);
    const x = await gs.nd.array([1, 2]);
    const err = await x.grad().tolist().catch((e) => e);
    expect(err).toBeInstanceOf(GradserveError);
    expect(err).toMatchObject({ code: 'no_grad', status: 409 });
    expect(err.detail).toMatch(/attach-grad/);
    expect(err.message).toContain(`/v1/sessions/${gs.id}/arrays/`);
    const b = await x.backward().catch((e) => e);
    expect(b).toMatchObject({ code: 'no_graph', status: 409 });
    await gs.close();
    await expect(x.tolist()).rejects.toMatchObject({ code: 'closed' });
  });

  it('a server that does not answer: the error names the URL tried', async () => {
    // A port nothing listens on: the test server's port after it closed.
    const dead = await startServer();
    const url = dead.url;
    await dead.close();
    const err = await connect(url).catch((e) => e);
    expect(err).toBeInstanceOf(GradserveError);
    expect(err.code).toBe('network_error');
    expect(err.status).toBe(0);
    expect(err.message).toContain(`${url}/v1/sessions`);
    expect(err.detail).toMatch(/cannot reach the gradserve server at/);
  });

  it('an API key the server wants', async () => {
    const keyed = await startServer({ GRADSERVE_API_KEYS: 'k1' });
    await expect(connect(keyed.url)).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
    const gs = await connect(keyed.url, { apiKey: 'k1' });
    expect(await gs.nd.ones([2]).tolist()).toEqual([1, 1]);
    await keyed.close();
  });
});

describe("autograd's transforms from the TypeScript client", () => {
  it('vjp, jacobian, hessian and gradcheck of a def of the session answer handles and reports', async () => {
    const gs = await connect(srv.url, { defaultDtype: 'float64' });
    await gs.expr('def f(x):\n    return nd.exp(x) * x\ndef g(x):\n    return (x * x * x).sum()');
    const x = await gs.nd.array([0.5, -1.0, 2.0]);
    const v = await gs.nd.array([1.0, 2.0, -1.0]);
    const { value, result } = await gs.autograd.vjp('f', [x], [v]);
    // (e^x x)' = e^x (1 + x), weighted by v.
    const vjp = await (result as NDArray[])[0]!.tolist() as number[];
    [0.5, -1.0, 2.0].forEach((t, i) => expect(vjp[i]).toBeCloseTo(Math.exp(t) * (1 + t) * [1, 2, -1][i]!, 12));
    expect(await (value as NDArray).tolist()).toEqual([0.5, -1, 2].map((t) => expect.closeTo(Math.exp(t) * t, 12)));
    const J = await gs.autograd.jacobian('f', [x]) as NDArray[];
    expect(J[0]!.shape).toEqual([3, 3]);
    const H = await gs.autograd.hessian('g', [x]) as NDArray[][];
    expect(await H[0]![0]!.tolist()).toEqual([[3, 0, 0], [0, -6, 0], [0, 0, 12]]);
    const report = await gs.autograd.gradcheck('f', [x]);
    expect(report.passed).toBe(true);
    expect(report.inputs[0]!.error).toBeLessThan(1e-6);
    await gs.close();
  });
});
