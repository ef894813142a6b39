/**
 * GET /v1/ops over a real listening server: each op says the highest order of derivative its
 * generated tests check (test/ops/gradcheck.test.ts checks each op to exactly that order).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

interface OpEntry { name: string; differentiable: boolean; derivative_order: number }

describe('GET /v1/ops: derivative_order', () => {
  it('answers the order for known ops, at least 2 for every differentiable op, 0 for the rest', async () => {
    const { ops } = (await request(srv.url).get('/v1/ops').expect(200)).body as { ops: OpEntry[] };
    const order = Object.fromEntries(ops.map((o) => [o.name, o.derivative_order]));
    // Nonlinear rules to third order; gradients that do not depend on the inputs to second.
    expect(order).toMatchObject({ exp: 3, tanh: 3, softmax: 3, multiply: 3, dot: 3, BatchNorm: 3, add: 2, reshape: 2, sum: 2, transpose: 2, greater: 0, argmax: 0 });
    expect(ops.filter((o) => o.differentiable && o.derivative_order < 2).map((o) => o.name)).toEqual([]);
    expect(ops.filter((o) => !o.differentiable && o.derivative_order !== 0).map((o) => o.name)).toEqual([]);
  });
});
