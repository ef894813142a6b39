/**
 * Whole-session safetensors files: GET /export and POST /import over a real listening server.
 * Files the server writes read back byte-exact; every malformed file is a 400 that leaves the
 * session as it was.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_ARRAY_ELEMENTS: '100000' }); });
afterAll(async () => { await srv.close(); });

async function exportOf(c: Client): Promise<Buffer> {
  const r = await c.get('/export').buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (d: Buffer) => chunks.push(d));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  }).expect(200);
  expect(r.headers['content-type']).toMatch(/^application\/octet-stream/);
  return r.body as Buffer;
}

function importInto(c: Client, file: Buffer, type = 'application/octet-stream') {
  return c.post('/import').set('Content-Type', type).send(file);
}

/** A file written by hand: `header` is serialised as given (or taken as raw text), then `data`. */
function file(header: unknown, data: Buffer | number[] = [], rawLength?: bigint): Buffer {
  const json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(rawLength ?? BigInt(json.length));
  return Buffer.concat([len, json, Buffer.isBuffer(data) ? data : Buffer.from(new Float32Array(data).buffer)]);
}

function headerOf(f: Buffer): Record<string, unknown> {
  const n = Number(f.readBigUInt64LE(0));
  return JSON.parse(f.subarray(8, 8 + n).toString('utf8'));
}

describe('GET /export', () => {
  it('writes every binding and gradient, sorted by name, with offsets that tile the data part', async () => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.arange(4).reshape((4, 1))');
    await c.post('/arrays/x/attach-grad', {}).expect(200);
    await c.expr('y = 2 * nd.dot(x.T, x)', { record: true });
    await c.post('/arrays/y/backward', {}).expect(200);
    await c.post('/arrays', { name: 'd', data: [1.5, -2], dtype: 'float64' }).expect(201);
    const f = await exportOf(c);
    const n = Number(f.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const h = headerOf(f);
    expect(Object.keys(h)).toEqual(['__metadata__', 'd', 'x', 'x.grad', 'y']);
    expect(h.d).toEqual({ dtype: 'F64', shape: [2], data_offsets: [0, 16] });
    expect(h.x).toEqual({ dtype: 'F32', shape: [4, 1], data_offsets: [16, 32] });
    expect(h['x.grad']).toEqual({ dtype: 'F32', shape: [4, 1], data_offsets: [32, 48] });
    expect(h.y).toEqual({ dtype: 'F32', shape: [1, 1], data_offsets: [48, 52] });
    expect(f.length).toBe(8 + n + 52);
    const data = f.subarray(8 + n);
    expect([...new Float32Array(data.buffer.slice(data.byteOffset + 32, data.byteOffset + 48))]).toEqual([0, 4, 8, 12]);
    expect(data.readDoubleLE(0)).toBe(1.5);
  });

  it('a file larger than one copy chunk (8 MiB) is whole and in order, with its Content-Length', async () => {
    const c = await Client.open(srv.url);
    const names = Array.from({ length: 12 }, (_, i) => `a${String(i).padStart(2, '0')}`);
    await c.expr(names.map((n, i) => `${n} = nd.arange(100000, dtype='float64') + ${i * 100000}`).join('\n'));
    const r = await c.get('/export').buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    const f = r.body as Buffer;
    expect(Number(r.headers['content-length'])).toBe(f.length);
    const n = Number(f.readBigUInt64LE(0));
    const data = new Float64Array(f.buffer.slice(f.byteOffset + 8 + n, f.byteOffset + f.length));
    expect(data.length).toBe(1_200_000);
    for (const i of [0, 99_999, 100_000, 1_048_575, 1_048_576, 1_199_999]) expect(data[i]).toBe(i);
  });

  it('an empty session is a file with no tensors', async () => {
    const c = await Client.open(srv.url);
    const f = await exportOf(c);
    expect(Object.keys(headerOf(f))).toEqual(['__metadata__']);
  });
});

describe('POST /import', () => {
  it('round-trips byte-exact: export, import into a fresh session, export again', async () => {
    const a = await Client.open(srv.url, { seed: 3 });
    await a.expr('w = nd.random.normal(shape=(3, 5)); b = nd.zeros(5); x = nd.arange(6).reshape((2, 3))');
    await a.post('/arrays/w/attach-grad', {}).expect(200);
    await a.post('/arrays/b/attach-grad', { grad_req: 'add' }).expect(200);
    await a.expr('l = (nd.dot(x, w) + b).sum()', { record: true });
    await a.post('/arrays/l/backward', {}).expect(200);
    const first = await exportOf(a);

    const b = await Client.open(srv.url);
    const r = await importInto(b, first, 'application/x-safetensors').expect(200);
    expect(r.body.metadata).toEqual({ producer: 'gradserve' });
    expect(r.body.arrays.map((d: { name: string }) => d.name)).toEqual(['b', 'l', 'w', 'x']);
    expect(r.body.arrays.find((d: { name: string }) => d.name === 'w')).toMatchObject({ shape: [3, 5], grad_req: 'write', recorded: false });
    const second = await exportOf(b);
    expect(second.equals(first)).toBe(true);
    // The imported gradient is a real gradient buffer: reading it and a backward through it work.
    expect((await b.get('/arrays/b/grad').expect(200)).body.data).toEqual([2, 2, 2, 2, 2]);
    expect((await b.get('/arrays/w/grad').expect(200)).body.data).toEqual((await a.get('/arrays/w/grad').expect(200)).body.data);
    await b.expr('m = (w * w).sum()', { record: true });
    await b.post('/arrays/m/backward', {}).expect(200);
    expect((await b.expr('(w.grad - 2 * w).norm().asscalar()')).result).toBe(0);
  });

  it('carries NaN, infinities, -0 and float64 values exactly', async () => {
    const a = await Client.open(srv.url);
    const special = ['NaN', 'Infinity', '-Infinity', 0.1, 3.4e38, 1e-45];
    await a.post('/arrays', { name: 's', data: special }).expect(201);
    // JSON cannot carry -0 (it prints as 0): send its bytes.
    await a.post('/arrays', { name: 'z', data_base64: Buffer.from(new Float32Array([-0]).buffer).toString('base64'), shape: [1] }).expect(201);
    await a.post('/arrays', { name: 'd', data: [Math.PI, 'NaN', 1e-310, -1.7976931348623157e308], dtype: 'float64' }).expect(201);
    const f = await exportOf(a);
    const b = await Client.open(srv.url);
    await importInto(b, f).expect(200);
    expect((await b.get('/arrays/s').expect(200)).body.data).toEqual(special);
    expect((await b.get('/arrays/z?format=base64').expect(200)).body.data).toBe(Buffer.from([0, 0, 0, 0x80]).toString('base64'));
    expect((await b.get('/arrays/d').expect(200)).body).toMatchObject({ dtype: 'float64', data: [Math.PI, 'NaN', 1e-310, -1.7976931348623157e308] });
    expect((await exportOf(b)).equals(f)).toBe(true);
  });

  it('reads files written by other tools: no metadata, any key order, unpadded header, zero-size tensors', async () => {
    const c = await Client.open(srv.url);
    const f = file({ z: { dtype: 'F32', shape: [0, 3], data_offsets: [8, 8] }, v: { shape: [2], data_offsets: [0, 8], dtype: 'F32' } }, [7, 8]);
    const r = await importInto(c, f).expect(200);
    expect(r.body.metadata).toEqual({});
    expect(r.body.arrays.map((d: { name: string }) => d.name)).toEqual(['z', 'v']);
    expect((await c.get('/arrays/v').expect(200)).body.data).toEqual([7, 8]);
    expect((await c.get('/arrays/z').expect(200)).body.shape).toEqual([0, 3]);
  });

  it('rebinds names already bound and leaves the others alone', async () => {
    const c = await Client.open(srv.url);
    await c.expr('keep = nd.ones(2); v = nd.zeros(3)');
    await importInto(c, file({ v: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, [5, 6])).expect(200);
    expect(await c.data('v')).toEqual([5, 6]);
    expect(await c.data('keep')).toEqual([1, 1]);
  });

  describe('refuses malformed files with 400 and leaves the session unchanged', () => {
    const v = (offsets: [number, number], shape = [2], dtype = 'F32') => ({ dtype, shape, data_offsets: offsets });
    const cases: [string, Buffer, RegExp][] = [
      ['shorter than the header length', Buffer.from([1, 2, 3]), /at least 8/],
      ['a header length past the end', file({ a: v([0, 8]) }, [1, 2], 10_000n), /header length is 10000/],
      ['a header length of 2^64 - 1', file({}, [], 0xffffffffffffffffn), /header length/],
      ['bad JSON', file('{"a": {"dtype": "F32",', []), /not valid JSON/],
      ['a header that is not an object', file([1, 2], []), /not a JSON object/],
      ['a header that is not UTF-8', file(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), []), /not valid UTF-8/],
      ['offsets past the end', file({ a: v([0, 16], [4]) }, [1, 2]), /ends at byte 16/],
      ['overlapping ranges', file({ a: v([0, 8]), b: v([4, 12]) }, [1, 2, 3]), /overlaps/],
      ['a gap between tensors', file({ a: v([0, 8]), b: v([12, 20]) }, [1, 2, 3, 4, 5]), /belong to no tensor/],
      ['trailing bytes no tensor owns', file({ a: v([0, 8]) }, [1, 2, 3]), /bytes 8 to 12/],
      ['a size that does not match the shape', file({ a: v([0, 8], [3]) }, [1, 2]), /needs 12 bytes/],
      ['begin after end', file({ a: v([8, 0]) }, [1, 2]), /begin is after end/],
      ['an unsupported dtype', file({ a: v([0, 8], [2], 'I16') }, [1, 2]), /dtype I16; gradserve holds F32, F64, I32, I64, U8, F16 only/],
      ['an unknown dtype', file({ a: v([0, 8], [2], 'F33') }, [1, 2]), /unknown dtype "F33"/],
      ['a negative dimension', file({ a: v([0, 8], [-2]) }, [1, 2]), /non-negative integers/],
      ['a fractional dimension', file({ a: v([0, 8], [1.5]) }, [1, 2]), /non-negative integers/],
      ['offsets that are not a pair', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, [1, 2]), /data_offsets/],
      ['an unknown field', file({ a: { ...v([0, 8]), strides: [1] } }, [1, 2]), /unknown field `strides`/],
      ['duplicate names', file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', [1, 2]), /names `a` twice/],
      ['a bad name', file({ '1a': v([0, 8]) }, [1, 2]), /tensor `1a`/],
      ['a dotted name that is not .grad', file({ 'a.b': v([0, 8]) }, [1, 2]), /tensor `a.b`/],
      ['a gradient of an integer array', file({ a: v([0, 8], [2], 'I32'), 'a.grad': v([8, 16], [2], 'I32') }, [1, 2, 3, 4]), /`a` is int32, which carries no gradient/],
      ['a gradient without its array', file({ 'a.grad': v([0, 8]) }, [1, 2]), /no tensor `a`/],
      ['a gradient of another shape', file({ a: v([0, 8]), 'a.grad': v([8, 12], [1]) }, [1, 2, 3]), /must have the dtype and shape/],
      ['metadata that is not strings', file({ __metadata__: { n: 1 } }, []), /__metadata__/],
      ['a tensor that is not an object', file({ a: 3 }, []), /not an object/],
    ];
    it.each(cases)('%s', async (_what, bad, detail) => {
      const c = await Client.open(srv.url);
      await c.expr('a = nd.arange(3); q = nd.ones((2, 2))');
      await c.post('/arrays/q/attach-grad', {}).expect(200);
      const before = await exportOf(c);
      const r = await importInto(c, bad).expect(400);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
      expect(r.body.code).toBe('invalid_request');
      expect(r.body.detail).toMatch(detail);
      expect((await exportOf(c)).equals(before)).toBe(true);
      expect((await c.get('').expect(200)).body.arrays).toBe(2);
    });

    it('a JSON body is refused', async () => {
      const c = await Client.open(srv.url);
      const r = await c.post('/import', { a: 1 }).expect(400);
      expect(r.body.detail).toMatch(/application\/octet-stream/);
    });

    it('a tensor above the array-size limit is refused before anything is bound', async () => {
      const c = await Client.open(srv.url);
      await c.expr('a = nd.arange(3)');
      const n = 100_001;
      const big = file({ a: v([0, 8]), b: v([8, 8 + 4 * n], [n]) }, Buffer.alloc(8 + 4 * n));
      const r = await importInto(c, big);
      expect(r.status).toBe(413);
      expect(await c.data('a')).toEqual([0, 1, 2]);
    });
  });
});

/** numpy's reading of the same bytes, when python3 has numpy (it is optional). */
describe('a file the server writes reads in Python', () => {
  it('with a plain-numpy safetensors reader', async (ctx) => {
    const c = await Client.open(srv.url);
    await c.expr('x = nd.arange(6).reshape((2, 3)) / 4');
    await c.post('/arrays/x/attach-grad', {}).expect(200);
    const dir = mkdtempSync(join(tmpdir(), 'gradserve-st-'));
    const path = join(dir, 's.safetensors');
    writeFileSync(path, await exportOf(c));
    const script = [
      'import json, struct, sys',
      'import numpy as np',
      'b = open(sys.argv[1], "rb").read()',
      'n = struct.unpack("<Q", b[:8])[0]',
      'h = json.loads(b[8:8 + n])',
      'e = h["x"]; s, t = e["data_offsets"]',
      'x = np.frombuffer(b[8 + n + s:8 + n + t], dtype="<f4").reshape(e["shape"])',
      'print(json.dumps(x.tolist()))',
    ].join('\n');
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.env.PYTHON ?? 'python3', ['-c', script, path]);
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('error', () => resolve({ code: -1, out }));
      p.on('close', (code) => resolve({ code, out }));
    });
    if (r.code !== 0) ctx.skip();
    expect(JSON.parse(r.out)).toEqual([[0, 0.25, 0.5], [0.75, 1, 1.25]]);
    expect(readFileSync(path).length).toBeGreaterThan(8);
  });
});
