/**
 * MXNet's fresh_grad flag (`x._fresh_grad`): backward sets it on each variable whose gradient it
 * wrote, a set_grad_state statement clears it, and attach_grad starts it at false. Optimizers use
 * it to tell a stale gradient from one the last backward produced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const fresh = async (c: Client, name: string) => (await c.get(`/arrays/${name}`).expect(200)).body.fresh_grad;

describe('fresh_grad', () => {
  it('is false after attach_grad, true for the variables backward reached, and cleared by set_grad_state', async () => {
    const c = await Client.open(srv.url);
    await c.post('/ops', { ops: [
      { op: 'ones', attrs: { shape: [2, 2] }, out: 'x' },
      { op: 'ones', attrs: { shape: [2, 2] }, out: 'y' },
      { op: 'attach_grad', args: ['x'] },
      { op: 'attach_grad', args: ['y'] },
    ] }).expect(200);
    expect(await fresh(c, 'x')).toBe(false);
    expect(await fresh(c, 'y')).toBe(false);
    await c.post('/ops', { ops: [
      { op: 'scope', kind: 'record', body: [{ op: 'add', args: ['x', 2], out: 'x2' }, { op: 'add', args: ['x2', 'y'], out: 'y2' }] },
      { op: 'backward', args: ['y2'] },
    ] }).expect(200);
    expect(await fresh(c, 'x')).toBe(true);
    expect(await fresh(c, 'y')).toBe(true);

    await c.post('/ops', { ops: [
      { op: 'set_grad_state', args: ['x'], attrs: { fresh: false } },
      { op: 'set_grad_state', args: ['y'], attrs: { fresh: false } },
    ] }).expect(200);
    expect(await fresh(c, 'x')).toBe(false);
    // a detached path writes no gradient for x: its flag stays clear, y's is set again
    await c.post('/ops', { ops: [
      { op: 'scope', kind: 'record', body: [
        { op: 'add', args: ['x', 2], out: 'x2' }, { op: 'detach', args: ['x2'], out: 'x3' }, { op: 'add', args: ['x3', 'y'], out: 'y2' }] },
      { op: 'backward', args: ['y2'] },
    ] }).expect(200);
    expect(await fresh(c, 'x')).toBe(false);
    expect(await fresh(c, 'y')).toBe(true);
    // attaching again starts a new gradient: not fresh
    await c.post('/ops', { ops: [{ op: 'attach_grad', args: ['y'] }] }).expect(200);
    expect(await fresh(c, 'y')).toBe(false);
  });

  it('arrays without a gradient have no flag; setting one is a 409 naming the array', async () => {
    const c = await Client.open(srv.url);
    await c.post('/ops', { ops: [{ op: 'ones', attrs: { shape: [2] }, out: 'z' }] }).expect(200);
    expect((await c.get('/arrays/z').expect(200)).body).not.toHaveProperty('fresh_grad');
    const r = await c.post('/ops', { ops: [{ op: 'set_grad_state', args: ['z'], attrs: { fresh: true } }] });
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('no_grad');
    expect(r.body.array).toBe('z');
    const bad = await c.post('/ops', { ops: [{ op: 'set_grad_state', args: ['z'] }] });
    expect(bad.status).toBe(400);
  });
});
