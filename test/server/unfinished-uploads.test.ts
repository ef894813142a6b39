/**
 * Unfinished uploads against a real server process (issue 15, finding 9: ten unfinished 63 MB
 * uploads raised RSS by 600 MB, and it stayed after they closed). With the default budget of
 * request bodies in flight (256 MiB), four 60 MB uploads held open fit and a fifth is refused with
 * 503 before it is read; once the four close, their bytes are released and the process's resident
 * memory returns to what it was before them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { settledRss, spawnServer, type ChildServer, GC_NODE_ARGS } from '../helpers/spawn.js';
import { call } from '../helpers/http.js';

const SIZE = 60 * 2 ** 20;
let srv: ChildServer;
beforeAll(async () => {
  srv = await spawnServer({ GRADSERVE_RATE_LIMIT_MAX: '0' }, {
    nodeArgs: [...GC_NODE_ARGS],
  });
}, 60000);
afterAll(async () => { expect(await srv.stop()).toBe(0); });

async function inFlight(): Promise<number> {
  const m = await call(srv.url, 'GET', '/metrics');
  return Number(/^gradserve_body_bytes_in_flight (\S+)$/m.exec(String(m.json))![1]);
}

/** An upload with `sent` bytes of its body sent; `answer` is what the server wrote back. */
async function unfinished(sid: string, token: string, sent: number): Promise<{ socket: Socket; answer: () => string; failed: () => boolean }> {
  const socket = connect(srv.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let got = '';
  socket.on('data', (d) => { got += d.toString('latin1'); });
  let failed = false;
  socket.on('error', () => { failed = true; });
  socket.write(`POST /v1/sessions/${sid}/arrays?name=u HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/x-npy\r\nContent-Length: ${SIZE}\r\n\r\n`);
  await new Promise<void>((r) => socket.write(Buffer.alloc(sent), () => r()));
  return { socket, answer: () => got, failed: () => failed };
}

/** Holds four unfinished uploads, checks a fifth is refused, closes them: the RSS while held. */
async function holdAndClose(sid: string, token: string): Promise<number> {
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await unfinished(sid, token, SIZE - 1));
  expect(await inFlight()).toBe(4 * SIZE);
  const rssHeld = srv.rss();

  // The fifth writes its whole body before it reads, as Python's http.client does: the body is
  // read and dropped, and the 503 reaches it on a connection that stays usable.
  const fifth = await unfinished(sid, token, SIZE);
  for (let t = 0; t < 200 && !fifth.answer().includes('body_bytes_in_flight'); t++) await new Promise((r) => setTimeout(r, 50));
  expect(fifth.answer()).toMatch(/^HTTP\/1\.1 503/);
  expect(fifth.answer()).toContain('body_bytes_in_flight');
  expect(fifth.failed()).toBe(false);
  fifth.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let t = 0; t < 100 && !/HTTP\/1\.1 200/.test(fifth.answer()); t++) await new Promise((r) => setTimeout(r, 50));
  expect(fifth.answer()).toMatch(/HTTP\/1\.1 200/);
  fifth.socket.destroy();

  for (const h of held) h.socket.destroy();
  for (let t = 0; t < 100 && (await inFlight()) !== 0; t++) await new Promise((r) => setTimeout(r, 50));
  expect(await inFlight()).toBe(0);
  return rssHeld;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

describe('unfinished uploads', () => {
  it('four 60 MB uploads held open fit the budget, a fifth gets 503; closing them releases the bytes and the resident memory', { timeout: 120000 }, async () => {
    const s = await call(srv.url, 'POST', '/v1/sessions', null, {});
    // a first round pays for the code paths and the allocator's arenas
    await holdAndClose(s.json.id, s.json.token);
    const warm = await settledRss(srv, { pauseMs: 400 });
    const held = await holdAndClose(s.json.id, s.json.token);
    // At most a tenth of what holding the bodies added may stay resident (the bug kept all of it).
    // Measured against the rise, not the baseline: the baseline itself moved between 137 and 163
    // MiB from run to run, more than a tenth of it, while 240 MB of bodies came and went.
    const ceiling = warm + 0.1 * (held - warm);
    // On a loaded machine the collections that free the bodies may take a few rounds to settle.
    const after = await settledRss(srv, { ceiling, rounds: 9, pauseMs: 400 });
    console.log(`unfinished uploads: rss after a warm-up round ${MiB(warm)} MiB, holding 4 x 60 MB ${MiB(held)} MiB, after they closed ${MiB(after)} MiB`);
    expect(held).toBeGreaterThan(warm + 3 * SIZE); // the bodies were really held
    expect(after).toBeLessThanOrEqual(ceiling);
  });
});
