/**
 * Programs with binary parts: POST /ops as multipart/form-data, a `program` part holding the JSON
 * body and parts holding raw array bytes that `frombuffer` names. Sent by two real client
 * libraries (superagent's form-data and Node's own fetch with FormData), as notebooks would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import request from 'supertest';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_BODY_BYTES: String(1 << 20) }); });
afterAll(async () => { await srv.close(); });

const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const f64 = (xs: number[]) => Buffer.from(new Float64Array(xs).buffer);

function form(c: Client, program: unknown, parts: Record<string, Buffer>) {
  let r = c.post('/ops').field('program', JSON.stringify(program), { contentType: 'application/json' } as never);
  for (const [name, bytes] of Object.entries(parts)) r = r.attach(name, bytes, { filename: `${name}.bin`, contentType: 'application/octet-stream' });
  return r;
}

describe('multipart programs', () => {
  it('frombuffer reads named parts as little-endian bytes, float32 and float64, and the program runs on them', async () => {
    const c = await Client.open(srv.url);
    const r = await form(c, {
      ops: [
        { op: 'frombuffer', attrs: { part: 'x', shape: [2, 3] }, out: 'x' },
        { op: 'frombuffer', attrs: { part: 'w', shape: [3], dtype: 'float64' }, out: 'w' },
        { op: 'sum', args: ['x'], attrs: { axis: 0 }, out: 's' },
      ],
      fetch: ['x', 'w', 's'],
    }, { x: f32([1, 2, 3, 4, 5, 6.5]), w: f64([0.1, -2, 1e300]) }).expect(200);
    expect(r.body.outputs.x.data).toEqual([[1, 2, 3], [4, 5, 6.5]]);
    expect(r.body.outputs.w.dtype).toBe('float64');
    expect(r.body.outputs.w.data).toEqual([0.1, -2, 1e300]);
    expect(r.body.outputs.s.data).toEqual([5, 7, 9.5]);
  });

  it('works from fetch with FormData and Blobs, and the arrays stay in the session', async () => {
    const c = await Client.open(srv.url);
    const fd = new FormData();
    fd.append('program', new Blob([JSON.stringify({ ops: [{ op: 'frombuffer', attrs: { part: 'img', shape: [4] }, out: 'img' }] })], { type: 'application/json' }));
    fd.append('img', new Blob([f32([0.5, 1.5, 2.5, 3.5])]), 'img.bin');
    const res = await fetch(`${srv.url}/v1/sessions/${c.sid}/ops`, { method: 'POST', body: fd, headers: { Authorization: `Bearer ${c.token}` } });
    expect(res.status).toBe(200);
    expect((await c.get('/arrays/img?format=flat').expect(200)).body.data).toEqual([0.5, 1.5, 2.5, 3.5]);
  });

  it('a part of the wrong size, a missing part, or both data and part are 422s naming the attribute', async () => {
    const c = await Client.open(srv.url);
    const short = await form(c, { ops: [{ op: 'frombuffer', attrs: { part: 'x', shape: [3] }, out: 'x' }] }, { x: f32([1, 2]) });
    expect(short.status).toBe(422);
    expect(short.body.code).toBe('shape_mismatch');
    expect(short.body.detail).toMatch(/part `x` holds 8 bytes but shape \[3\] of float32 needs 12/);
    const missing = await form(c, { ops: [{ op: 'frombuffer', attrs: { part: 'y', shape: [2] }, out: 'y' }] }, { x: f32([1, 2]) });
    expect(missing.status).toBe(422);
    expect(missing.body.attribute).toBe('part');
    expect(missing.body.detail).toMatch(/no part named `y`.*parts sent: `x`/);
    const both = await form(c, { ops: [{ op: 'frombuffer', attrs: { part: 'x', data: 'AACAPw==', shape: [1] }, out: 'z' }] }, { x: f32([1]) });
    expect(both.status).toBe(422);
    expect(both.body.detail).toMatch(/exactly one of `data`.*and `part`/);
    // JSON programs name no parts
    const json = await c.post('/ops', { ops: [{ op: 'frombuffer', attrs: { part: 'x', shape: [1] }, out: 'x' }] });
    expect(json.status).toBe(422);
    expect(json.body.detail).toMatch(/parts sent: none/);
  });

  it('a form without a program part, with two parts of one name, or malformed, is a 400', async () => {
    const c = await Client.open(srv.url);
    const none = await c.post('/ops').attach('x', f32([1]), 'x.bin');
    expect(none.status).toBe(400);
    expect(none.body.attribute).toBe('program');
    const twice = await form(c, { ops: [] }, { x: f32([1]) }).attach('x', f32([2]), 'x2.bin');
    expect(twice.status).toBe(400);
    expect(twice.body.detail).toMatch(/two parts named `x`/);
    const bad = await c.post('/ops').set('Content-Type', 'multipart/form-data').send('garbage');
    expect(bad.status).toBe(400);
    const badJson = await c.post('/ops').field('program', '{"ops": [', { contentType: 'application/json' } as never);
    expect(badJson.status).toBe(400);
    // the session is intact
    expect((await c.post('/ops', { expr: 'nd.ones((2,)).sum()' }).expect(200)).body.result.data).toEqual([2]);
  });

  it('bodies over GRADSERVE_MAX_BODY_BYTES are 413, and routes other than POST /ops refuse forms with 415', async () => {
    const c = await Client.open(srv.url);
    const big = await form(c, { ops: [] }, { x: Buffer.alloc(2 << 20) });
    expect(big.status).toBe(413);
    expect(big.body.limit).toBe('body_bytes');
    const elsewhere = await request(srv.url).post('/v1/sessions').attach('x', f32([1]), 'x.bin');
    expect(elsewhere.status).toBe(415);
    expect(elsewhere.body.detail).toMatch(/takes application\/json/);
    await c.post('/ops', { ops: [] }).expect(200);
  });
});

describe('large bodies are read into pooled buffers', () => {
  const N = 40000; // 160 KB of float32: past the 64 KiB below which node's own pool serves
  const values = (seed: number) => Array.from({ length: N }, (_, i) => seed * 1e5 + i);
  const upload = (c: Client, name: string, seed: number) =>
    form(c, { ops: [{ op: 'frombuffer', attrs: { part: 'x', shape: [N] }, out: name }] }, { x: f32(values(seed)) });
  const metric = async (name: string) => Number((await request(srv.url).get('/metrics').expect(200)).text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
  const holds = async (c: Client, name: string, seed: number) => {
    const got = (await c.get(`/arrays/${name}?format=flat`).expect(200)).body.data as number[];
    expect(got.length).toBe(N);
    const want = values(seed);
    const wrong = got.findIndex((v, i) => v !== want[i]);
    expect(wrong, `${name}[${wrong}] = ${got[wrong]}, not ${want[wrong]}`).toBe(-1);
  };
  /** A program that keeps c's queue busy for a while (products of 1024 x 1024 matrices). */
  const busy = (c: Client) => c.post('/ops', { expr: ['m = nd.ones((1024, 1024)) / 1024', ...Array.from({ length: 30 }, () => 'm = nd.dot(m, m)')].join('\n') });

  it('reuses a buffer once its request is answered, never while the request waits in its session', async () => {
    const a = await Client.open(srv.url), b = await Client.open(srv.url);
    const reused = await metric('gradserve_body_buffer_reuses_total');
    const long = busy(a).then((r) => r);
    await new Promise((r) => setTimeout(r, 30));
    // a's upload waits behind the products while b's uploads come and go, each reading its body
    // into a buffer from the pool.
    const waiting = upload(a, 'xa', 1).then((r) => r);
    for (let i = 0; i < 4; i++) await upload(b, `xb${i}`, 10 + i).expect(200);
    expect((await long).status).toBe(200);
    expect((await waiting).status).toBe(200);
    await holds(a, 'xa', 1);
    for (let i = 0; i < 4; i++) await holds(b, `xb${i}`, 10 + i);
    expect(await metric('gradserve_body_buffer_reuses_total')).toBeGreaterThanOrEqual(reused + 3);
    expect(await metric('gradserve_body_buffer_cached_bytes')).toBeGreaterThan(0);
  }, 60_000);

  it('keeps the body of a request whose client left while it waited, until it has run', async () => {
    const a = await Client.open(srv.url), b = await Client.open(srv.url);
    const long = busy(a).then((r) => r);
    await new Promise((r) => setTimeout(r, 30));
    // Sent by hand, so that its connection can be dropped once the body is on its way.
    const program = JSON.stringify({ ops: [{ op: 'frombuffer', attrs: { part: 'x', shape: [N] }, out: 'left' }] });
    const boundary = 'gradserve-test-boundary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="program"\r\nContent-Type: application/json\r\n\r\n${program}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="x"; filename="x"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      f32(values(2)), Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const { hostname, port } = new URL(srv.url);
    const req = http.request({ hostname, port, method: 'POST', path: `/v1/sessions/${a.sid}/ops`, headers: {
      Authorization: `Bearer ${a.token}`, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': body.length,
    } });
    req.on('error', () => {});
    req.end(body);
    await new Promise((r) => setTimeout(r, 100));
    req.destroy();
    for (let i = 0; i < 4; i++) await upload(b, `yb${i}`, 20 + i).expect(200);
    expect((await long).status).toBe(200);
    // The session runs the abandoned request after the products, on its own bytes.
    await a.post('/ops', { ops: [] }).expect(200);
    await holds(a, 'left', 2);
    for (let i = 0; i < 4; i++) await holds(b, `yb${i}`, 20 + i);
  }, 60_000);
});
