/**
 * Regressions: single requests the fuzzer once found answering 5xx, fixed since. Each must now be
 * a 4xx problem+json with a code. (Open findings live in known-bugs.ts until they are fixed.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { call } from '../helpers/http.js';
import { connect } from 'node:net';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({}); });
afterAll(async () => { await srv.close(); });

describe('fuzz regressions', () => {
  // An empty index item (`x[, 0]`) reached the compiler as undefined: 500 TypeError in keyItem.
  it.each(['x[, 0]', 'x[0, , 1]', 'x[0,,]', 'y = x[:, , 0]', 'x[,]'])('expression %s is a 400', async (expr) => {
    const s = await call(srv.url, 'POST', '/v1/sessions', null, {});
    const p = `/v1/sessions/${s.json.id}`;
    expect((await call(srv.url, 'POST', `${p}/ops`, s.json.token, { expr: 'x = nd.ones((2, 3))' })).status).toBe(200);
    const r = await call(srv.url, 'POST', `${p}/ops`, s.json.token, { expr });
    expect(r.status).toBe(400);
    expect(r.raw.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.json.code).toBe('invalid_expression');
  });
});

describe('fuzz regressions: kernels', () => {
  // argmax/argmin of an empty axis reached the kernel, whose refusal was a 500 (compiled or run).
  it.each(['q = nd.zeros((0,)).argmax()', 'q = nd.zeros((2, 0)).argmin(axis=-1)', 'if nd.zeros((0,)).argmax():\n    pass'])('%s is a 422', async (expr) => {
    const s = await call(srv.url, 'POST', '/v1/sessions', null, {});
    const r = await call(srv.url, 'POST', `/v1/sessions/${s.json.id}/ops`, s.json.token, { expr });
    expect(r.status).toBe(422);
    expect(r.json.code).toBe('shape_mismatch');
    expect(r.json.detail).toMatch(/of an empty axis/);
  });
});

describe('fuzz regressions: bodies and statements', () => {
  async function session() {
    const s = await call(srv.url, 'POST', '/v1/sessions', null, {});
    const p = `/v1/sessions/${s.json.id}`;
    expect((await call(srv.url, 'POST', `${p}/ops`, s.json.token, { expr: 'x = nd.ones((2, 3))' })).status).toBe(200);
    return { p, token: s.json.token as string };
  }
  const nest = (depth: number): unknown => { let v: unknown = 1; for (let i = 0; i < depth; i++) v = [v]; return v; };

  // zod's recursive schemas overflowed the stack on deep JSON (500) and leaked heap per request.
  it('deeply nested JSON is a 400 naming the depth limit, wherever it appears', async () => {
    const { p, token } = await session();
    const bodies: [string, string, unknown][] = [
      ['POST', `${p}/ops`, { ops: [{ op: 'add', args: ['x', nest(1500)] }] }],
      ['POST', `${p}/arrays`, { name: 'q', data: nest(2000) }],
      ['POST', `${p}/arrays/x/backward`, { head_grad: nest(2000) }],
      ['POST', `${p}/ops`, { ops: Array.from({ length: 1 }, () => { let b: unknown[] = []; for (let i = 0; i < 1000; i++) b = [{ op: 'scope', kind: 'pause', body: b }]; return b[0]; }) }],
    ];
    for (const [method, path, body] of bodies) {
      const r = await call(srv.url, method, path, token, body);
      expect({ path, status: r.status, code: r.json.code }).toEqual({ path, status: 400, code: 'invalid_request' });
      expect(r.json.detail).toMatch(/deeper than 64/);
    }
  });

  // The reserved statement names fell through to the generic op schema: 500 in the runner.
  it.each([
    { op: 'attach_grad', args: [] }, { op: 'attach_grad' }, { op: 'attach_grad', args: [1] }, { op: 'delete' },
    { op: 'attach_grad', args: ['x', 'x'] }, { op: 'attach_grad', args: ['x'], attrs: { grad_req: 5 } },
    { op: 'scope', kind: 'record' }, { op: 'backward' },
  ])('malformed reserved statement %j is a 400 and leaves x readable', async (st) => {
    const { p, token } = await session();
    const r = await call(srv.url, 'POST', `${p}/ops`, token, { ops: [st] });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('invalid_request');
    expect((await call(srv.url, 'GET', `${p}/arrays`, token)).status).toBe(200);
  });

  it('a malformed URL is problem+json', async () => {
    const r = await call(srv.url, 'GET', '/%FF', null);
    expect(r.status).toBe(400);
    expect(r.raw.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.json.code).toBe('invalid_request');
  });
});

describe('fuzz regressions: idempotent refusals', () => {
  // A 429 was stored and replayed without Retry-After, and kept refusing after the quota freed up.
  it('a quota refusal is not stored under its Idempotency-Key', async () => {
    const tight = await startServer({ GRADSERVE_MAX_STATEMENTS: '1' });
    try {
      const s = await call(tight.url, 'POST', '/v1/sessions', null, {});
      const path = `/v1/sessions/${s.json.id}/ops`;
      const send = () => fetch(`${tight.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.json.token}`, 'content-type': 'application/json', 'idempotency-key': 'k' },
        body: JSON.stringify({ expr: 'a = nd.ones((1,))\nb = nd.ones((1,))' }),
      });
      for (let i = 0; i < 2; i++) {
        const r = await send();
        expect(r.status).toBe(429);
        expect(r.headers.get('retry-after')).toBeTruthy();
        expect(r.headers.get('idempotent-replayed')).toBeNull();
      }
    } finally {
      await tight.close();
    }
  });
});

describe('fuzz regressions: request bodies', () => {
  // A 415 answered before its body was read left the body's idle timer running; its refusal then
  // was an uncaught 'error' event, and the process shut down (every later request refused).
  it('a stalled body that the route never reads is answered 415, and the server stays up past the idle timeout', async () => {
    const tight = await startServer({ GRADSERVE_BODY_IDLE_TIMEOUT_MS: '300' });
    try {
      const s = await call(tight.url, 'POST', '/v1/sessions', null, {});
      const u = new URL(tight.url);
      const socket = connect(Number(u.port), u.hostname);
      let got = '';
      socket.on('data', (d) => { got += d.toString('latin1'); });
      socket.on('error', () => {});
      socket.write(`POST /v1/sessions/${s.json.id}/arrays/x/backward HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.json.token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n{"head_`);
      for (let i = 0; i < 100 && !got; i++) await new Promise((r) => setTimeout(r, 20));
      expect(got).toMatch(/^HTTP\/1\.1 415/);
      await new Promise((r) => setTimeout(r, 800));
      expect((await call(tight.url, 'GET', '/healthz')).status).toBe(200);
      socket.destroy();
    } finally {
      await tight.close();
    }
  });

  // A body the route never read (415) stayed piped into the body counter, paused, so the next
  // request on the same keep-alive connection was never parsed: the fuzzer saw it as a hang.
  it('after a 415 with a large unread body, the next request on the same connection is answered', async () => {
    const s = await call(srv.url, 'POST', '/v1/sessions', null, {});
    const u = new URL(srv.url);
    const socket = connect(Number(u.port), u.hostname);
    let got = '';
    socket.on('data', (d) => { got += d.toString('latin1'); });
    socket.on('error', () => {});
    const body = 'x'.repeat(200_000);
    socket.write(`POST /v1/sessions/${s.json.id}/ops HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    for (let i = 0; i < 150 && (got.match(/HTTP\/1\.1 /g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    expect(got).toMatch(/^HTTP\/1\.1 415/);
    expect(got).toMatch(/HTTP\/1\.1 200[^]*"status":"ok"/);
  });
});
