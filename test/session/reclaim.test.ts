/**
 * Memory that dies inside a request is given back during the request: a program that rebinds a
 * large array many times (`x = x + 1`) needs two copies at a time, not one per statement, as in
 * MXNet where each dead NDArray is freed at once. Against a real server with a small session quota.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

const QUOTA = 16 * 2 ** 20;
let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ GRADSERVE_MAX_SESSION_BYTES: String(QUOTA) });
});
afterAll(async () => { await srv.close(); });

// 1 MiB of float32: forty rebinds would need 40 MiB if nothing died before the request ended.
const N = 2 ** 18;

describe('reclaiming memory between statements', () => {
  it('forty rebinds of a 1 MiB array run under a 16 MiB quota, and the values are right', async () => {
    const c = await Client.open(srv.url);
    const expr = [`x = zeros((${N},))`, ...Array.from({ length: 40 }, () => 'x = x + 1'), 'm = x.mean()'].join('\n');
    const body = await c.expr(expr, { fetch: ['m'] });
    expect(body.outputs.m.data).toEqual([40]);
    const info = await c.get('').expect(200);
    expect(info.body.bytes).toBeLessThanOrEqual(2 * N * 4);
    // The peak counts what the request held at once: one copy, as each `x + 1` writes over the x
    // it replaces (test/session/inplace.test.ts), and never forty.
    expect(info.body.peak_bytes).toBeGreaterThanOrEqual(N * 4);
    expect(info.body.peak_bytes).toBeLessThanOrEqual(2 * N * 4 + 64);
  });

  it('temporaries of an expression survive a reclaim in the middle of it', async () => {
    const c = await Client.open(srv.url);
    // Each line's temporaries (%n) are live while later lines of the same statement chain run.
    const lines = [`x = ones((${N},))`];
    for (let i = 0; i < 30; i++) lines.push('x = (x * 2 + x) / 3 + 0.5');
    lines.push('s = x.sum()');
    const body = await c.expr(lines.join('\n'), { fetch: ['s'] });
    expect(body.outputs.s.data[0]).toBeCloseTo(N * (1 + 30 * 0.5), 0);
  });

  it('a recorded chain keeps what backward needs while dead values go', async () => {
    const c = await Client.open(srv.url);
    // 30 recorded multiplies keep 30 saved inputs (7.5 MiB); the rest of each step dies.
    const n = 2 ** 16;
    const lines = [`x = nd.ones((${n},))`, 'x.attach_grad()', 'with autograd.record():', '    y = x'];
    for (let i = 0; i < 30; i++) lines.push('    t = y * 1.01 + 0', '    y = t - 0');
    lines.push('y.backward()');
    await c.expr(lines.join('\n'));
    const g = (await c.post('/ops', { expr: 'g = x.grad.mean()', fetch: ['g'] }).expect(200)).body.outputs.g.data[0];
    expect(g).toBeCloseTo(1.01 ** 30, 4);
  });

  it('a program that truly needs more than the quota is still refused, naming the limit', async () => {
    const c = await Client.open(srv.url);
    const lines = Array.from({ length: 20 }, (_, i) => `a${i} = ones((${N},))`);
    const r = await c.post('/ops', { expr: lines.join('\n') });
    expect(r.status).toBe(429);
    expect(r.body.limit).toBe('session_bytes');
  });
});
