/** Drawings of a tape (DOT, SVG, PNG) are built on the event loop, so their size is bounded (issue 15, finding 3). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_RENDER_NODES: '3' }); });
afterAll(async () => { await srv.close(); });

describe('GET /tapes/{tid} render limit', () => {
  it('a tape over GRADSERVE_MAX_RENDER_NODES is a 413 for DOT, SVG and PNG naming the limit; JSON still answers', async () => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.arange(4)');
    await c.post('/arrays/x/attach-grad', {}).expect(200);
    const r = await c.expr('y = ((x * 2 + 1) * 3 - 4).sum()', { record: true });
    const tape = r.outputs.y.tape as string;
    for (const format of ['dot', 'svg', 'png']) {
      const p = await c.get(`/tapes/${tape}?format=${format}`).expect(413);
      expect(p.headers['content-type']).toContain('application/problem+json');
      expect(p.body).toMatchObject({ limit: 'render_nodes', max: 3 });
      expect(p.body.detail).toContain('GRADSERVE_MAX_RENDER_NODES');
    }
    await c.get(`/tapes/${tape}`).expect(200);
  });

  it('a small tape still renders', async () => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.arange(4)');
    await c.post('/arrays/x/attach-grad', {}).expect(200);
    const r = await c.expr('y = (x * 2).sum()', { record: true });
    await c.get(`/tapes/${r.outputs.y.tape}?format=dot`).expect(200);
  });
});
