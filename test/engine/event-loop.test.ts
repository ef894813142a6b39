/**
 * Large kernels run off the event loop: over a real listening server, session B's small requests
 * complete while session A's large matmul request is still computing, and A's answer is right.
 * The assertion is about order, not timings: A's product (3000^3 float64, over a second on two
 * cores) is queued before B starts, and B's 20 sequential requests must all be answered first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';
import { loadNativeAddon } from '../../src/engine/native.js';

const addon = process.env.GRADSERVE_BACKEND === 'reference' ? null : loadNativeAddon();

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const waitFor = async (cond: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
  return true;
};

describe.skipIf(!addon)('kernels off the event loop', () => {
  it("session B's small requests finish while session A's large matmul runs", async () => {
    const a = await Client.open(srv.url, { default_dtype: 'float64' });
    const b = await Client.open(srv.url, { default_dtype: 'float64' });
    const n = 3000;
    // Ones make the product exact and easy to check: every element is n.
    await a.expr(`m = nd.ones((${n}, ${n}))`);
    await b.expr('x = nd.array([1, 2, 3])');

    let aDone = false;
    const aReq = a.post('/ops', { expr: `p = nd.dot(m, m); s = p[0:2, 0:2]`, fetch: ['s'] }).then((r) => {
      aDone = true;
      return r;
    });
    // Wait until A's product is queued on the native worker.
    expect(await waitFor(() => addon!.pendingWork() > 0, 10_000)).toBe(true);

    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await b.post('/ops', { expr: `x = x * 1 + ${i}; y = x.sum()`, fetch: ['y'] });
      expect(r.status).toBe(200);
      seen.push(r.body.outputs.y.data[0]);
      expect(aDone, `B's request ${i} was answered after A's matmul`).toBe(false);
    }
    // x grows by 0 + 1 + ... + 19 elementwise: its sum is 6 + 3 * 190.
    expect(seen[19]).toBe(6 + 3 * 190);

    const ra = await aReq;
    expect(ra.status).toBe(200);
    expect(ra.body.outputs.s.data).toEqual([[n, n], [n, n]]);
  }, 120_000);

  it('requests of one session still apply in order around a queued kernel', async () => {
    const a = await Client.open(srv.url, { default_dtype: 'float64' });
    await a.expr('m = nd.ones((1200, 1200))');
    // Fire without awaiting: the second request reads what the first computes.
    const r1 = a.post('/ops', { expr: 'p = nd.dot(m, m)' });
    const r2 = a.post('/ops', { expr: 'q = p[0:1, 0:3] + 1', fetch: ['q'] });
    const [x1, x2] = await Promise.all([r1, r2]);
    expect(x1.status).toBe(200);
    expect(x2.status).toBe(200);
    expect(x2.body.outputs.q.data).toEqual([[1201, 1201, 1201]]);
  }, 60_000);
});
