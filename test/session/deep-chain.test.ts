/**
 * A recorded chain as long as the tape-node quota allows is swept, walked and freed without
 * recursion: deeper than the call stack, it once made every later request of the session a 500
 * (issue 15, finding 4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_TAPE_NODES: '60000', GRADSERVE_MAX_STATEMENTS: '40000' }); });
afterAll(async () => { await srv.close(); });

describe('deep chains', () => {
  it('a 30,000-op recorded chain: the request, the next ones, backward and deletion all answer', { timeout: 60000 }, async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.post('/arrays', { name: 'x', data: [1] }).expect(201);
    await c.post('/arrays/x/attach-grad').expect(200);
    const n = 30000;
    const ops = [{ op: '_alias', args: ['x'], out: 'y' }, ...Array.from({ length: n }, () => ({ op: 'add', args: ['y', 0.5], out: 'y' }))];
    await c.post('/ops', { ops, record: true }).expect(200);
    // The sweep at the end of that request and of these walks the whole chain.
    expect((await c.get('').expect(200)).body.tape_nodes).toBe(n);
    expect((await c.get('/arrays/y').expect(200)).body.data).toEqual([1 + n / 2]);
    await c.post('/arrays/y/backward').expect(200);
    expect(await c.data('x/grad')).toEqual([1]);
    expect((await c.get('').expect(200)).body.tape_nodes).toBe(0);
  });
});
