/** Access, quotas, time, rate limits, idempotency and metrics: each refusal names its limit. */
import { afterEach, describe, expect, it } from 'vitest';
import request from 'supertest';
import { startServer, Client, type TestServer } from '../helpers/server.js';
import { referenceBackend } from '../../src/engine/reference.js';
import type { Backend } from '../../src/engine/backend.js';

const servers: TestServer[] = [];
async function server(env: Record<string, string>, backend?: Backend): Promise<TestServer> {
  const s = await startServer(env, backend);
  servers.push(s);
  return s;
}
afterEach(async () => { while (servers.length) await servers.pop()!.close(); });

describe('access', () => {
  it('API keys gate session creation, with a per-key session limit', async () => {
    const srv = await server({ GRADSERVE_API_KEYS: 'alpha,beta', GRADSERVE_MAX_SESSIONS_PER_KEY: '2' });
    expect((await request(srv.url).post('/v1/sessions').expect(401)).body.code).toBe('unauthorized');
    await request(srv.url).post('/v1/sessions').set('X-API-Key', 'gamma').expect(401);
    await request(srv.url).post('/v1/sessions').set('X-API-Key', 'alpha').expect(201);
    await request(srv.url).post('/v1/sessions').set('X-API-Key', 'alpha').expect(201);
    const third = await request(srv.url).post('/v1/sessions').set('X-API-Key', 'alpha').expect(429);
    expect(third.body).toMatchObject({ code: 'quota_exceeded', limit: 'sessions_per_key' });
    expect(third.headers['retry-after']).toBeDefined();
    await request(srv.url).post('/v1/sessions').set('X-API-Key', 'beta').expect(201);
  });

  it('no endpoint lists sessions', async () => {
    const srv = await server({});
    await Client.open(srv.url);
    expect((await request(srv.url).get('/v1/sessions')).status).toBe(404);
  });
});

describe('quotas', () => {
  it('live sessions, bytes per session, statements, expression length and depth, tape nodes', async () => {
    const srv = await server({
      GRADSERVE_MAX_SESSIONS: '3', GRADSERVE_MAX_SESSION_BYTES: '4096', GRADSERVE_MAX_STATEMENTS: '5',
      GRADSERVE_MAX_EXPR_LENGTH: '200', GRADSERVE_MAX_EXPR_DEPTH: '8', GRADSERVE_MAX_TAPE_NODES: '3',
    });
    const c = await Client.open(srv.url);
    const cases: [unknown, string][] = [
      [{ expr: 'a = nd.ones((2000,))' }, 'session_bytes'],
      [{ expr: 'a = 1 + nd.ones((1,))\n'.repeat(6) }, 'statements'],
      [{ expr: `a = nd.ones((1,))${' + 1'.repeat(60)}` }, 'expr_length'],
      [{ expr: `a = ${'('.repeat(10)}1${')'.repeat(10)} + nd.ones((1,))` }, 'expr_depth'],
    ];
    for (const [body, limit] of cases) {
      const r = await c.post('/ops', body);
      expect({ limit, status: r.status, code: r.body.code, got: r.body.limit }).toEqual({ limit, status: 429, code: 'quota_exceeded', got: limit });
      expect(r.headers['retry-after']).toBeDefined();
      expect(r.body.detail).toMatch(/\d/);
    }
    await c.expr('x = nd.ones((2,))');
    await c.post('/arrays/x/attach-grad').expect(200);
    const tape = await c.post('/ops', { expr: 'y = x * 2; y = y * 2; y = y * 2; y = y * 2', record: true });
    expect(tape.status).toBe(429);
    expect(tape.body.limit).toBe('tape_nodes');
    await Client.open(srv.url);
    await Client.open(srv.url);
    const many = await request(srv.url).post('/v1/sessions').expect(429);
    expect(many.body.limit).toBe('sessions');
    // Deleting a session makes room again.
    await c.del().expect(204);
    await request(srv.url).post('/v1/sessions').expect(201);
  });

  it('a huge matrix product is refused up front by its cost', async () => {
    const srv = await server({ GRADSERVE_MAX_KERNEL_FLOPS: '1000000' });
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: 'nd.dot(nd.ones((200, 200)), nd.ones((200, 200)))' });
    expect(r.status).toBe(413);
    expect(r.body.limit).toBe('kernel_flops');
  });

  it('idle sessions expire and are culled; GET shows the expiry', async () => {
    const srv = await server({ GRADSERVE_SWEEP_INTERVAL_MS: '50' });
    const c = await Client.open(srv.url, { ttl_seconds: 1 });
    const info = (await c.get('').expect(200)).body;
    expect(Date.parse(info.expires_at) - Date.parse(info.created_at)).toBeGreaterThanOrEqual(900);
    await new Promise((r) => setTimeout(r, 1400));
    const gone = (await c.get('').expect(404)).body;
    expect(gone).toMatchObject({ code: 'not_found', session_state: 'expired' });
    expect(gone.detail).toMatch(/expired at .*ttl_seconds.*POST \/v1\/sessions/);
  });

  it('a deleted session says so to the holder of its token, and nothing to anyone else', async () => {
    const srv = await server();
    const c = await Client.open(srv.url);
    await request(srv.url).delete(`/v1/sessions/${c.sid}`).set('Authorization', `Bearer ${c.token}`).expect(204);
    const gone = (await c.get('').expect(404)).body;
    expect(gone).toMatchObject({ code: 'not_found', session_state: 'deleted' });
    expect(gone.detail).toMatch(/was deleted at/);
    const stranger = (await request(srv.url).get(`/v1/sessions/${c.sid}`).set('Authorization', 'Bearer guess').expect(404)).body;
    expect(stranger).not.toHaveProperty('session_state');
    expect(stranger.detail).toMatch(/there is no session/);
  });
});

describe('time', () => {
  it('a program over its time budget stops between statements and leaves the session consistent', async () => {
    // The reference backend runs each kernel at its call, so the program's own time is what the
    // runner sees between statements. (The native engine queues kernels on its stream; the budget
    // stopping queued kernels is tested in test/session/fair.test.ts.)
    const srv = await server({ GRADSERVE_REQUEST_TIMEOUT_MS: '200' }, referenceBackend);
    const c = await Client.open(srv.url);
    await c.expr('a = nd.ones((100, 100))');
    const long = Array.from({ length: 2000 }, () => 'a = nd.dot(a, nd.ones((100, 100))) * 0.01').join('\n');
    const r = await c.post('/ops', { expr: long });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'time_limit', limit: 'request_time' });
    expect(Array.isArray(r.body.changed)).toBe(true);
    // The line of the statement it stopped before: lines count from 1.
    expect(r.body.line).toBeGreaterThanOrEqual(1);
    expect(r.body.line).toBeLessThanOrEqual(2000);
    const shape = (await c.get('/arrays/a').expect(200)).body.shape;
    expect(shape).toEqual([100, 100]);
  });
});

describe('rate limits', () => {
  it('429 with Retry-After past the per-client limit; other clients are unaffected', async () => {
    const srv = await server({ GRADSERVE_RATE_LIMIT_MAX: '5', GRADSERVE_RATE_LIMIT_WINDOW_MS: '60000' });
    const c = await Client.open(srv.url);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await c.get('/autograd')).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const r = await c.get('/autograd');
    expect(r.status).toBe(429);
    expect(r.body.code).toBe('rate_limited');
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    await request(srv.url).get('/healthz').expect(200);
  });

  it('made-up tokens, token spellings and wrong API keys share their address\'s bucket; a verified token has its own', async () => {
    const srv = await server({ GRADSERVE_RATE_LIMIT_MAX: '5', GRADSERVE_RATE_LIMIT_WINDOW_MS: '60000', GRADSERVE_API_KEYS: 'good-key' });
    const c = await request(srv.url).post('/v1/sessions').set('X-API-Key', 'good-key').expect(201);
    const path = `/v1/sessions/${c.body.id}/autograd`;
    const forged = [
      (r: request.Test) => r.set('Authorization', `Bearer ${Math.random().toString(36).slice(2)}`),
      (r: request.Test) => r.set('Authorization', `bEaReR   ${c.body.token.toUpperCase()}`),
      (r: request.Test) => r.set('X-API-Key', `wrong-${Math.random()}`),
      (r: request.Test) => r.set('Authorization', 'Basic abc'),
      (r: request.Test) => r,
    ];
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await forged[i % forged.length](request(srv.url).get(path))).status);
    expect(statuses.slice(0, 5).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(5)).toEqual([429, 429, 429, 429, 429]);
    // The session's own token is verified: its bucket is untouched by the address's.
    await request(srv.url).get(path).set('Authorization', `Bearer ${c.body.token}`).expect(200);
    // So is the API key's, for creating sessions.
    await request(srv.url).post('/v1/sessions').set('X-API-Key', 'good-key').expect(201);
  });
});

describe('idempotency', () => {
  it('replays a retry, refuses another body (422) and a key in flight (409)', { timeout: 30000 }, async () => {
    const srv = await server({});
    const c = await Client.open(srv.url);
    await c.expr('x = nd.array([1])');
    const body = { expr: 'x = x + 1', fetch: ['x'] };
    const first = await c.post('/ops', body).set('Idempotency-Key', 'k1').expect(200);
    const again = await c.post('/ops', body).set('Idempotency-Key', 'k1').expect(200);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await c.data('x')).toEqual([2]);
    const other = await c.post('/ops', { expr: 'x = x + 2' }).set('Idempotency-Key', 'k1').expect(422);
    expect(other.body.code).toBe('idempotency_mismatch');
    // A slow first request keeps its key in flight.
    await c.expr('m = nd.ones((100, 100)); n = nd.zeros((1,))');
    const slowBody = { expr: [...Array.from({ length: 200 }, () => 'm = nd.dot(m, m) * 0.01'), 'n = n + 1'].join('\n') };
    const [a, b] = await Promise.all([
      c.post('/ops', slowBody).set('Idempotency-Key', 'k2').then((r) => r),
      c.post('/ops', slowBody).set('Idempotency-Key', 'k2').then((r) => r),
    ]);
    // The second either found the key in flight (409) or, if the first had finished, got its replay.
    const second = [a, b].find((r) => r.status === 409 || r.headers['idempotent-replayed'] === 'true');
    expect(second).toBeDefined();
    if (second!.status === 409) expect(second!.body.code).toBe('idempotency_conflict');
    expect(await c.data('n')).toEqual([1]);
    // Another client's same key is its own.
    const d = await Client.open(srv.url);
    await d.expr('x = nd.array([10])');
    expect((await d.post('/ops', body).set('Idempotency-Key', 'k1').expect(200)).body.outputs.x.data).toEqual([11]);
  });

  it('two clients at one address with one key on POST /v1/sessions get two sessions (no verified credential, no replay)', async () => {
    const srv = await server({});
    const a = await request(srv.url).post('/v1/sessions').set('Idempotency-Key', 'same').send({}).expect(201);
    const b = await request(srv.url).post('/v1/sessions').set('Idempotency-Key', 'same').send({}).expect(201);
    expect(b.body.id).not.toBe(a.body.id);
    expect(b.body.token).not.toBe(a.body.token);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
  });

  it('with API keys, a retried creation is replayed for the same key only', async () => {
    const srv = await server({ GRADSERVE_API_KEYS: 'alice,bob' });
    const a1 = await request(srv.url).post('/v1/sessions').set('X-API-Key', 'alice').set('Idempotency-Key', 'k').send({}).expect(201);
    const a2 = await request(srv.url).post('/v1/sessions').set('X-API-Key', 'alice').set('Idempotency-Key', 'k').send({}).expect(201);
    expect(a2.body.id).toBe(a1.body.id);
    expect(a2.headers['idempotent-replayed']).toBe('true');
    const b = await request(srv.url).post('/v1/sessions').set('X-API-Key', 'bob').set('Idempotency-Key', 'k').send({}).expect(201);
    expect(b.body.id).not.toBe(a1.body.id);
    // A forged bearer token is no credential: a session's route with one is never replayed from another's record.
    const forged = await request(srv.url).post(`/v1/sessions/${a1.body.id}/ops`).set('Authorization', 'Bearer forged').set('Idempotency-Key', 'k').send({ expr: 'x = nd.ones((1,))' });
    expect(forged.status).toBe(401);
  });
  it('the answers kept are bounded in bytes (the oldest go first), and a deleted session\'s records go with it', async () => {
    const srv = await server({ GRADSERVE_IDEMPOTENCY_BYTES: '3000' });
    const gauge = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await request(srv.url).get('/metrics')).text)![1]);
    const c = await Client.open(srv.url);
    await c.expr('x = nd.zeros((1,)); big = nd.ones((400,))');
    const bump = { expr: 'x = x + 1', fetch: ['x'] };
    await c.post('/ops', bump).set('Idempotency-Key', 'a').expect(200);
    expect((await c.post('/ops', bump).set('Idempotency-Key', 'a').expect(200)).headers['idempotent-replayed']).toBe('true');
    // an answer of about 1,000 bytes twice: the third pushes the first out of the 3,000-byte budget
    const wide = { expr: 'x = x + 1', fetch: ['x', 'big'], format: 'flat' };
    await c.post('/ops', wide).set('Idempotency-Key', 'b').expect(200);
    await c.post('/ops', wide).set('Idempotency-Key', 'c').expect(200);
    await c.post('/ops', wide).set('Idempotency-Key', 'd').expect(200);
    expect(await gauge('gradserve_idempotency_bytes')).toBeLessThanOrEqual(3000);
    const rerun = await c.post('/ops', bump).set('Idempotency-Key', 'a').expect(200);
    expect(rerun.headers['idempotent-replayed']).toBeUndefined();
    expect(rerun.body.outputs.x.data).toEqual([5]);
    expect((await c.post('/ops', wide).set('Idempotency-Key', 'd').expect(200)).headers['idempotent-replayed']).toBe('true');
    // an answer larger than the whole budget is not kept: its retry runs again
    const huge = { expr: 'x = x + 1', fetch: ['x', 'big'], format: 'nested' };
    await c.expr('big = nd.ones((2000,))');
    await c.post('/ops', huge).set('Idempotency-Key', 'e').expect(200);
    expect((await c.post('/ops', huge).set('Idempotency-Key', 'e').expect(200)).headers['idempotent-replayed']).toBeUndefined();
    expect(await gauge('gradserve_idempotency_entries')).toBeGreaterThan(0);
    await c.del().expect(204);
    expect(await gauge('gradserve_idempotency_entries')).toBe(0);
    expect(await gauge('gradserve_idempotency_bytes')).toBe(0);
  });
});

describe('metrics', () => {
  it('exposes requests, latency, sessions, bytes, tape nodes, ops and quota refusals', async () => {
    const srv = await server({ GRADSERVE_MAX_ARRAY_ELEMENTS: '10' });
    const c = await Client.open(srv.url);
    await c.expr('x = nd.ones((4,)); y = x + 1');
    await c.post('/ops', { expr: 'z = nd.ones((100,))' }).expect(413);
    const text = (await request(srv.url).get('/metrics').expect(200)).text;
    expect(text).toMatch(/gradserve_http_requests_total\{route="\/v1\/sessions\/:sid\/ops",method="POST",status="200"\} 1/);
    expect(text).toMatch(/gradserve_http_request_duration_seconds_bucket/);
    expect(text).toMatch(/gradserve_sessions 1/);
    expect(text).toMatch(/gradserve_bytes 32/);
    expect(text).toMatch(/gradserve_tape_nodes 0/);
    expect(text).toMatch(/gradserve_ops_total\{op="add"\} [1-9]/);
    expect(text).toMatch(/gradserve_quota_refusals_total\{limit="array_elements"\} 1/);
  });

  it('ended sessions are remembered up to GRADSERVE_REMEMBERED_SESSIONS, the oldest forgotten first', async () => {
    const srv = await server({ GRADSERVE_REMEMBERED_SESSIONS: '2' });
    const cs = [await Client.open(srv.url), await Client.open(srv.url), await Client.open(srv.url)];
    for (const c of cs) await request(srv.url).delete(`/v1/sessions/${c.sid}`).set('Authorization', `Bearer ${c.token}`).expect(204);
    expect((await cs[0]!.get('').expect(404)).body).not.toHaveProperty('session_state');
    for (const c of cs.slice(1)) expect((await c.get('').expect(404)).body).toMatchObject({ session_state: 'deleted' });
  });
});
