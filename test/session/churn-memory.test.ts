/**
 * Memory creep (issue 15, finding 10): rounds of 1,000 sessions, each with arrays, gradients, a
 * tape kept by retain_graph and drawn as SVG, and a request carrying an Idempotency-Key, created
 * and deleted against a real server process. Every round after the warm-up must settle within
 * 10% of the resident memory after the warm-up round (JIT, allocator arenas and the SVG renderer
 * are paid for once there), with no native bytes, tape nodes or idempotency records left.
 *
 * The creep this found: the answers kept for Idempotency-Key replay outlived their sessions
 * (whose tokens no longer verify, so nothing could replay them), about 75 MB per 1,000 sessions
 * here until 10,000 entries were held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricOf, settledRss, spawnServer, type ChildServer, GC_NODE_ARGS } from '../helpers/spawn.js';
import { call, send } from '../helpers/http.js';

const ROUNDS = Number(process.env.CHURN_ROUNDS ?? 5);
const PER_ROUND = Number(process.env.CHURN_SESSIONS ?? 1000);
const PARALLEL = 20;

let srv: ChildServer;
beforeAll(async () => {
  srv = await spawnServer({ GRADSERVE_RATE_LIMIT_MAX: '0', GRADSERVE_CHECK_RESPONSES: '0' }, {
    nodeArgs: [...GC_NODE_ARGS],
  });
}, 60000);
afterAll(async () => { expect(await srv.stop()).toBe(0); });

const FILL = [
  'w = nd.random.normal(shape=(64, 64))',
  'b = nd.zeros((64,))',
  'x = nd.random.uniform(shape=(32, 64))',
  'w.attach_grad()',
  'b.attach_grad()',
  'with autograd.record():',
  '    h = nd.relu(nd.dot(x, w) + b)',
  '    loss = (h * h).mean()',
  'loss.backward(retain_graph=True)',
].join('\n');

async function life(i: number): Promise<void> {
  const s = await call(srv.url, 'POST', '/v1/sessions', null, { seed: i });
  if (s.status !== 201) throw new Error(`create: ${s.status}`);
  const p = `/v1/sessions/${s.json.id}`;
  const auth = `Bearer ${s.json.token}`;
  const f = await call(srv.url, 'POST', `${p}/ops`, s.json.token, { expr: FILL, fetch: ['w.grad', 'b.grad', 'loss'], format: i % 2 ? 'base64' : 'nested' });
  if (f.status !== 200) throw new Error(`fill: ${f.status} ${JSON.stringify(f.json).slice(0, 300)}`);
  const tape = f.json.outputs.loss.tape as string;
  const svg = await send(srv.url, { method: 'GET', path: `${p}/tapes/${tape}?format=svg`, headers: { authorization: auth } });
  if (svg.status !== 200 || !svg.body.toString().includes('<svg')) throw new Error(`svg: ${svg.status}`);
  const idem = await send(srv.url, {
    method: 'POST', path: `${p}/ops`,
    headers: { authorization: auth, 'content-type': 'application/json', 'idempotency-key': `step-${i}` },
    body: JSON.stringify({ expr: 'z = nd.ones((128, 128)) * 2', fetch: ['z', 'w'] }),
  });
  if (idem.status !== 200) throw new Error(`idempotent: ${idem.status}`);
  const d = await call(srv.url, 'DELETE', p, s.json.token);
  if (d.status !== 204) throw new Error(`delete: ${d.status}`);
}

async function round(r: number): Promise<void> {
  let next = r * PER_ROUND;
  const end = next + PER_ROUND;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < end) await life(next++);
  }));
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

describe('memory creep', () => {
  it(`${ROUNDS} rounds of ${PER_ROUND} sessions with arrays, gradients, a tape and an Idempotency-Key: each settles within 10% of the warm-up round`, { timeout: 400000 }, async () => {
    await round(0);
    const warm = await settledRss(srv);
    const after: number[] = [];
    for (let r = 1; r < ROUNDS; r++) {
      await round(r);
      after.push(await settledRss(srv));
    }
    console.log(`churn: rss after the warm-up round ${MiB(warm)} MiB, after each later round ${after.map(MiB).join(', ')} MiB`);
    expect(await metricOf(srv, 'gradserve_bytes')).toBe(0);
    expect(await metricOf(srv, 'gradserve_sessions')).toBe(0);
    expect(await metricOf(srv, 'gradserve_tape_nodes')).toBe(0);
    expect(await metricOf(srv, 'gradserve_idempotency_entries')).toBe(0);
    for (const rss of after) expect(rss).toBeLessThanOrEqual(warm * 1.1);
  });
});
