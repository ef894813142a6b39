/**
 * Replicas sharing one state directory (GRADSERVE_STATE_DIR with GRADSERVE_REPLICA, issue 19 item 4),
 * as real server processes: a replica killed for good has its sessions taken over by the next one
 * that is asked for them, with every acknowledged step and the next step bit for bit the
 * uninterrupted run's; sessions change hands between live replicas without losing or doubling a
 * change; two replicas racing for one session never both serve it; ended sessions stay ended, and
 * a request without the session's token moves nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRecords } from '../../src/durability/journal.js';
import { SETUP, STEP } from '../helpers/training.js';
import { spawnServer, type ChildServer } from '../helpers/spawn.js';
import { call, send } from '../helpers/http.js';

const servers: ChildServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
});

async function replica(dir: string | null, name: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const s = await spawnServer({
    GRADSERVE_RATE_LIMIT_MAX: '0', GRADSERVE_LOG_LEVEL: 'info',
    ...(dir ? { GRADSERVE_STATE_DIR: dir, GRADSERVE_REPLICA: name, GRADSERVE_STATE_LEASE_MS: '1000' } : {}),
    ...env,
  });
  servers.push(s);
  return s;
}


interface Sess { path: string; token: string }

async function open(url: string): Promise<Sess> {
  const s = await call(url, 'POST', '/v1/sessions', null, { seed: 11 });
  expect(s.status).toBe(201);
  return { path: `/v1/sessions/${s.json.id}`, token: s.json.token };
}

async function ops(url: string, s: Sess, expr: string, fetch: string[] = [], format = 'base64') {
  const r = await call(url, 'POST', `${s.path}/ops`, s.token, { expr, fetch, format });
  if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function reference(steps: number): Promise<string[]> {
  const srv = await replica(null, '');
  const s = await open(srv.url);
  await ops(srv.url, s, SETUP);
  const out: string[] = [];
  for (let i = 0; i < steps; i++) out.push((await ops(srv.url, s, STEP, ['w'])).outputs.w.data);
  return out;
}

const tmp = () => mkdtempSync(join(tmpdir(), 'gradserve-shared-'));
/** The tenures of a session: epoch → replica. */
const tenures = (dir: string, sid: string) => Object.fromEntries(readdirSync(join(dir, 'sessions', sid)).map((e) => [e, readFileSync(join(dir, 'sessions', sid, e), 'utf8')]));
const sidOf = (s: Sess) => s.path.split('/').pop()!;

describe('replicas sharing a state directory', () => {
  it('a replica killed for good: the next one asked takes its session over with every acknowledged step, and the next step is bit for bit the uninterrupted one', { timeout: 120000 }, async () => {
    const ref = await reference(10);
    const dir = tmp();
    const [r1, r2] = [await replica(dir, 'r1'), await replica(dir, 'r2')];
    const s = await open(r1.url);
    await ops(r1.url, s, SETUP);
    let acked = 0;
    while (acked < 4) expect((await ops(r1.url, s, STEP, ['w'])).outputs.w.data).toBe(ref[acked++]);
    const inflight = call(r1.url, 'POST', `${s.path}/ops`, s.token, { expr: STEP }).catch(() => null);
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5)));
    r1.proc.kill('SIGKILL');
    await r1.exited;
    const answered = await inflight;
    const w = (await call(r2.url, 'GET', `${s.path}/arrays/w?format=base64`, s.token)).json.data;
    const at = ref.indexOf(w);
    if (answered?.status === 200) expect(at).toBe(acked);
    else expect([acked - 1, acked]).toContain(at);
    acked = at + 1;
    while (acked < ref.length) expect((await ops(r2.url, s, STEP, ['w'])).outputs.w.data).toBe(ref[acked++]);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'r1', 2: 'r2' });
    // r2's journal holds the session on its own now: r1's is never read again for it.
    const mine = readRecords(readFileSync(join(dir, 'replicas', 'r2', 'journal.log'))).records.map((r) => r.header);
    expect(mine[0]).toMatchObject({ t: 'create', epoch: 2, copy: true });
    expect(mine.find((h) => h.t === 'adopted')).toMatchObject({ epoch: 2 });

    // r2 restarts on its own journal and still holds it; r1, back, takes it over from live r2.
    r2.proc.kill('SIGKILL');
    await r2.exited;
    const r2b = await replica(dir, 'r2');
    const v = (await call(r2b.url, 'GET', `${s.path}/arrays/w?format=base64`, s.token)).json.data;
    expect(v).toBe(ref[ref.length - 1]);
    const r1b = await replica(dir, 'r1');
    expect((await call(r1b.url, 'GET', `${s.path}/arrays/w?format=base64`, s.token)).json.data).toBe(v);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'r1', 2: 'r2', 3: 'r1' });
  });

  it('a session passed back and forth between live replicas loses and doubles nothing', { timeout: 60000 }, async () => {
    const dir = tmp();
    const rs = [await replica(dir, 'a'), await replica(dir, 'b'), await replica(dir, 'c')];
    const s = await open(rs[0].url);
    await ops(rs[0].url, s, "c = nd.zeros((1,), dtype='float64')");
    for (let i = 0; i < 12; i++) {
      const out = await ops(rs[i % 3].url, s, 'c += 1', ['c'], 'nested');
      expect(out.outputs.c.data).toEqual([i + 1]);
    }
    expect(Object.keys(tenures(dir, sidOf(s))).length).toBe(12);
  });

  it('two replicas racing to take one session over never both serve it: every acknowledged change counts once', { timeout: 60000 }, async () => {
    const dir = tmp();
    const r1 = await replica(dir, 'r1');
    const s = await open(r1.url);
    await ops(r1.url, s, "c = nd.zeros((1,), dtype='float64')");
    r1.proc.kill('SIGKILL');
    await r1.exited;
    const [r2, r3] = [await replica(dir, 'r2'), await replica(dir, 'r3')];
    const N = 24;
    const statuses: number[] = [];
    // Each change carries its own Idempotency-Key and is sent until a replica acknowledges it.
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const r = await send([r2, r3][(i + attempt) % 2].url, {
          method: 'POST', path: `${s.path}/ops`,
          headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', 'idempotency-key': `k${i}` },
          body: JSON.stringify({ expr: 'c += 1' }),
        });
        statuses.push(r.status);
        if (r.status === 200) return;
        if (r.status !== 503) writeFileSync(`/tmp/replicas-race-${process.pid}.log`, `${r.body}\n---r2\n${r2.output()}\n---r3\n${r3.output()}`);
        expect(r.status, r.body.toString()).toBe(503);
        expect(JSON.parse(r.body.toString()).code).toBe('session_moved');
        await new Promise((ok) => setTimeout(ok, 10));
      }
      throw new Error(`change ${i} was never acknowledged`);
    }));
    expect(statuses.filter((x) => x === 200).length).toBe(N);
    const c = await call(r2.url, 'GET', `${s.path}/arrays/c`, s.token);
    expect(c.json.data).toEqual([N]);
    const t = tenures(dir, sidOf(s));
    expect(Object.values(t).every((o) => ['r1', 'r2', 'r3'].includes(o))).toBe(true);
  });

  it('an ended session stays ended on every replica, and a request without its token moves nothing', { timeout: 60000 }, async () => {
    const dir = tmp();
    const [a, b] = [await replica(dir, 'a'), await replica(dir, 'b')];
    const s = await open(a.url);
    await ops(a.url, s, 'x = nd.ones((2,))');
    const wrong = await call(b.url, 'GET', `${s.path}/arrays/x`, 'not-the-token');
    expect(wrong.status).toBe(404);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'a' });
    expect((await call(a.url, 'DELETE', s.path, s.token)).status).toBe(204);
    // The end is journaled, then a tombstone (a tenure without an owner) takes the next epoch.
    for (let i = 0; i < 50 && !tenures(dir, sidOf(s))[2]; i++) await new Promise((r) => setTimeout(r, 20));
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'a', 2: '' });
    expect((await call(b.url, 'GET', `${s.path}/arrays/x`, s.token)).status).toBe(404);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'a', 2: '' });
  });

  it('a copy left on a replica after a takeover expires there without ending the session where it lives now', { timeout: 60000 }, async () => {
    const dir = tmp();
    const env = { GRADSERVE_SWEEP_INTERVAL_MS: '200' };
    const [a, b] = [await replica(dir, 'a', env), await replica(dir, 'b', env)];
    const s0 = await call(a.url, 'POST', '/v1/sessions', null, { ttl_seconds: 2 });
    const s: Sess = { path: `/v1/sessions/${s0.json.id}`, token: s0.json.token };
    await ops(a.url, s, "c = nd.zeros((1,), dtype='float64')");
    // b takes it over; a, never asked again, keeps its stale copy until it expires.
    for (let i = 0; i < 8; i++) {
      await ops(b.url, s, 'c += 1');
      await new Promise((r) => setTimeout(r, 500));
    }
    expect((await ops(b.url, s, 'c += 1', ['c'], 'nested')).outputs.c.data).toEqual([9]);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'a', 2: 'b' });
  });

  it('a claimant that died before its takeover was whole leaves the session where it was: a restart keeps it there', { timeout: 60000 }, async () => {
    const dir = tmp();
    let r1 = await replica(dir, 'r1');
    const s = await open(r1.url);
    await ops(r1.url, s, "c = nd.ones((1,), dtype='float64') * 5");
    r1.proc.kill('SIGKILL');
    await r1.exited;
    // r2 claimed the next epoch and died before it wrote anything.
    writeFileSync(join(dir, 'sessions', sidOf(s), '2'), 'r2', { flag: 'wx' });
    r1 = await replica(dir, 'r1');
    // r1 started, let the session go (a newer claim exists) and compacted its journal: restarting
    // once more makes sure the compacted journal still holds it.
    r1.proc.kill('SIGKILL');
    await r1.exited;
    r1 = await replica(dir, 'r1');
    const r3 = await replica(dir, 'r3');
    expect((await call(r3.url, 'GET', `${s.path}/arrays/c`, s.token)).json.data).toEqual([5]);
    expect(tenures(dir, sidOf(s))).toEqual({ 1: 'r1', 2: 'r2', 3: 'r3' });
  });
});
