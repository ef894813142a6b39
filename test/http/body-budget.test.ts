/**
 * Request bodies in flight are bounded across the process (issue 15, finding 9). Real sockets
 * (node:net) hold unfinished uploads open: while they hold the budget a new large body is refused
 * with 503 + Retry-After before it is read, a small one still passes, and once the uploads close
 * (or stall past the idle timeout, which answers 408 and closes them) their bytes are released.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import request from 'supertest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { writeNpy } from '../../src/session/codec.js';

const MiB = 2 ** 20;
let srv: TestServer;
let c: Client;
beforeAll(async () => {
  srv = await startServer({
    GRADSERVE_MAX_BODY_BYTES: String(4 * MiB),
    GRADSERVE_MAX_BODY_BYTES_IN_FLIGHT: String(7 * MiB),
    GRADSERVE_BODY_IDLE_TIMEOUT_MS: '1500',
  });
  c = await Client.open(srv.url);
});
afterAll(async () => { await srv.close(); });

/** A float32 .npy of n elements (n * 4 + 128 bytes). */
const npy = (n: number) => writeNpy(new Uint8Array(n * 4), [n], 'float32');

interface Held { socket: Socket; answer: Promise<string> }

/** Opens a socket and sends the head of an upload and `sent` bytes of its body, no more. */
async function hold(head: Record<string, string>, sent: Buffer): Promise<Held> {
  const u = new URL(srv.url);
  const socket = connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let got = '';
  const answer = new Promise<string>((resolve) => {
    socket.on('data', (d) => { got += d.toString('latin1'); });
    socket.on('close', () => resolve(got));
    socket.on('error', () => {});
  });
  const lines = [`POST /v1/sessions/${c.sid}/arrays?name=held HTTP/1.1`, `Host: ${u.host}`, `Authorization: Bearer ${c.token}`, 'Content-Type: application/x-npy'];
  for (const [k, v] of Object.entries(head)) lines.push(`${k}: ${v}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  socket.write(sent);
  return { socket, answer };
}

async function inFlight(): Promise<number> {
  const r = await request(srv.url).get('/metrics').expect(200);
  return Number(/^gradserve_body_bytes_in_flight (\S+)$/m.exec(r.text)![1]);
}

async function until(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const upload = (body: Buffer) => c.post('/arrays?name=up').set('Content-Type', 'application/x-npy').send(body);

describe('request bodies in flight', () => {
  it('unfinished uploads hold the budget: a new large body gets 503 + Retry-After, a small one passes, closing releases it', async () => {
    const held = await Promise.all([0, 1].map(() => hold({ 'Content-Length': String(3 * MiB) }, Buffer.alloc(64 * 1024))));
    await until(async () => (await inFlight()) === 6 * MiB);

    const r = await upload(npy(MiB / 2)); // 2 MiB + 128 bytes: more than the 1 MiB left
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(r.body.limit).toBe('body_bytes_in_flight');
    expect(r.body.detail).toMatch(/GRADSERVE_MAX_BODY_BYTES_IN_FLIGHT/);
    // small requests are not starved by the large ones
    await c.post('/ops', { expr: 'x = nd.ones((3,))' }).expect(200);

    for (const h of held) h.socket.destroy();
    await until(async () => (await inFlight()) === 0);
    expect((await upload(npy(MiB / 2))).status).toBe(201);
    expect(await inFlight()).toBe(0);
  });

  it('a chunked body is counted as it arrives and refused when it passes the budget', async () => {
    const held = await Promise.all([0, 1].map(() => hold({ 'Content-Length': String(3 * MiB) }, Buffer.alloc(1024))));
    await until(async () => (await inFlight()) === 6 * MiB);
    const chunk = Buffer.alloc(512 * 1024);
    const streamer = await hold({ 'Transfer-Encoding': 'chunked' }, Buffer.alloc(0));
    for (let i = 0; i < 4 && !streamer.socket.destroyed; i++) {
      streamer.socket.write(`${chunk.length.toString(16)}\r\n`);
      streamer.socket.write(chunk);
      streamer.socket.write('\r\n');
      await new Promise((r) => setTimeout(r, 50));
    }
    const answer = await streamer.answer;
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    expect(answer).toMatch(/retry-after: 1/i);
    expect(answer).toContain('body_bytes_in_flight');
    for (const h of held) h.socket.destroy();
    await until(async () => (await inFlight()) === 0);
  });

  it('a stalled upload is answered 408 and closed after the idle timeout, and its bytes released', async () => {
    const t0 = Date.now();
    const stalled = await hold({ 'Content-Length': String(2 * MiB) }, Buffer.alloc(1000));
    expect(await inFlight()).toBe(2 * MiB);
    const answer = await stalled.answer; // resolves when the server closes the socket
    const waited = Date.now() - t0;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(answer).toContain('body_idle_timeout');
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(6000);
    await until(async () => (await inFlight()) === 0);
  });

  it('a large body over the process memory budget is refused before it is read; small ones pass', async () => {
    const tight = await startServer({ GRADSERVE_MAX_TOTAL_BYTES: String(MiB) });
    try {
      const t = await Client.open(tight.url);
      const r = await t.post('/arrays?name=big').set('Content-Type', 'application/x-npy').send(npy(MiB / 2));
      expect(r.status).toBe(503);
      expect(r.body.limit).toBe('total_bytes');
      expect(r.headers['retry-after']).toBe('1');
      // with the process full of arrays, the small request that deletes them still passes
      await t.post('/ops', { expr: 'z = nd.zeros((262140,))' }).expect(200); // 16 bytes short of the limit
      await t.post('/ops', { ops: [{ op: 'delete', args: ['z'] }] }).expect(200);
    } finally {
      await tight.close();
    }
  });

  describe('small JSON bodies, whole with their headers or not', () => {
    /** Writes each part to one socket, `gap` ms apart, and resolves with all it was answered once `answers` responses came. */
    async function exchange(parts: string[], answers: number, gap = 0): Promise<string> {
      const u = new URL(srv.url);
      const socket = connect(Number(u.port), u.hostname);
      await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
      let got = '';
      const done = new Promise<string>((resolve) => {
        socket.on('data', (d) => {
          got += d.toString('latin1');
          if ((got.match(/HTTP\/1\.1 \d{3} /g) ?? []).length >= answers && /\}$/.test(got)) resolve(got);
        });
        socket.on('close', () => resolve(got));
      });
      for (const p of parts) {
        socket.write(p);
        if (gap) await new Promise((r) => setTimeout(r, gap));
      }
      const answer = await done;
      socket.destroy();
      return answer;
    }
    const post = (body: string, length = Buffer.byteLength(body)) =>
      `POST /v1/sessions/${c.sid}/ops HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${c.token}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n${body}`;

    it('two requests in one write (pipelined) are each parsed and answered, and hold nothing after', async () => {
      const a = JSON.stringify({ expr: 'p = nd.array([1, 2]) * 3', fetch: ['p'] });
      const b = JSON.stringify({ expr: 'q = p + 1', fetch: ['q'] });
      const answer = await exchange([post(a) + post(b)], 2);
      expect(answer.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 200 ', 'HTTP/1.1 200 ']);
      expect(answer).toMatch(/"p":\{[^}]*"data":\[3,6\][^]*"q":\{[^}]*"data":\[4,7\]/);
      await until(async () => (await inFlight()) === 0);
    });

    it('a whole body that no route reads (an unknown path) leaves the connection to the next request', async () => {
      const lost = post(JSON.stringify({ expr: 'u = nd.ones((1,))' })).replace(`/v1/sessions/${c.sid}/ops`, '/v1/nowhere');
      const answer = await exchange([lost + post(JSON.stringify({ expr: 'v = nd.ones((2,)) * 2', fetch: ['v'] }))], 2);
      expect(answer.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 404 ', 'HTTP/1.1 200 ']);
      expect(answer).toContain('[2,2]');
      await until(async () => (await inFlight()) === 0);
    });

    it('a body that comes after its headers, in pieces, is read whole', async () => {
      const body = JSON.stringify({ expr: 'r = nd.array([5, 6, 7]) - 1', fetch: ['r'] });
      const whole = post(body);
      const cut = whole.length - body.length;
      const answer = await exchange([whole.slice(0, cut), body.slice(0, 9), body.slice(9)], 1, 30);
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      expect(answer).toContain('[4,5,6]');
      await until(async () => (await inFlight()) === 0);
    });

    it('a small body that stops short of its Content-Length is answered 408 after the idle timeout', async () => {
      const t0 = Date.now();
      const answer = await exchange([post('{"expr":', 40)], 1);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(answer).toContain('body_idle_timeout');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      await until(async () => (await inFlight()) === 0);
    });
  });
});
