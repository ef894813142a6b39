/**
 * Named snapshots over a real server: a notebook's branch-and-go-back (take, change, restore), a
 * fork into a new session, and the limits and refusals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const STEP = [
  'with autograd.record():',
  '    l = ((nd.dot(X, w) - y) ** 2).sum()',
  'l.backward()',
  'w[:] = w - 0.01 * w.grad',
].join('\n');

async function trained(c: Client): Promise<void> {
  await c.expr([
    'X = nd.random.normal(shape=(8, 3))',
    'y = nd.random.normal(shape=(8, 1))',
    'w = nd.zeros((3, 1))',
    'w.attach_grad()',
    'frozen = nd.ones((2,))',
    "frozen.attach_grad(grad_req='null')",
    'def predict(a):',
    '    return nd.dot(a, w)',
    STEP,
  ].join('\n'));
}

describe('snapshots', () => {
  it('restore brings back every binding, gradient buffer and grad_req, the definitions and the random stream', async () => {
    const c = await Client.open(srv.url, { seed: 7 });
    await trained(c);
    const taken = await c.post('/snapshots', { name: 'before' });
    expect(taken.status).toBe(201);
    expect(taken.body).toMatchObject({ name: 'before', arrays: 5, definitions: 1 });
    const at = { w: await c.data('w'), grad: await c.data('w/grad') };
    const draw = (await c.expr('r = nd.random.uniform(shape=(3,))', { fetch: ['r'] })).outputs.r.data;
    // The branch: more steps, a new name, a new definition, another draw.
    await c.expr(`${STEP}\n${STEP}\nextra = w * 2\ndef later(a):\n    return a`);
    expect(await c.data('w')).not.toEqual(at.w);

    const back = await c.post('/restore', { snapshot: 'before' });
    expect(back.status).toBe(200);
    expect(back.body.arrays.map((d: { name: string }) => d.name).sort()).toEqual(['X', 'frozen', 'l', 'w', 'y']);
    expect(await c.data('w')).toEqual(at.w);
    expect(await c.data('w/grad')).toEqual(at.grad);
    expect((await c.get('/arrays/extra')).status).toBe(404);
    const arrays = Object.fromEntries(back.body.arrays.map((d: { name: string; grad_req: string | null }) => [d.name, d.grad_req]));
    expect(arrays).toMatchObject({ w: 'write', frozen: 'null', X: null });
    const info = (await c.get('').expect(200)).body;
    expect(info.definitions.map((d: { name: string }) => d.name)).toEqual(['predict']);
    // The stream is where it was: the same draw again.
    expect((await c.expr('r = nd.random.uniform(shape=(3,))', { fetch: ['r'] })).outputs.r.data).toEqual(draw);
    // And training goes on from the snapshot as it did the first time.
    await c.expr(STEP);
    expect((await c.expr('p = predict(X)', { fetch: ['p'] })).outputs.p.shape).toEqual([8, 1]);
  });

  it('a fork is a new session with the snapshot state and a token of its own; the two go separate ways', async () => {
    const c = await Client.open(srv.url, { seed: 3 });
    await trained(c);
    await c.post('/snapshots', { name: 'base' }).expect(201);
    const f = await c.post('/snapshots/base/fork', {});
    expect(f.status).toBe(201);
    expect(f.body.id).not.toBe(c.sid);
    const fork = new Client(srv.url, f.body.id, f.body.token);
    expect(await fork.data('w')).toEqual(await c.data('w'));
    await fork.expr(`${STEP}\n${STEP}`);
    expect(await fork.data('w')).not.toEqual(await c.data('w'));
    expect((await request(srv.url).get(`/v1/sessions/${f.body.id}`).set('Authorization', `Bearer ${c.token}`)).status).toBe(401);
    expect((await fork.get('/snapshots').expect(200)).body.snapshots).toEqual([]);
  });

  it('lists and deletes; an unknown name is a 404, an open scope a 409, and the count and bytes are bounded', async () => {
    const small = await startServer({ GRADSERVE_MAX_SNAPSHOTS: '2', GRADSERVE_MAX_SESSION_BYTES: String(1 << 20) });
    try {
      const c = await Client.open(small.url);
      await c.expr('a = nd.ones((1000,))');
      await c.post('/snapshots', { name: 's1' }).expect(201);
      await c.post('/snapshots', { name: 's2' }).expect(201);
      await c.post('/snapshots', { name: 's1' }).expect(201);
      const full = await c.post('/snapshots', { name: 's3' });
      expect(full.status).toBe(429);
      expect(full.body).toMatchObject({ code: 'quota_exceeded', limit: 'snapshots' });
      expect((await c.get('/snapshots').expect(200)).body.snapshots.map((p: { name: string }) => p.name)).toEqual(['s1', 's2']);
      await request(small.url).delete(`/v1/sessions/${c.sid}/snapshots/s2`).set('Authorization', `Bearer ${c.token}`).expect(204);
      const gone = await c.post('/restore', { snapshot: 's2' });
      expect(gone.status).toBe(404);
      expect(gone.body.detail).toMatch(/no snapshot `s2`.*`s1`/);
      await c.post('/autograd/record', {}).expect(200);
      const open = await c.post('/snapshots', { name: 's4' });
      expect(open.status).toBe(409);
      expect(open.body.code).toBe('scope_open');
      await c.post('/autograd/exit').expect(200);
      // 200,000 float32 take 800 kB: two of them are over the session's 1 MiB.
      await c.expr('a = nd.ones((200000,))');
      await c.post('/snapshots', { name: 's1' }).expect(201);
      const bytes = await c.post('/snapshots', { name: 's5' });
      expect(bytes.status).toBe(429);
      expect(bytes.body).toMatchObject({ limit: 'snapshot_bytes' });
    } finally {
      await small.close();
    }
  });
});
