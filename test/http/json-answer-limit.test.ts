/**
 * Answers bound the data they write as JSON numbers (issue 15, finding 3): encoding millions of
 * numbers stalls every session, so over GRADSERVE_MAX_JSON_ELEMENTS the answer is a 413 naming
 * base64 and .npy, which stay open for the same array.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_JSON_ELEMENTS: '1000' }); });
afterAll(async () => { await srv.close(); });

describe('JSON answer size', () => {
  it('GET of an array over the JSON limit is a 413 naming base64; base64 and .npy still answer', async () => {
    const c = await Client.open(srv.url);
    await c.post('/ops', { ops: [{ op: 'ones', attrs: { shape: [40, 30] }, out: 'big' }, { op: 'ones', attrs: { shape: [10] }, out: 'small' }] }).expect(200);
    const r = await c.get('/arrays/big');
    expect(r.status).toBe(413);
    expect(r.body.limit).toBe('json_elements');
    expect(r.body.detail).toMatch(/base64/);
    const b = await c.get('/arrays/big?format=base64').expect(200);
    expect(Buffer.from(b.body.data, 'base64').length).toBe(1200 * 4);
    await c.get('/arrays/big').set('Accept', 'application/x-npy').expect(200);
    expect((await c.get('/arrays/small?format=flat').expect(200)).body.data).toHaveLength(10);
  });

  it('the limit counts every array an answer fetches, and a last expression', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { ops: [{ op: 'ones', attrs: { shape: [600] }, out: 'a' }, { op: 'ones', attrs: { shape: [600] }, out: 'b' }], fetch: true });
    expect(r.status).toBe(413);
    expect(r.body.limit).toBe('json_elements');
    expect((await c.post('/ops', { expr: 'nd.ones((2000,))' })).status).toBe(413);
    // the arrays were bound: they read within the limit one at a time
    expect((await c.post('/ops', { ops: [], fetch: ['a'], format: 'flat' }).expect(200)).body.outputs.a.data).toHaveLength(600);
  });

  it('base64 answers are bound by GRADSERVE_MAX_BASE64_BYTES across one answer; .npy carries the same array', async () => {
    const b64 = await startServer({ GRADSERVE_MAX_BASE64_BYTES: '4000' });
    try {
      const c = await Client.open(b64.url);
      await c.post('/ops', { expr: "big = nd.ones((1001,), dtype='float32')\nhalf = nd.ones((600,), dtype='float32')" }).expect(200);
      const r = await c.get('/arrays/big?format=base64');
      expect(r.status).toBe(413);
      expect(r.body.limit).toBe('base64_bytes');
      expect(r.body.detail).toMatch(/x-npy/);
      expect(Number((await c.get('/arrays/big').set('Accept', 'application/x-npy').expect(200)).headers['content-length'])).toBe(128 + 1001 * 4);
      expect((await c.get('/arrays/half?format=base64').expect(200)).body.data).toHaveLength(3200);
      // two arrays of one answer, and an expression's result, count together
      const two = await c.post('/ops', { ops: [], fetch: ['half', 'half'], format: 'base64' });
      expect(two.status).toBe(200);
      expect((await c.post('/ops', { ops: [], fetch: ['half', 'big'], format: 'base64' })).status).toBe(413);
      expect((await c.post('/ops', { expr: 'half + big[:600]', fetch: ['half'], format: 'base64' })).status).toBe(413);
      expect((await c.post('/ops', { expr: "nd.ones((1001,), dtype='float32')", format: 'base64' })).status).toBe(413);
    } finally {
      await b64.close();
    }
  });

  it('a .npy read larger than one chunk (8 MiB) arrives whole and in order, with its Content-Length', async () => {
    const c = await Client.open(srv.url);
    const n = 2 * 2 ** 20 + 7; // float64: 16 MiB + 56 bytes, three chunks
    await c.post('/ops', { expr: `big = nd.arange(${n}, dtype='float64')` }).expect(200);
    const r = await c.get('/arrays/big').set('Accept', 'application/x-npy').buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    const file = r.body as Buffer;
    expect(Number(r.headers['content-length'])).toBe(file.length);
    const headerLength = file.readUInt16LE(8);
    expect(file.subarray(10, 10 + headerLength).toString('latin1')).toContain(`'shape': (${n},)`);
    const values = new Float64Array(file.buffer.slice(file.byteOffset + 10 + headerLength, file.byteOffset + file.length));
    expect(values.length).toBe(n);
    for (const i of [0, 1, 2 ** 20 - 1, 2 ** 20, 2 ** 20 + 1, 2 ** 21 - 1, 2 ** 21, n - 1]) expect(values[i]).toBe(i);
  });
});
