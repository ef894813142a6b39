/** The chapter's recorded graph (y = 2 x^T x), for the tests that draw tapes. */
import { Client } from './server.js';

export async function chapterTape(url: string): Promise<{ c: Client; tape: string }> {
  const c = await Client.open(url);
  await c.expr('x = nd.arange(4).reshape((4, 1))');
  await c.post('/arrays/x/attach-grad', {}).expect(200);
  const r = await c.expr('y = 2 * nd.dot(x.T, x)', { record: true });
  return { c, tape: r.outputs.y.tape };
}
