/**
 * A program stops at the statement that fails, whatever the failure (issue 15, finding 5): a 4xx,
 * a server fault, or a failure of a kernel the statement queued (the native engine runs a
 * request's kernels as one batch, so without draining a failure surfaced after the last statement).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/engine/backend.js';
import { referenceBackend } from '../../src/engine/reference.js';
import { Client, startServer, type TestServer } from '../helpers/server.js';

/** The reference backend with a queue like the native one's: a cast "fails" when the queue runs. */
function queuingBackend(): Backend {
  let pending: Error | null = null;
  const runQueue = (): void => {
    const e = pending;
    pending = null;
    if (e) throw e;
  };
  return {
    ...referenceBackend,
    name: 'queuing-test',
    cast(x, out) {
      referenceBackend.cast(x, out);
      pending ??= new Error('kernel failed: cast');
    },
    drain: runQueue,
    withStream<T>(_stream: number, fn: () => T): T {
      const v = fn();
      runQueue();
      return v;
    },
  } as Backend;
}

let srv: TestServer;
beforeAll(async () => { srv = await startServer({}, queuingBackend()); });
afterAll(async () => { await srv.close(); });

describe('a failing statement stops the program', () => {
  it('a kernel failure is the statement\'s that queued it; later statements neither run nor bind', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1, 2, 3] }).expect(201);
    const r = await c.post('/ops', { ops: [
      { op: 'exp', args: ['x'], out: 'a' },
      { op: 'astype', args: ['x'], attrs: { dtype: 'float64' }, out: 'b' },
      { op: 'exp', args: ['x'], out: 'c' },
    ] });
    expect(r.status).toBe(500);
    expect(r.headers['content-type']).toContain('application/problem+json');
    expect(r.body).toMatchObject({ statement: '1', statement_index: 1, statement_path: [1], op: 'astype', changed: ['a'] });
    await c.get('/arrays/a').expect(200);
    await c.get('/arrays/b').expect(404);
    await c.get('/arrays/c').expect(404);
  });

  it('inside a scope: the index is the top-level statement and the path goes into the body', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1, 2, 3] }).expect(201);
    const r = await c.post('/ops', { ops: [
      { op: 'exp', args: ['x'], out: 'a' },
      { op: 'scope', kind: 'record', body: [
        { op: 'exp', args: ['x'], out: 'd' },
        { op: 'astype', args: ['x'], attrs: { dtype: 'float64' }, out: 'b' },
      ] },
      { op: 'exp', args: ['x'], out: 'c' },
    ] });
    expect(r.status).toBe(500);
    expect(r.body).toMatchObject({ statement: '1.body.1', statement_index: 1, statement_path: [1, 'body', 1], changed: ['a', 'd'] });
    await c.get('/arrays/c').expect(404);
  });

  it('a client error names the statement the same way', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1, 2, 3] }).expect(201);
    const r = await c.post('/ops', { ops: [
      { op: 'exp', args: ['x'], out: 'a' },
      { op: 'exp', args: ['nope'], out: 'b' },
      { op: 'exp', args: ['x'], out: 'c' },
    ] });
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ statement: '1', statement_index: 1, statement_path: [1], changed: ['a'] });
    await c.get('/arrays/c').expect(404);
  });
});
