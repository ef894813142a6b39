/** Sessions and arrays over a real listening server, with their error paths. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_BODY_BYTES: String(1 << 20), GRADSERVE_MAX_ARRAY_ELEMENTS: '100000' }); });
afterAll(async () => { await srv.close(); });

function npy(values: number[], shape: number[], descr = '<f4'): Buffer {
  const size = descr.endsWith('8') ? 8 : descr.endsWith('4') ? 4 : 1;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.alloc(values.length * size);
  values.forEach((v, i) => (size === 8 ? data.writeDoubleLE(v, i * 8) : size === 4 ? data.writeFloatLE(v, i * 4) : data.writeUInt8(v, i)));
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

describe('sessions', () => {
  it('creates, describes and deletes a session; its memory is released', async () => {
    const r = await request(srv.url).post('/v1/sessions').send({ seed: 9, ttl_seconds: 60, default_dtype: 'float64' }).expect(201);
    expect(r.body).toMatchObject({ seed: 9, ttl_seconds: 60, default_dtype: 'float64' });
    expect(typeof r.body.token).toBe('string');
    const c = new Client(srv.url, r.body.id, r.body.token);
    await c.expr('a = nd.ones((100, 10))');
    const info = (await c.get('').expect(200)).body;
    expect(info).toMatchObject({ id: r.body.id, arrays: 1, bytes: 8000, is_recording: false, is_training: false });
    expect(Date.parse(info.expires_at)).toBeGreaterThan(Date.now());
    await c.del().expect(204);
    expect((await c.get('').expect(404)).body.code).toBe('not_found');
  });

  it('accepts an empty body with or without a JSON content type', async () => {
    await request(srv.url).post('/v1/sessions').expect(201);
    await request(srv.url).post('/v1/sessions').set('Content-Type', 'application/json').send('').expect(201);
    await request(srv.url).post('/v1/sessions').send({}).expect(201);
  });

  it('401 without or with a wrong token, 404 for an unknown session', async () => {
    const c = await Client.open(srv.url);
    const noToken = await request(srv.url).get(`/v1/sessions/${c.sid}`).expect(401);
    expect(noToken.body.code).toBe('unauthorized');
    expect(noToken.headers['content-type']).toMatch(/problem\+json/);
    await request(srv.url).get(`/v1/sessions/${c.sid}`).set('Authorization', 'Bearer wrong').expect(401);
    await request(srv.url).get('/v1/sessions/00000000-0000-0000-0000-000000000000').set('Authorization', `Bearer ${c.token}`).expect(404);
  });

  it('rejects bad session options with 400 naming the field', async () => {
    const r = await request(srv.url).post('/v1/sessions').send({ default_dtype: 'int8' }).expect(400);
    expect(r.body.detail).toMatch(/default_dtype/);
    await request(srv.url).post('/v1/sessions').send({ surprise: 1 }).expect(400);
    await request(srv.url).post('/v1/sessions').set('Content-Type', 'application/json').send('{"seed": ').expect(400);
  });
});

describe('arrays', () => {
  it('creates from nested lists, flat lists with a shape, base64 and .npy; reads every format back', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'n', data: [[1, 2, 3], [4, 5, 6]] }).expect(201);
    await c.post('/arrays', { name: 'f', data: [1, 2, 3, 4, 5, 6], shape: [2, 3] }).expect(201);
    const b64 = Buffer.from(new Float64Array([1, 2, 3, 4, 5, 6]).buffer).toString('base64');
    await c.post('/arrays', { name: 'b', data_base64: b64, shape: [2, 3], dtype: 'float64' }).expect(201);
    const up = await c.post('/arrays?name=p').set('Content-Type', 'application/x-npy').send(npy([1, 2, 3, 4, 5, 6], [2, 3])).expect(201);
    expect(up.body).toMatchObject({ name: 'p', shape: [2, 3], dtype: 'float32' });
    for (const name of ['n', 'f', 'b', 'p']) {
      expect(await c.data(name)).toEqual([[1, 2, 3], [4, 5, 6]]);
      expect((await c.get(`/arrays/${name}?format=flat`)).body.data).toEqual([1, 2, 3, 4, 5, 6]);
    }
    const rb = (await c.get('/arrays/b?format=base64').expect(200)).body;
    expect(rb.data).toBe(b64);
    const rn = await c.get('/arrays/p').set('Accept', 'application/x-npy').buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(rn.headers['content-type']).toMatch(/application\/x-npy/);
    expect((rn.body as Buffer).equals(npy([1, 2, 3, 4, 5, 6], [2, 3]))).toBe(true);
    const uint8 = await c.post('/arrays?name=u').set('Content-Type', 'application/x-npy').send(npy([0, 7, 255], [3], '|u1')).expect(201);
    // A dtype gradserve holds is kept; ?dtype= converts.
    expect(uint8.body.dtype).toBe('uint8');
    expect(await c.data('u')).toEqual([0, 7, 255]);
    const asFloat = await c.post('/arrays?name=uf&dtype=float32').set('Content-Type', 'application/x-npy').send(npy([0, 7, 255], [3], '|u1')).expect(201);
    expect(asFloat.body.dtype).toBe('float32');
  });

  it('writes float32 as the shortest decimal that reads back (0.1, not 0.10000000149011612)', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: [0.1, 1 / 3, 1e-8] }).expect(201);
    expect(await c.data('x')).toEqual([0.1, 0.33333334, 1e-8]);
  });

  it('NaN and infinities travel as strings both ways, never as null', async () => {
    const c = await Client.open(srv.url);
    await c.post('/arrays', { name: 'x', data: ['NaN', 'Infinity', '-Infinity', 1] }).expect(201);
    expect(await c.data('x')).toEqual(['NaN', 'Infinity', '-Infinity', 1]);
    const r = await c.expr('y = nd.log(nd.array([0, -1, 1]))', { fetch: ['y'] });
    expect(r.outputs.y.data).toEqual(['-Infinity', 'NaN', 0]);
    expect((await c.expr('nd.log(nd.array([0])).asscalar()')).result).toBe('-Infinity');
    expect((await c.post('/arrays', { name: 'z', data: [null] }).expect(400)).body.code).toBe('invalid_request');
  });

  it('PUT rebinds (200) or binds (201); DELETE unbinds (204, then 404); the list shows names', async () => {
    const c = await Client.open(srv.url);
    expect((await c.put('/arrays/a', { data: [1, 2] })).status).toBe(201);
    expect((await c.put('/arrays/a', { data: [[1, 2], [3, 4]] })).status).toBe(200);
    expect(await c.data('a')).toEqual([[1, 2], [3, 4]]);
    const list = (await c.get('/arrays').expect(200)).body.arrays;
    expect(list).toEqual([{ name: 'a', shape: [2, 2], dtype: 'float32', grad_req: null, recorded: false }]);
    await c.del('/arrays/a').expect(204);
    expect((await c.del('/arrays/a').expect(404)).body.code).toBe('not_found');
    expect((await c.get('/arrays/a').expect(404)).body.detail).toMatch(/`a`/);
  });

  it('rebinding or deleting a name frees the old buffer unless another name holds it', async () => {
    const c = await Client.open(srv.url);
    const bytes = async () => (await c.get('').expect(200)).body.bytes;
    await c.expr('a = nd.ones((1000,))');
    expect(await bytes()).toBe(4000);
    await c.expr('a = nd.ones((10,))');
    expect(await bytes()).toBe(40);
    await c.expr('b = a');
    await c.del('/arrays/a').expect(204);
    expect(await bytes()).toBe(40);
    await c.del('/arrays/b').expect(204);
    expect(await bytes()).toBe(0);
    await c.expr('x = nd.arange(12); y = x.reshape((3, 4))');
    expect(await bytes()).toBe(48);
  });

  it('`del` (and the JSON delete statement) unbinds names in a program', async () => {
    const c = await Client.open(srv.url);
    await c.expr('a = nd.ones((10,)); b = nd.ones((10,)); k = a');
    await c.expr('del a, b');
    expect((await c.get('/arrays').expect(200)).body.arrays.map((x: { name: string }) => x.name)).toEqual(['k']);
    await c.post('/ops', { ops: [{ op: 'delete', args: ['k'] }] }).expect(200);
    expect((await c.get('').expect(200)).body.bytes).toBe(0);
    expect((await c.post('/ops', { expr: 'del k' }).expect(404)).body.code).toBe('not_found');
  });

  it('a seed makes random streams reproducible; random/seed restarts the stream', async () => {
    const a = await Client.open(srv.url, { seed: 11 });
    const b = await Client.open(srv.url, { seed: 11 });
    const draw = async (c: Client) => (await c.expr('nd.random.uniform(shape=(3,))')).result.data;
    const first = await draw(a);
    expect(await draw(b)).toEqual(first);
    expect(await draw(a)).not.toEqual(first);
    await a.post('/random/seed', { seed: 11 }).expect(200);
    expect(await draw(a)).toEqual(first);
    expect((await a.post('/random/seed', { seed: -1 }).expect(400)).body.code).toBe('invalid_request');
  });

  it('bad input: shapes, unknown ops and attributes, dtypes, sizes', async () => {
    const c = await Client.open(srv.url);
    const cases: [unknown, number, string, RegExp][] = [
      [{ expr: 'nd.ones((2, 3)) + nd.ones((4,))' }, 422, 'shape_mismatch', /broadcast/],
      [{ expr: 'nd.dot(nd.ones((2, 3)), nd.ones((2, 3)))' }, 422, 'shape_mismatch', /`lhs` of `dot`.*`rhs` of `dot`/],
      [{ expr: 'nd.frob(1)' }, 422, 'unknown_op', /frob/],
      [{ expr: 'nd.ones((2, 3)).reshape((4, 2))' }, 422, 'shape_mismatch', /reshape/],
      [{ expr: 'nd.ones((2,)).sum(axis=3)' }, 422, 'invalid_attribute', /axis/],
      [{ ops: [{ op: 'sum', args: [[1, 2]], attrs: { keepdim: true } }] }, 422, 'invalid_attribute', /keepdim/],
      [{ expr: 'nd.ones((2,), dtype="float64") + nd.ones((2,))' }, 422, 'dtype_mismatch', /astype/],
      [{ expr: 'x = (1 +' }, 400, 'invalid_expression', /line 1/],
      [{ ops: [{ op: 'ones', attrs: { shape: [1000, 1000] } }] }, 413, 'array_too_large', /100000/],
      [{ expr: 'nd.ones((2,)) + missing' }, 404, 'not_found', /missing/],
      [{ ops: 'nope' }, 400, 'invalid_request', /ops/],
      [{}, 400, 'invalid_request', /exactly one/],
    ];
    for (const [body, status, code, detail] of cases) {
      const r = await c.post('/ops', body);
      expect({ body, status: r.status, code: r.body.code }).toEqual({ body, status, code });
      expect(r.body.detail).toMatch(detail);
      expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    // The session is still usable.
    expect((await c.expr('nd.ones((2,)).sum().asscalar()')).result).toBe(2);
  });

  it('413 for a body over the limit, 415 for an unknown content type', async () => {
    const c = await Client.open(srv.url);
    const big = await c.post('/arrays', { name: 'x', data: new Array(600000).fill(1) });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
    const r = await c.post('/arrays').set('Content-Type', 'text/plain').send('hello');
    expect(r.status).toBe(415);
  });

  it('malformed .npy bodies are 400 with a reason', async () => {
    const c = await Client.open(srv.url);
    const good = npy([1, 2], [2]);
    for (const body of [Buffer.from('not npy at all'), good.subarray(0, good.length - 3), Buffer.concat([good, Buffer.from([0])])]) {
      const r = await c.post('/arrays?name=x').set('Content-Type', 'application/x-npy').send(body).expect(400);
      expect(r.body.detail).toMatch(/\.npy/);
    }
  });

  it('one session cannot see or touch another\'s arrays', async () => {
    const a = await Client.open(srv.url);
    const b = await Client.open(srv.url);
    await a.expr('secret = nd.ones((2,))');
    expect((await b.get('/arrays/secret')).status).toBe(404);
    const stolen = await request(srv.url).get(`/v1/sessions/${a.sid}/arrays/secret`).set('Authorization', `Bearer ${b.token}`);
    expect(stolen.status).toBe(401);
  });
});

describe('meta', () => {
  it('serves health, readiness, metrics, the spec and the explorer', async () => {
    await request(srv.url).get('/healthz').expect(200, { status: 'ok' });
    expect((await request(srv.url).get('/readyz').expect(200)).body.status).toBe('ready');
    expect((await request(srv.url).get('/metrics').expect(200)).text).toMatch(/gradserve_sessions \d+/);
    const spec = (await request(srv.url).get('/openapi.json').expect(200)).body;
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toContain('/v1/sessions/{sid}/ops');
    expect((await request(srv.url).get('/docs/').expect(200)).text).toMatch(/swagger/i);
    const ops = (await request(srv.url).get('/v1/ops').expect(200)).body.ops;
    const dot = ops.find((o: { name: string }) => o.name === 'dot');
    expect(dot).toMatchObject({ aliases: ['matmul'], inputs: ['lhs', 'rhs'], differentiable: true });
    expect(dot.attrs.properties.transpose_a.default).toBe(false);
  });
});
