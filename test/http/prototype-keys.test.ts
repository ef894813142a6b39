/**
 * Client strings that are also names of Object.prototype's members (`__proto__`, `constructor`,
 * `toString`) are ordinary strings everywhere: as array names in answers and files, as dtypes of a
 * file, and as words of an expression (issue 15, finding 6).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

/** A safetensors file of one 2-element tensor with the given dtype string. */
function fileWithDtype(dtype: string): Buffer {
  const json = Buffer.from(JSON.stringify({ x: { dtype, shape: [2], data_offsets: [0, 8] } }), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(8)]);
}

describe('keys named like Object.prototype members', () => {
  it('an array named __proto__ is listed, answered, exported and imported like any other', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: '__proto__', data: [1, 2] }).expect(201);
    const r = await c.expr('constructor = __proto__ * 2', { fetch: true });
    expect(Object.keys(r.outputs)).toEqual(['constructor']);
    expect(r.outputs.constructor.data).toEqual([2, 4]);
    const listed = (await c.get('/arrays').expect(200)).body.arrays.map((a: { name: string }) => a.name).sort();
    expect(listed).toEqual(['__proto__', 'constructor']);
    const fetched = await c.post('/ops', { ops: [], fetch: ['__proto__'] }).expect(200);
    expect(Object.prototype.hasOwnProperty.call(fetched.body.outputs, '__proto__')).toBe(true);

    const exported = await c.get('/export').buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    const d = await Client.open(srv.url);
    const imported = await d.post('/import').set('Content-Type', 'application/octet-stream').send(exported.body as Buffer).expect(200);
    expect(imported.body.arrays.map((a: { name: string }) => a.name).sort()).toEqual(['__proto__', 'constructor']);
    expect(await d.data('__proto__')).toEqual([1, 2]);
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])('a safetensors dtype %s is a 400 naming it', async (dtype) => {
    const c = await Client.open(srv.url);
    const r = await c.post('/import').set('Content-Type', 'application/octet-stream').send(fileWithDtype(dtype)).expect(400);
    expect(r.body.detail).toContain(`unknown dtype "${dtype}"`);
  });

  it.each(['x.constructor', 'x.toString', 'constructor(x)', 'x.__proto__'])('the expression %s answers a 4xx in words, never source text', async (expr) => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [1] }).expect(201);
    const r = await c.post('/ops', { expr });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body.detail).not.toMatch(/native code|function |=>/);
  });

  it('keywords are still keywords', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: 'y = while' }).expect(400);
    expect(r.body.detail).toContain("'while' starts a statement");
    const l = await c.post('/ops', { expr: 'constructor = 1\nwhile constructor < 3: constructor += 1\nconstructor' }).expect(200);
    expect(l.body.result).toBe(3);
  });
});
