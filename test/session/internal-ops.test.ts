/** The table's internal ops (adjoints used by gradient rules) are not callable by clients (issue 15, finding 11). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allOps } from '../../src/ops/index.js';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('internal ops', () => {
  const internal = allOps().filter((d) => d.internal).map((d) => d.name);

  it('exist (im2col, col2im, getitem\'s adjoint)', () => {
    expect(internal).toEqual(expect.arrayContaining(['_im2col', '_col2im', '_getitem_backward']));
  });

  it.each(internal)('%s is refused with unknown_op, whatever its attributes', async (op) => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [[[[1, 2], [3, 4]]]] }).expect(201);
    const r = await c.post('/ops', { ops: [{ op, args: ['x'], attrs: { kernel: [-1, 9], stride: [0], shape: [1] }, out: 'y' }] });
    expect(r.status).toBeLessThan(500);
    expect(r.body.code).toBe('unknown_op');
    expect(r.body.detail).toContain('internal');
  });

  it('their gradient rules still run them: a convolution differentiates twice', async () => {
    const c = await Client.open(srv.url, { default_dtype: 'float64' });
    await c.post('/arrays', { name: 'x', data: [[[[1, 2, 0], [3, 4, 1], [0, 1, 2]]]] }).expect(201);
    await c.post('/arrays', { name: 'w', data: [[[[1, -1], [0.5, 2]]]] }).expect(201);
    await c.post('/arrays/x/attach-grad').expect(200);
    await c.expr('y = (nd.Convolution(x, w, kernel=(2, 2), num_filter=1, no_bias=True) ** 2).sum()', { record: true });
    const g = await c.post('/grad', { heads: 'y', variables: 'x', create_graph: true, out: ['gx'] }).expect(200);
    expect(g.body.grads.x.shape).toEqual([1, 1, 3, 3]);
    await c.expr('z = gx.sum()', { record: true });
    await c.post('/backward', { heads: 'z' }).expect(200);
    const second = ((await c.data('x/grad')) as number[][][][]).flat(3);
    expect(second).toHaveLength(9);
    expect(second.every(Number.isFinite) && second.some((v) => v !== 0)).toBe(true);
  });
});
