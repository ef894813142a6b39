/**
 * The number of arrays is a quota of its own (issue 15, finding 1): each costs JavaScript heap
 * whatever its size, so many tiny arrays are a 429 naming the limit long before the heap is at
 * risk, per session and per process, and deleting arrays gives the room back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_SESSION_ARRAYS: '40', GRADSERVE_MAX_TOTAL_ARRAYS: '60' }); });
afterAll(async () => { await srv.close(); });

const create = (prefix: string, n: number) => ({
  ops: Array.from({ length: n }, (_, i) => ({ op: 'ones', attrs: { shape: [1] }, out: `${prefix}${i}` })),
});

describe('array count quota', () => {
  it('a session over its array count is a 429 naming session_arrays, at the statement that crossed it', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', create('a', 45));
    expect(r.status).toBe(429);
    expect(r.body.code).toBe('quota_exceeded');
    expect(r.body.limit).toBe('session_arrays');
    expect(r.body.statement_index).toBe(40);
    expect(r.body.detail).toMatch(/GRADSERVE_MAX_SESSION_ARRAYS/);
    // the arrays bound before it stay; deleting them makes room again
    const del = await c.post('/ops', { ops: [{ op: 'delete', args: Array.from({ length: 40 }, (_, i) => `a${i}`) }] });
    expect(del.status).toBe(200);
    expect((await c.post('/ops', create('b', 30))).status).toBe(200);
    await c.del().expect(204);
  });

  it('the process over its array count is a 429 naming total_arrays, and a deleted session gives its room back', async () => {
    const a = await Client.open(srv.url);
    const b = await Client.open(srv.url);
    expect((await a.post('/ops', create('x', 35))).status).toBe(200);
    const r = await b.post('/ops', create('y', 30));
    expect(r.status).toBe(429);
    expect(r.body.limit).toBe('total_arrays');
    await a.del().expect(204);
    expect((await b.post('/ops', create('z', 10))).status).toBe(200); // 25 + 10, within both limits
    await b.del().expect(204);
  });
});
