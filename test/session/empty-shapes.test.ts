/**
 * Empty arrays with huge dimensions are refused where shapes enter, never a 500 later (issue 15,
 * finding 7); ordinary empty arrays still work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('empty shapes', () => {
  it.each([
    'z = nd.zeros((0, 2147483647, 2147483647))',
    'z = nd.ones((2147483647, 0, 2147483647)).T',
    'z = nd.zeros((0, 3)).reshape((0, 2147483647, 2147483647))',
    'z = nd.broadcast_to(nd.zeros((0, 1, 1)), shape=(0, 2147483647, 2147483647))',
  ])('%s is a 4xx naming the limit', async (expr) => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
  });

  it('an upload with such a shape is a 4xx', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/arrays', { name: 'z', data: [], shape: [0, 2147483647, 2147483647] });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
  });

  it('small empty arrays still transpose, sum and differentiate', async () => {
    const c = await Client.open(srv.url);
    const r = await c.expr('z = nd.zeros((0, 3)).T; s = nd.zeros((0, 3)).sum()', { fetch: true });
    expect(r.outputs.z.shape).toEqual([3, 0]);
    expect(r.outputs.s.data).toEqual([0]);
  });
});
