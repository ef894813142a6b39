/**
 * Op attributes are parsed once per distinct text and the parse is reused (src/ops/dispatch.ts):
 * a training loop's repeated attrs must still mean exactly what each call says, a refused one
 * must be refused every time, and values JSON cannot tell apart (-0 and 0) must not share a parse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('parsed attributes, reused by their text', () => {
  it('each call of an op gets its own attrs, repeated or changed', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [-2, -0.5, 0.25, 0.75, 3] }).expect(201);
    const clip = (a_min: number, a_max: number, out: string) => ({ op: 'clip', args: ['x'], attrs: { a_min, a_max }, out });
    await c.post('/ops', { ops: [clip(0, 1, 'a'), clip(0, 1, 'b'), clip(-1, 0.5, 'c'), clip(0, 1, 'd')] }).expect(200);
    expect(await c.data('a')).toEqual([0, 0, 0.25, 0.75, 1]);
    expect(await c.data('b')).toEqual([0, 0, 0.25, 0.75, 1]);
    expect(await c.data('c')).toEqual([-1, -0.5, 0.25, 0.5, 0.5]);
    expect(await c.data('d')).toEqual([0, 0, 0.25, 0.75, 1]);
    // The same attrs from a later request, and with their keys in another order.
    await c.post('/ops', { ops: [{ op: 'clip', args: ['x'], attrs: { a_max: 0.5, a_min: -1 }, out: 'e' }] }).expect(200);
    expect(await c.data('e')).toEqual([-1, -0.5, 0.25, 0.5, 0.5]);
  });

  it('an attribute refused once is refused again, naming it, after the op ran with valid ones', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1, 2] }).expect(201);
    await c.post('/ops', { ops: [{ op: 'sum', args: ['x'], attrs: { axis: 0 }, out: 's' }] }).expect(200);
    for (let i = 0; i < 3; i++) {
      const r = await c.post('/ops', { ops: [{ op: 'sum', args: ['x'], attrs: { axis: 0, keepdim: true }, out: 's' }] });
      expect(r.status).toBe(422);
      expect(r.body.code).toBe('invalid_attribute');
      expect(r.body.detail).toContain('keepdim');
    }
  });

  it('-0 and 0 are different values of an attribute, though JSON writes both as 0', async () => {
    const c = await Client.open(srv.url);
    // Sent as text: JSON.stringify would turn -0 into 0 before it left.
    const run = (val: string, out: string) => request(srv.url).post(`/v1/sessions/${c.sid}/ops`)
      .set('Authorization', `Bearer ${c.token}`).set('Content-Type', 'application/json')
      .send(`{"ops":[{"op":"full","attrs":{"shape":[1],"val":${val}},"out":"z"},{"op":"reciprocal","args":["z"],"out":"r"},{"op":"greater","args":["r",0],"out":"${out}"}]}`)
      .expect(200);
    await run('0', 'pos');
    await run('-0', 'neg');
    await run('0', 'pos2');
    expect(await c.data('pos')).toEqual([1]);
    expect(await c.data('neg')).toEqual([0]);
    expect(await c.data('pos2')).toEqual([1]);
  });
});
