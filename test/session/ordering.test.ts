/**
 * Concurrency: many clients on many sessions at once, and many parallel requests on one session,
 * give the results of the sequential run. Requests of one session apply one at a time in arrival
 * order: to fix that order, a client pipelines its requests on one keep-alive connection (HTTP/1.1
 * answers them in order, and the server queues them as they arrive).
 *
 * Each request is order-dependent three ways: x = 3x + i (a different value for every order),
 * h = concat(h, [i]) (the arrival order itself), and a draw from the session's seeded random
 * stream (whose counter advances with every request).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { startServer, type TestServer } from '../helpers/server.js';
import { call } from '../helpers/http.js';

let srv: TestServer;
beforeAll(async () => {
  // No rate limit: one test client sends hundreds of requests from one address in a burst.
  srv = await startServer({ GRADSERVE_RATE_LIMIT_MAX: '0' });
});
afterAll(async () => { await srv.close(); });

interface Sess { sid: string; token: string }

async function open(seed: number): Promise<Sess> {
  const r = await call(srv.url, 'POST', '/v1/sessions', null, { seed, default_dtype: 'float64' });
  expect(r.status).toBe(201);
  const s = { sid: r.json.id, token: r.json.token };
  const init = await call(srv.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, { expr: 'x = nd.array([0]); h = nd.zeros((0,)); r = nd.zeros((3,))' });
  expect(init.status).toBe(200);
  return s;
}

const step = (i: number) => ({
  expr: `x = x * 3 + ${i}\nh = nd.concat(h, nd.array([${i}]), dim=0)\nr = r + nd.random.normal(shape=(3,))`,
  fetch: ['x'],
});

/** Sends all requests back to back on one TCP connection and parses the answers in order. */
function pipelined(url: string, reqs: { path: string; token: string; body: unknown }[]): Promise<{ status: number; json: any }[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    const answers: { status: number; json: any }[] = [];
    let buf = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('connect', () => {
      // One write: all requests are on the wire before the first answer comes back.
      sock.write(reqs.map((r) => {
        const body = JSON.stringify(r.body);
        return `POST ${r.path} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${r.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      }).join(''));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /content-length:\s*(\d+)/i.exec(head);
        if (!m) { reject(new Error(`answer without content-length:\n${head}`)); sock.destroy(); return; }
        const len = Number(m[1]);
        if (buf.length < end + 4 + len) break;
        const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
        buf = buf.subarray(end + 4 + len);
        answers.push({ status: Number(head.split(' ')[1]), json: JSON.parse(body) });
        if (answers.length === reqs.length) { sock.end(); resolve(answers); return; }
      }
    });
  });
}

async function read(s: Sess, name: string): Promise<number[]> {
  const r = await call(srv.url, 'GET', `/v1/sessions/${s.sid}/arrays/${name}?format=flat`, s.token);
  expect(r.status).toBe(200);
  return r.json.data;
}

/** x after each of steps 0..n-1, applied in order from x = 0. */
function expectedX(order: number[]): number[] {
  let x = 0;
  return order.map((i) => (x = x * 3 + i));
}

const N_SESSIONS = 20;
const N_REQUESTS = 20;

describe('concurrency', () => {
  it(`${N_SESSIONS} sessions x ${N_REQUESTS} pipelined requests at once = the sequential run`, { timeout: 60000 }, async () => {
    const order = Array.from({ length: N_REQUESTS }, (_, i) => i);

    // The sequential run: one session, each request awaited before the next is sent.
    const seq = await open(42);
    const seqX: number[] = [];
    for (const i of order) {
      const r = await call(srv.url, 'POST', `/v1/sessions/${seq.sid}/ops`, seq.token, step(i));
      expect(r.status).toBe(200);
      seqX.push(r.json.outputs.x.data[0]);
    }
    expect(seqX).toEqual(expectedX(order));
    const seqFinal = { x: await read(seq, 'x'), h: await read(seq, 'h'), r: await read(seq, 'r') };
    expect(seqFinal.h).toEqual(order);

    // The concurrent run: every session pipelines the same requests, all sessions at once.
    const sessions = await Promise.all(Array.from({ length: N_SESSIONS }, () => open(42)));
    const answers = await Promise.all(sessions.map((s) =>
      pipelined(srv.url, order.map((i) => ({ path: `/v1/sessions/${s.sid}/ops`, token: s.token, body: step(i) })))));
    for (const [k, s] of sessions.entries()) {
      expect(answers[k].map((a) => a.status)).toEqual(order.map(() => 200));
      // Each answer saw exactly the state after the requests before it.
      expect(answers[k].map((a) => a.json.outputs.x.data[0])).toEqual(seqX);
      const final = { x: await read(s, 'x'), h: await read(s, 'h'), r: await read(s, 'r') };
      expect(final).toEqual(seqFinal);
    }
  });

  it('parallel requests on one session from many connections apply one at a time (serializable)', { timeout: 60000 }, async () => {
    const s = await open(7);
    await call(srv.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, { expr: 'c = nd.array([0])' });
    const n = 60;
    // Separate connections: arrival order is up to the network, but each request must see the
    // state after a prefix of the others, never an interleaving.
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => call(srv.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, {
      expr: `c = c + 1\nx = x * 3 + ${i}\nh = nd.concat(h, nd.array([${i}]), dim=0)`,
      fetch: ['c', 'x'],
    })));
    expect(rs.map((r) => r.status)).toEqual(rs.map(() => 200));
    // The counter: every request saw a distinct count, 1..n.
    const counts = rs.map((r) => r.json.outputs.c.data[0]).sort((a: number, b: number) => a - b);
    expect(counts).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // The arrival order the server used is h; x and each answer must agree with it exactly.
    // (x overflows float64's exact range after ~33 steps; compare in the same float arithmetic.)
    const h = await read(s, 'h');
    expect([...h].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    const xs = expectedX(h);
    rs.forEach((r, i) => {
      const pos = h.indexOf(i);
      expect(r.json.outputs.c.data[0]).toBe(pos + 1);
      expect(r.json.outputs.x.data[0]).toBe(xs[pos]);
    });
    expect((await read(s, 'x'))[0]).toBe(xs[n - 1]);
  });

  it('sessions stay isolated under concurrent traffic: each sees only its own names', { timeout: 60000 }, async () => {
    const sessions = await Promise.all(Array.from({ length: 10 }, (_, k) => open(100 + k)));
    await Promise.all(sessions.map((s, k) => Promise.all(Array.from({ length: 10 }, (_, j) =>
      call(srv.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, { expr: `own_${k}_${j} = nd.array([${k * 100 + j}])` })))));
    for (const [k, s] of sessions.entries()) {
      const list = await call(srv.url, 'GET', `/v1/sessions/${s.sid}/arrays`, s.token);
      const names = (list.json.arrays as { name: string }[]).map((a) => a.name).filter((n) => n.startsWith('own_')).sort();
      expect(names).toEqual(Array.from({ length: 10 }, (_, j) => `own_${k}_${j}`).sort());
      // Another session's token opens nothing here.
      const other = sessions[(k + 1) % sessions.length];
      expect((await call(srv.url, 'GET', `/v1/sessions/${s.sid}/arrays`, other.token)).status).toBe(401);
    }
  });
});
