/**
 * Memory: 10,000 sessions created, filled (arrays, a recorded op, a gradient) and deleted, in
 * parallel batches, against a real server process. Afterwards the store holds no native bytes
 * (gradserve_bytes 0), and neither resident memory nor the JS heap grows from one part of the run
 * to the next. RSS is read from /proc/<pid>/status; a preloaded hook runs a full GC on SIGWINCH
 * before each reading (test/helpers/gc-preload.mjs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricOf, settledRss, spawnServer, type ChildServer, GC_NODE_ARGS } from '../helpers/spawn.js';
import { call } from '../helpers/http.js';

const TOTAL = Number(process.env.MEMORY_SESSIONS ?? 10000);
// Node 26's resident memory reaches its plateau only after a couple of thousand sessions (it rose
// 22-25 MiB in the first 2,250 after a warm-up of 1,000): the warm-up runs until it has.
const WARMUP = 2500;
const PARALLEL = 50;

let srv: ChildServer;
beforeAll(async () => {
  // The store remembers ended sessions up to a bound; the warm-up fills it, so what the run adds
  // after it is what the server keeps and should not.
  srv = await spawnServer({ GRADSERVE_RATE_LIMIT_MAX: '0', GRADSERVE_REMEMBERED_SESSIONS: String(WARMUP) }, {
    nodeArgs: [...GC_NODE_ARGS],
  });
}, 60000);
afterAll(async () => { expect(await srv.stop()).toBe(0); });

const FILL = [
  'a = nd.random.normal(shape=(16, 16))',
  "b = nd.ones((16,), dtype='float32')",
  "c = nd.arange(8, dtype='float64').reshape((2, 4))",
  'u = nd.array([[1, 2], [3, 4]])',
  'a.attach_grad()',
  'with autograd.record():',
  '    y = nd.dot(a, b).sum()',
  'y.backward()',
].join('\n');

/** One session's life: create; fill and read its gradient back (one request); delete. */
async function life(i: number): Promise<void> {
  const s = await call(srv.url, 'POST', '/v1/sessions', null, { seed: i });
  if (s.status !== 201) throw new Error(`create: ${s.status} ${JSON.stringify(s.json)}`);
  const p = `/v1/sessions/${s.json.id}`;
  const t = s.json.token;
  const f = await call(srv.url, 'POST', `${p}/ops`, t, { expr: FILL, fetch: ['a.grad', 'c'], format: i % 2 ? 'base64' : 'nested' });
  if (f.status !== 200 || !f.json.outputs['a.grad']?.data) throw new Error(`fill: ${f.status} ${JSON.stringify(f.json).slice(0, 300)}`);
  const d = await call(srv.url, 'DELETE', p, t);
  if (d.status !== 204) throw new Error(`delete: ${d.status}`);
}

async function run(from: number, to: number): Promise<void> {
  let next = from;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < to) await life(next++);
  }));
}

describe('memory', () => {
  it(`${TOTAL} sessions created, filled and deleted: native bytes back to 0, no growth from one part of the run to the next`, { timeout: 300000 }, async () => {
    await run(0, WARMUP);
    const parts = 4;
    const per = Math.floor((TOTAL - WARMUP) / parts);
    // A leak of 2 KiB a session adds this much to each part.
    const slack = per * 2048;
    const reading = async (after?: number) => ({
      rss: await settledRss(srv, after === undefined ? {} : { ceiling: after + slack, rounds: 11 }),
      heap: await metricOf(srv, 'nodejs_heap_size_used_bytes'),
    });
    const readings = [await reading()];
    const start = readings[0];
    const t0 = Date.now();
    for (let k = 0; k < parts; k++) {
      await run(WARMUP + k * per, k === parts - 1 ? TOTAL : WARMUP + (k + 1) * per);
      readings.push(await reading(readings[readings.length - 1].rss));
    }
    const end = readings[readings.length - 1];
    const secs = (Date.now() - t0) / 1000;
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    console.log(`memory: ${TOTAL} sessions (${TOTAL - WARMUP} after warm-up, in ${parts} parts) in ${secs.toFixed(1)} s; rss ${readings.map((r) => mib(r.rss)).join(' / ')} MiB; JS heap used ${readings.map((r) => mib(r.heap)).join(' / ')} MiB`);
    expect(await metricOf(srv, 'gradserve_bytes')).toBe(0);
    expect(await metricOf(srv, 'gradserve_sessions')).toBe(0);
    expect(await metricOf(srv, 'gradserve_tape_nodes')).toBe(0);
    // A leak grows with the sessions served, so every part of the run adds about as much as the
    // others. The allocator's and V8's high-water mark does not grow: a loaded machine can raise it
    // once, in any one part. The median growth of a part is therefore bounded tightly (it ignores
    // that one step), the whole run loosely.
    const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2; };
    const grew = (key: 'rss' | 'heap') => median(readings.slice(1).map((r, k) => r[key] - readings[k][key]));
    expect(grew('rss')).toBeLessThanOrEqual(slack);
    expect(grew('heap')).toBeLessThanOrEqual(start.heap * 0.025);
    expect(end.heap).toBeLessThanOrEqual(start.heap * 1.1);
    expect(end.rss).toBeLessThanOrEqual(start.rss * 1.5);
  });
});
