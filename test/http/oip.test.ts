/**
 * The Open Inference Protocol (KServe v2 / Triton REST) over a real server: OIP tensors as array
 * uploads and reads, JSON and binary (the binary tensor data extension), and a session's def
 * called as a model at `{base}/v2/models/{def}/infer`, with `{base}` = `/v1/sessions/{sid}`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

/** A request with the session's token, as any HTTP client of the protocol sends it. */
async function call(c: Client, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) {
  const r = await fetch(`${c.url}/v1/sessions/${c.sid}${path}`, {
    method,
    headers: { Authorization: `Bearer ${c.token}`, ...(typeof body === 'string' ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body,
  });
  const bytes = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, bytes, json: () => JSON.parse(bytes.toString('utf8')) };
}

/** A binary-extension body: the JSON, then each tensor's bytes, with the JSON's length. */
function binaryBody(json: unknown, parts: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const head = Buffer.from(JSON.stringify(json));
  return {
    body: Buffer.concat([head, ...parts]),
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(head.length) },
  };
}

/** Splits a binary-extension answer into its JSON and the bytes after it. */
function splitAnswer(r: { headers: Headers; bytes: Buffer }) {
  const n = Number(r.headers.get('inference-header-content-length'));
  expect(r.headers.get('content-type')).toMatch(/application\/octet-stream/);
  return { json: JSON.parse(r.bytes.subarray(0, n).toString('utf8')), rest: r.bytes.subarray(n) };
}

const f32 = (v: number[]) => Buffer.from(new Float32Array(v).buffer);

describe('OIP tensors as array uploads and reads', () => {
  it('round-trips FP32, FP64, INT64 and BOOL as JSON', async () => {
    const c = await Client.open(srv.url);
    const cases = [
      { name: 'a', shape: [2, 3], datatype: 'FP32', data: [1, 2.5, -3, 0.1, 5, 6], dtype: 'float32' },
      { name: 'b', shape: [3], datatype: 'FP64', data: [0.1, 1e-300, -2], dtype: 'float64' },
      { name: 'c', shape: [2, 2], datatype: 'INT64', data: [[1, -2], [2 ** 40, 4]], dtype: 'int64' },
      { name: 'd', shape: [4], datatype: 'BOOL', data: [true, false, false, true], dtype: 'uint8' },
    ];
    for (const { dtype, ...t } of cases) {
      const up = await call(c, 'POST', '/arrays', JSON.stringify(t));
      expect(up.status).toBe(201);
      expect(up.json()).toMatchObject({ name: t.name, shape: t.shape, dtype });
      const q = t.datatype === 'BOOL' ? '&datatype=BOOL' : '';
      const r = await call(c, 'GET', `/arrays/${t.name}?format=oip${q}`);
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ name: t.name, shape: t.shape, datatype: t.datatype, data: t.data.flat() });
    }
    // An int64 beyond 2^53 has no exact JSON number: the refusal points to binary data, which carries it.
    const big = Buffer.alloc(8);
    big.writeBigInt64LE(2n ** 60n); // exact in a double too (the reference backend holds int64 so)
    const bb = binaryBody({ name: 'big', shape: [1], datatype: 'INT64', parameters: { binary_data_size: 8 } }, [big]);
    expect((await call(c, 'POST', '/arrays', bb.body, bb.headers)).status).toBe(201);
    const refused = await call(c, 'GET', '/arrays/big?format=oip');
    expect(refused.json()).toMatchObject({ status: 422, field: 'binary_data' });
    expect(splitAnswer(await call(c, 'GET', '/arrays/big?format=oip&binary_data=true')).rest.equals(big)).toBe(true);
    // BOOL is held as uint8 0/1; read without datatype=BOOL it is UINT8.
    expect((await call(c, 'GET', '/arrays/d?format=oip')).json()).toMatchObject({ datatype: 'UINT8', data: [1, 0, 0, 1] });
    expect(await c.data('a')).toEqual([[1, 2.5, -3, 0.1, 5, 6].slice(0, 3), [0.1, 5, 6]]);
  });

  it('takes and answers the binary tensor data extension, on POST and PUT', async () => {
    const c = await Client.open(srv.url);
    const x = f32([1, 2, 3, 4, 5, 6]);
    const { body, headers } = binaryBody({ name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: x.length } }, [x]);
    const up = await call(c, 'POST', '/arrays', body, headers);
    expect(up.status).toBe(201);
    expect(await c.data('x')).toEqual([[1, 2, 3], [4, 5, 6]]);
    const r = splitAnswer(await call(c, 'GET', '/arrays/x?format=oip&binary_data=true'));
    expect(r.json).toEqual({ name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } });
    expect(r.rest.equals(x)).toBe(true);

    // INT16 widens to int32 exactly; PUT names the array by its path.
    const i16 = Buffer.from(new Int16Array([-32768, 7, 32767]).buffer);
    const put = binaryBody({ name: 'ignored', shape: [3], datatype: 'INT16', parameters: { binary_data_size: 6 } }, [i16]);
    expect((await call(c, 'PUT', '/arrays/w', put.body, put.headers)).json()).toMatchObject({ name: 'w', dtype: 'int32', shape: [3] });
    expect(await c.data('w')).toEqual([-32768, 7, 32767]);

    // FP64 and BOOL bytes.
    const b = Buffer.from([1, 0, 1]);
    const bb = binaryBody({ name: 'flags', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } }, [b]);
    expect((await call(c, 'POST', '/arrays', bb.body, bb.headers)).status).toBe(201);
    const rb = splitAnswer(await call(c, 'GET', '/arrays/flags?format=oip&binary_data=true&datatype=BOOL'));
    expect(rb.json.datatype).toBe('BOOL');
    expect([...rb.rest]).toEqual([1, 0, 1]);
  });

  it('refuses a datatype it lacks, a bad one, a shape that does not fit the data, by field', async () => {
    const c = await Client.open(srv.url);
    const bad = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [1], datatype: 'FP8', data: [1] }));
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'invalid_request', field: 'datatype' });
    expect(bad.headers.get('content-type')).toMatch(/problem\+json/);
    const lack = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [1], datatype: 'BYTES', data: ['hi'] }));
    expect(lack.status).toBe(422);
    expect(lack.json()).toMatchObject({ field: 'datatype' });
    expect(lack.json().detail).toMatch(/BYTES/);
    const mismatch = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3] }));
    expect(mismatch.status).toBe(422);
    expect(mismatch.json()).toMatchObject({ code: 'shape_mismatch', field: 'data' });
    expect(mismatch.json().detail).toMatch(/`shape` \[2, 2\]/);
    const notBool = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [2], datatype: 'BOOL', data: [true, 2] }));
    expect(notBool.json()).toMatchObject({ status: 400, field: 'data[1]' });
    const range = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [2], datatype: 'UINT8', data: [1, 256] }));
    expect(range.json()).toMatchObject({ status: 422, field: 'data' });
    const x = f32([1, 2, 3]);
    const short = binaryBody({ name: 'a', shape: [4], datatype: 'FP32', parameters: { binary_data_size: x.length } }, [x]);
    const r = await call(c, 'POST', '/arrays', short.body, short.headers);
    expect(r.json()).toMatchObject({ code: 'shape_mismatch', field: 'parameters.binary_data_size' });
    const noHeader = await call(c, 'POST', '/arrays', JSON.stringify({ name: 'a', shape: [3], datatype: 'FP32', parameters: { binary_data_size: 12 } }));
    expect(noHeader.json()).toMatchObject({ status: 400, field: 'parameters.binary_data_size' });
  });
});

describe('a def of the session as an OIP model', () => {
  async function withDef() {
    const c = await Client.open(srv.url, { default_dtype: 'float32' });
    await c.expr('def f(x, y):\n    return x * y + 1\n\ndef g(a, b=2):\n    return a + b, a * b');
    return c;
  }

  it('answers a request written as the KServe v2 examples write it', async () => {
    const c = await withDef();
    const request = {
      id: '42',
      inputs: [
        { name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'y', shape: [2, 2], datatype: 'FP32', data: [[10, 20], [30, 40]] },
      ],
      outputs: [{ name: 'output0' }],
    };
    const r = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify(request));
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({
      model_name: 'f',
      id: '42',
      outputs: [{ name: 'output0', shape: [2, 2], datatype: 'FP32', data: [11, 41, 91, 161] }],
    });
    // The inputs were bound only while the function ran.
    expect((await c.get('/arrays').expect(200)).body.arrays).toEqual([]);
  });

  it('answers the KServe v2 examples as written, JSON and binary extension (UINT32, BOOL)', async () => {
    const c = await Client.open(srv.url);
    await c.expr("def mymodel(input0, input1):\n    return input0 * 2, input1.astype('float32') + 0.5");
    // The JSON example: its BOOL input holds as many values as its shape says (the spec's has one for [3]).
    const plain = await call(c, 'POST', '/v2/models/mymodel/infer', JSON.stringify({
      id: '42',
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [true, false, true] },
      ],
      outputs: [{ name: 'output0' }],
    }));
    expect(plain.json()).toEqual({ model_name: 'mymodel', id: '42', outputs: [{ name: 'output0', shape: [2, 2], datatype: 'INT64', data: [2, 4, 6, 8] }] });
    const input0 = Buffer.from(new Uint32Array([1, 2, 3, 4000000000]).buffer);
    const json = {
      model_name: 'mymodel',
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [true, false, true] },
      ],
      outputs: [{ name: 'output0', parameters: { binary_data: true } }, { name: 'output1' }],
    };
    const { body, headers } = binaryBody(json, [input0]);
    expect(body.length).toBe(Number(headers['Inference-Header-Content-Length']) + 16);
    // As application/octet-stream, as application/json with the header, and with no Content-Type
    // (clients of the protocol send each).
    for (const type of ['application/octet-stream', 'application/json', undefined]) {
      const h: Record<string, string> = { ...headers };
      if (type) h['Content-Type'] = type;
      else delete h['Content-Type'];
      const r = await call(c, 'POST', '/v2/models/mymodel/infer', body, h);
      expect(r.status).toBe(200);
      const { json: answer, rest } = splitAnswer(r);
      expect(answer).toEqual({
        model_name: 'mymodel',
        outputs: [
          { name: 'output0', shape: [2, 2], datatype: 'INT64', parameters: { binary_data_size: 32 } },
          { name: 'output1', shape: [3], datatype: 'FP32', data: [1.5, 0.5, 1.5] },
        ],
      });
      expect([...new BigInt64Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 32))]).toEqual([2n, 4n, 6n, 8000000000n]);
    }
  });

  it('takes binary inputs and answers binary outputs (Inference-Header-Content-Length both ways)', async () => {
    const c = await withDef();
    const a = Buffer.from(new Float64Array([1, 2, 3]).buffer);
    const json = {
      inputs: [{ name: 'a', shape: [3], datatype: 'FP64', parameters: { binary_data_size: a.length } },
        { name: 'b', shape: [1], datatype: 'FP64', data: [10] }],
      outputs: [{ name: 'output0', parameters: { binary_data: true } }, { name: 'output1' }],
    };
    const { body, headers } = binaryBody(json, [a]);
    const r = await call(c, 'POST', '/v2/models/g/infer', body, headers);
    expect(r.status).toBe(200);
    const { json: answer, rest } = splitAnswer(r);
    expect(answer).toEqual({
      model_name: 'g',
      outputs: [
        { name: 'output0', shape: [3], datatype: 'FP64', parameters: { binary_data_size: 24 } },
        { name: 'output1', shape: [3], datatype: 'FP64', data: [10, 20, 30] },
      ],
    });
    expect([...new Float64Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 24))]).toEqual([11, 12, 13]);
    // binary_data_output asks for every output as bytes; `outputs` with other names names them in order.
    const all = await call(c, 'POST', '/v2/models/g/infer', JSON.stringify({
      parameters: { binary_data_output: true },
      inputs: [{ name: 'a', shape: [2], datatype: 'INT64', data: [3, 4] }],
      outputs: [{ name: 'sum' }, { name: 'product' }],
    }));
    const s = splitAnswer(all);
    expect(s.json.outputs.map((o: { name: string; datatype: string }) => [o.name, o.datatype])).toEqual([['sum', 'INT64'], ['product', 'INT64']]);
    expect([...new BigInt64Array(s.rest.buffer.slice(s.rest.byteOffset, s.rest.byteOffset + 32))]).toEqual([5n, 6n, 6n, 8n]);
  });

  it('serves model metadata and readiness, and refuses bad calls by field', async () => {
    const c = await withDef();
    expect((await call(c, 'GET', '/v2/health/ready')).json()).toEqual({ ready: true });
    expect((await call(c, 'GET', '/v2/health/live')).json()).toEqual({ live: true });
    expect((await call(c, 'GET', '/v2')).json()).toMatchObject({ extensions: ['binary_tensor_data'] });
    expect((await call(c, 'GET', '/v2/models/g/ready')).json()).toEqual({ name: 'g', ready: true });
    expect((await call(c, 'GET', '/v2/models/g')).json()).toEqual({
      name: 'g', versions: ['1'], platform: 'gradserve',
      inputs: [{ name: 'a', datatype: 'FP32', shape: [-1] }, { name: 'b', datatype: 'FP32', shape: [-1] }],
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [-1] }],
    });
    expect((await call(c, 'GET', '/v2/models/g/versions/1')).json()).toEqual((await call(c, 'GET', '/v2/models/g')).json());
    const versioned = await call(c, 'POST', '/v2/models/f/versions/1/infer', JSON.stringify({
      inputs: [{ name: 'x', shape: [1], datatype: 'FP64', data: [2] }, { name: 'y', shape: [1], datatype: 'FP64', data: [3] }],
    }));
    expect(versioned.json().outputs[0].data).toEqual([7]);
    const v2 = await call(c, 'POST', '/v2/models/f/versions/2/infer', JSON.stringify({ inputs: [] }));
    expect(v2.json()).toMatchObject({ status: 404, field: 'version' });
    const missing = await call(c, 'GET', '/v2/models/nope');
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ field: 'model' });
    expect(missing.json().error).toMatch(/no function `nope`/);
    const t = (name: string) => ({ name, shape: [1], datatype: 'FP32', data: [1] });
    const unknown = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify({ inputs: [t('x'), t('z')] }));
    expect(unknown.json()).toMatchObject({ status: 422, field: 'inputs.1.name' });
    const lacking = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify({ inputs: [t('x')] }));
    expect(lacking.json()).toMatchObject({ status: 422, field: 'inputs' });
    const badType = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify({ inputs: [t('x'), { ...t('y'), datatype: 'FP9' }] }));
    expect(badType.json()).toMatchObject({ status: 400, field: 'inputs.1.datatype' });
    const badShape = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify({ inputs: [t('x'), { ...t('y'), shape: [2] }] }));
    expect(badShape.json()).toMatchObject({ status: 422, code: 'shape_mismatch', field: 'inputs.1.data' });
    const outOfRange = await call(c, 'POST', '/v2/models/f/infer', JSON.stringify({ inputs: [t('x'), t('y')], outputs: [{ name: 'output3' }] }));
    expect(outOfRange.json()).toMatchObject({ status: 422, field: 'outputs.0.name' });
    const noAuth = await fetch(`${c.url}/v1/sessions/${c.sid}/v2/health/ready`);
    expect(noAuth.status).toBe(401);
    // A failed call leaves no temporary binding behind.
    expect((await c.get('/arrays').expect(200)).body.arrays).toEqual([]);
  });

  it('is spoken by a client of nothing but Python\'s standard library', async () => {
    const c = await withDef();
    const script = String.raw`
import json, struct, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
auth = {"Authorization": "Bearer " + token}
def post(path, body, headers):
    req = urllib.request.Request(base + path, data=body, headers={**auth, **headers}, method="POST")
    with urllib.request.urlopen(req) as r:
        return r.read(), r.headers
def get(path):
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=auth)) as r:
        return json.loads(r.read())
assert get("/v2/health/ready") == {"ready": True}
meta = get("/v2/models/f")
body = json.dumps({"inputs": [{"name": p["name"], "shape": [3], "datatype": "FP32", "data": [1, 2, 3]} for p in meta["inputs"]]}).encode()
# No Content-Type of its own: urllib sends application/x-www-form-urlencoded, which a quick client leaves.
out, _ = post("/v2/models/f/infer", body, {})
print(json.dumps(json.loads(out)["outputs"][0]["data"]))
x = struct.pack("<3f", 1.5, 2.5, 3.5)
head = json.dumps({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": len(x)}},
                              {"name": "y", "shape": [3], "datatype": "FP32", "data": [2, 2, 2]}],
                   "outputs": [{"name": "output0", "parameters": {"binary_data": True}}]}).encode()
out, headers = post("/v2/models/f/infer", head + x, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))})
n = int(headers["Inference-Header-Content-Length"])
print(json.dumps(list(struct.unpack("<3f", out[n:]))))
`;
    // Not spawnSync: the server answers from this very process.
    const p = await promisify(execFile)('/usr/bin/python3', ['-c', script, `${c.url}/v1/sessions/${c.sid}`, c.token], { encoding: 'utf8', timeout: 20000 });
    expect(p.stderr).toBe('');
    expect(p.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([[2, 5, 10], [4, 6, 8]]);
  });
});
