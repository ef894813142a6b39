/**
 * Integer dtypes and float16 over a real listening server: the book's uses of integer labels and
 * uint8 images, MXNet 1.x's dtype rules (results keep the input's dtype, mixing is refused), no
 * gradients through integers, and every transfer: JSON, base64, .npy and safetensors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { startServer, Client, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

/** The flat data and dtype of an expression's result. */
async function value(c: Client, expr: string): Promise<{ data: unknown; dtype: string }> {
  const r = await c.expr(expr, { format: 'flat' });
  return { data: r.result.data, dtype: r.result.dtype };
}

async function refused(c: Client, expr: string): Promise<{ status: number; code: string; detail: string }> {
  const r = await c.post('/ops', { expr });
  return { status: r.status, code: r.body.code, detail: r.body.detail };
}

function binary(res: { on(e: string, f: (d?: Buffer) => void): void }, cb: (e: Error | null, b: Buffer) => void) {
  const chunks: Buffer[] = [];
  res.on('data', (d) => chunks.push(d!));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

describe('the book with integer labels', () => {
  it('pick, accuracy, one_hot and take read int32 labels; uint8 images become floats', async () => {
    const c = await Client.open(srv.url);
    await c.expr("y = nd.array([0, 2], dtype='int32')");
    await c.expr('y_hat = nd.array([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])');
    expect(await value(c, 'nd.pick(y_hat, y)')).toEqual({ data: [0.1, 0.5], dtype: 'float32' });
    expect(await value(c, "(y_hat.argmax(axis=1) == y.astype('float32')).sum()")).toEqual({ data: [1], dtype: 'float32' });
    expect(await value(c, 'nd.one_hot(y, 3)')).toEqual({ data: [1, 0, 0, 0, 0, 1], dtype: 'float32' });
    expect(await value(c, "nd.one_hot(y, 3, dtype='int32')")).toEqual({ data: [1, 0, 0, 0, 0, 1], dtype: 'int32' });
    expect(await value(c, 'nd.take(y_hat, y, axis=1)')).toEqual({ data: [0.1, 0.6, 0.3, 0.5], dtype: 'float32' });
    expect(await value(c, "nd.array([[0, 51, 255]], dtype='uint8').astype('float32') / 255")).toEqual({ data: [0, 0.2, 1], dtype: 'float32' });
  });

  it('a softmax regression step learns with int32 labels, and its gradient matches float labels', async () => {
    const c = await Client.open(srv.url);
    await c.expr("X = nd.array([[1, 2], [3, 4], [5, 6]]); W = nd.array([[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]]); yi = nd.array([2, 0, 1], dtype='int32'); yf = yi.astype('float32')");
    await c.post('/arrays/W/attach-grad', {}).expect(200);
    await c.expr('l = -nd.log(nd.pick(nd.softmax(nd.dot(X, W)), yi)).sum()', { record: true });
    const gi = (await c.post('/arrays/l/backward', {}).expect(200)).body;
    const wi = (await c.get('/arrays/W/grad').expect(200)).body.data;
    await c.expr('l = -nd.log(nd.pick(nd.softmax(nd.dot(X, W)), yf)).sum()', { record: true });
    await c.post('/arrays/l/backward', {}).expect(200);
    expect(Object.keys(gi.grads)).toEqual(['W']);
    expect((await c.get('/arrays/W/grad').expect(200)).body.data).toEqual(wi);
  });
});

describe('MXNet 1.x dtype rules', () => {
  it('integer results keep the dtype: division truncates, comparisons give 0/1 of the input dtype, sums stay integers', async () => {
    const c = await Client.open(srv.url);
    await c.expr("a = nd.array([7, -7, 5, 0], dtype='int32')");
    expect(await value(c, 'a / 2')).toEqual({ data: [3, -3, 2, 0], dtype: 'int32' });
    expect(await value(c, 'a / 0')).toEqual({ data: [0, 0, 0, 0], dtype: 'int32' });
    expect(await value(c, 'a == 5')).toEqual({ data: [0, 0, 1, 0], dtype: 'int32' });
    expect(await value(c, 'a.sum()')).toEqual({ data: [5], dtype: 'int32' });
    expect(await value(c, 'a.argmax()')).toEqual({ data: [0], dtype: 'int32' });
    expect(await value(c, "nd.arange(5, dtype='int64') * 3")).toEqual({ data: [0, 3, 6, 9, 12], dtype: 'int64' });
    expect(await value(c, "nd.full((2,), 300, dtype='uint8')")).toEqual({ data: [44, 44], dtype: 'uint8' });
    expect(await value(c, "nd.array([2.9, -2.9, 3.5]).astype('int32')")).toEqual({ data: [2, -2, 3], dtype: 'int32' });
    expect(await value(c, 'a.reshape((2, 2)).T')).toEqual({ data: [7, 5, -7, 0], dtype: 'int32' });
    expect(await value(c, 'nd.concat(a, a, dim=0)[2:5]')).toEqual({ data: [5, 0, 7], dtype: 'int32' });
    // where's condition may be of any dtype (MXNet's WhereOpType types only x and y).
    expect(await value(c, 'nd.where(a, nd.ones(4), nd.zeros(4))')).toEqual({ data: [1, 1, 1, 0], dtype: 'float32' });
    expect((await c.expr('a.sum().asscalar()')).result).toBe(5);
  });

  it('refuses mixed dtypes, float-only ops on integers and compute on float16, naming the argument', async () => {
    const c = await Client.open(srv.url);
    await c.expr("a = nd.array([1, 2], dtype='int32'); f = nd.array([1, 2]); h = f.astype('float16')");
    expect(await refused(c, 'a + f')).toMatchObject({ status: 422, code: 'dtype_mismatch' });
    const exp = await refused(c, 'nd.exp(a)');
    expect(exp).toMatchObject({ status: 422, code: 'dtype_mismatch' });
    expect(exp.detail).toMatch(/`data` of `exp` is int32/);
    expect((await refused(c, 'nd.dot(a, a)')).detail).toMatch(/int32/);
    const half = await refused(c, 'h * 2');
    expect(half).toMatchObject({ status: 422, code: 'dtype_mismatch' });
    expect(half.detail).toMatch(/float16 is storage only/);
    expect((await refused(c, "nd.random.uniform(shape=2, dtype='int32')")).status).toBe(422);
    expect(await value(c, "h.reshape((2, 1)).T.astype('float32')")).toEqual({ data: [1, 2], dtype: 'float32' });
  });

  it('integers carry no gradient: attach_grad is refused and integer outputs are never recorded', async () => {
    const c = await Client.open(srv.url);
    await c.expr("a = nd.array([1, 2], dtype='int32'); x = nd.array([1.5, 2.5])");
    const r = await c.post('/arrays/a/attach-grad', {});
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('dtype_mismatch');
    await c.post('/arrays/x/attach-grad', {}).expect(200);
    const out = await c.expr("i = x.astype('int32'); z = i.astype('float32') * x", { record: true, fetch: ['i', 'z'] });
    expect(out.outputs.i.recorded).toBe(false);
    await c.post('/arrays/z/backward', {}).expect(200);
    // Only the direct path counts: the one through the integer cast is a constant.
    expect((await c.get('/arrays/x/grad').expect(200)).body.data).toEqual([1, 2]);
  });
});

describe('GET /v1/ops', () => {
  it('lists the dtypes each input takes', async () => {
    const { ops } = (await request(srv.url).get('/v1/ops').expect(200)).body as { ops: { name: string; dtypes: string[][] }[] };
    const of = (n: string) => ops.find((o) => o.name === n)!.dtypes;
    expect(of('exp')).toEqual([['float32', 'float64']]);
    expect(of('Embedding')).toEqual([['float32', 'float64', 'int32', 'int64', 'uint8'], ['float32', 'float64']]);
    expect(of('reshape')).toEqual([['float32', 'float64', 'int32', 'int64', 'uint8', 'float16']]);
  });
});

describe('transfer', () => {
  it('JSON, base64 and .npy carry integers; int64 beyond 2^53 only as bytes', async () => {
    const c = await Client.open(srv.url);
    // Beyond 2^53, yet a double: exact on the reference backend too, which holds int64 in doubles.
    const bytes = Buffer.from(BigInt64Array.from([2n ** 60n + 1024n, -3n]).buffer);
    await c.post('/arrays', { name: 'b', data_base64: bytes.toString('base64'), shape: [2], dtype: 'int64' }).expect(201);
    expect((await c.get('/arrays/b?format=base64').expect(200)).body.data).toBe(bytes.toString('base64'));
    const json = await c.get('/arrays/b');
    expect(json.status).toBe(422);
    expect(json.body.detail).toMatch(/beyond 2\^53.*base64/);
    const npy = await c.get('/arrays/b').set('Accept', 'application/x-npy').buffer(true).parse(binary).expect(200);
    const file = npy.body as Buffer;
    expect(file.toString('latin1')).toContain("'descr': '<i8'");
    expect(file.subarray(file.length - 16).equals(bytes)).toBe(true);
    // The same file back in: the dtype is the file's.
    const up = await c.post('/arrays?name=b2').set('Content-Type', 'application/x-npy').send(file).expect(201);
    expect(up.body.dtype).toBe('int64');
    expect((await c.get('/arrays/b2?format=base64').expect(200)).body.data).toBe(bytes.toString('base64'));
    await c.post('/arrays', { name: 'u', data: [[1, 2], [3, 255]], dtype: 'uint8' }).expect(201);
    expect(await c.data('u')).toEqual([[1, 2], [3, 255]]);
    await c.post('/arrays', { name: 'h', data: [0.1, 65519, 1e6], dtype: 'float16' }).expect(201);
    expect(await c.data('h')).toEqual([0.1, 65500, 'Infinity']);
  });

  it('safetensors round-trips I32, I64, U8 and F16 byte-exact', async () => {
    const a = await Client.open(srv.url);
    await a.expr("i = nd.array([-1, 2], dtype='int32'); l = nd.array([3, 4], dtype='int64'); u = nd.array([5, 250], dtype='uint8'); h = nd.array([0.5, -2], dtype='float16')");
    const file = (await a.get('/export').buffer(true).parse(binary).expect(200)).body as Buffer;
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString('utf8'));
    expect([header.i.dtype, header.l.dtype, header.u.dtype, header.h.dtype]).toEqual(['I32', 'I64', 'U8', 'F16']);
    const b = await Client.open(srv.url);
    await b.post('/import').set('Content-Type', 'application/octet-stream').send(file).expect(200);
    const again = (await b.get('/export').buffer(true).parse(binary).expect(200)).body as Buffer;
    expect(again.equals(file)).toBe(true);
    expect(await b.data('u')).toEqual([5, 250]);
    expect(await b.data('h')).toEqual([0.5, -2]);
  });
});
