/**
 * The native stream's lanes: each stream's calls keep their order while the worker serves the
 * streams fairly, large products run in steps that give the same bits as one call, calls that
 * share buffers across streams keep queue order, and a deadline stops a stream's pending calls
 * between steps and marks what they write as failed. Assertions are about order and results;
 * the few about time compare two runs of the same test with generous margins.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Backend, Storage, View } from '../../src/engine/backend.js';
import { referenceBackend as ref } from '../../src/engine/reference.js';
import { loadNativeAddon, nativeBackend as nat } from '../../src/engine/native.js';
import { rng } from '../helpers/rng.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');

const flat = (n: number): View => ({ shape: [n], strides: [1], offset: 0 });
let defaultLimit = -1;
afterEach(() => {
  if (defaultLimit >= 0) addon.setInlineLimit(defaultLimit);
  defaultLimit = -1;
  addon.sync();
});

function filled(be: Backend, n: number, seed: number, dtype: 'float32' | 'float64' = 'float64'): Storage {
  const s = be.alloc(dtype, n);
  be.randomUniform(s, seed, 0, -1, 1);
  return s;
}

function same(got: Float64Array, want: Float64Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) expect(`${what}[${i}] = ${got[i]}`).toBe(`${what}[${i}] = ${want[i]}`);
  }
}

describe('the stream serves streams fairly', () => {
  it('a large product runs in steps and gives the bits of the same product in one call', async () => {
    // 1024^3 is 2^30 multiply-adds: four steps or more. Writing the product over an operand makes
    // the gemm go through a copy in one call (no steps), the reference for the bits.
    const n = 1024;
    for (const dtype of ['float32', 'float64'] as const) {
      const a = filled(nat, n * n, 11, dtype);
      const b = filled(nat, n * n, 12, dtype);
      const a2 = nat.alloc(dtype, n * n);
      nat.copyStrided(a, flat(n * n), a2);
      const c = nat.alloc(dtype, n * n);
      const before = addon.streamStats();
      nat.withStream!(7, () => nat.gemm(a, b, c, 1, n, n, n, false, true, 0, 0));
      await nat.flush(7);
      const after = addon.streamStats();
      expect(after.steps - before.steps).toBeGreaterThanOrEqual(4);
      nat.withStream!(7, () => nat.gemm(a2, b, a2, 1, n, n, n, false, true, 0, 0));
      await nat.flush(7);
      same(nat.readNumbers(c), nat.readNumbers(a2), dtype);
      for (const s of [a, b, a2, c]) nat.free(s);
    }
  }, 60_000);

  it('a large narrow product (n of two vectors or fewer) runs in steps of rows with the bits of one call', async () => {
    // 4100 x 4100 times 4100 x 32 is over 2^29 multiply-adds; k past a multiple of the narrow
    // path's 256-deep blocks and m past a multiple of its 16-row runs exercise both of its edges.
    const m = 4100, n = 32, k = 4100;
    for (const ta of [false, true]) {
      const a = filled(nat, m * k, 21, 'float32');
      const b = filled(nat, k * n, 22, 'float32');
      const b2 = nat.alloc('float32', k * n);
      nat.copyStrided(b, flat(k * n), b2);
      const c = nat.alloc('float32', m * n);
      const before = addon.streamStats();
      nat.withStream!(8, () => nat.gemm(a, b, c, 1, m, n, k, ta, false, 0, 0));
      await nat.flush(8);
      expect(addon.streamStats().steps - before.steps).toBeGreaterThanOrEqual(2);
      nat.withStream!(8, () => nat.gemm(a, b2, b2, 1, m, n, k, ta, false, 0, 0));
      await nat.flush(8);
      same(nat.readNumbers(c), nat.readNumbers(b2), `ta=${ta}`);
      for (const s of [a, b, b2, c]) nat.free(s);
    }
  }, 60_000);

  it('a large unary kernel runs in steps and gives the bits of the same kernel on smaller arrays', async () => {
    // 2^23 + 5 elements: steps of 2^22; its two halves, each under 2^23, run in one call each.
    const n = (1 << 23) + 5;
    const half = n >> 1;
    for (const dtype of ['float32', 'float64'] as const) {
      const x = filled(nat, n, 13, dtype);
      const y = nat.alloc(dtype, n);
      const before = addon.streamStats();
      nat.withStream!(8, () => nat.unary('tanh', x, y));
      await nat.flush(8);
      expect(addon.streamStats().steps - before.steps).toBeGreaterThanOrEqual(2);
      const lo = nat.alloc(dtype, half), hi = nat.alloc(dtype, n - half);
      const lo2 = nat.alloc(dtype, half), hi2 = nat.alloc(dtype, n - half);
      nat.copyStrided(x, { shape: [half], strides: [1], offset: 0 }, lo);
      nat.copyStrided(x, { shape: [n - half], strides: [1], offset: half }, hi);
      nat.unary('tanh', lo, lo2);
      nat.unary('tanh', hi, hi2);
      await nat.flush();
      const all = nat.readNumbers(y);
      same(all.subarray(0, half), nat.readNumbers(lo2), `${dtype} first half`);
      same(all.subarray(half), nat.readNumbers(hi2), `${dtype} second half`);
      for (const s of [x, y, lo, hi, lo2, hi2]) nat.free(s);
    }
  }, 60_000);

  it("a witness stream's product completes long before a busy stream's queue", async () => {
    const n = 2048;
    const a = filled(nat, n * n, 1, 'float32');
    const outs = Array.from({ length: 8 }, () => nat.alloc('float32', n * n));
    const order: string[] = [];
    const t0 = performance.now();
    nat.withStream!(21, () => { for (const o of outs) nat.gemm(a, a, o, 1, n, n, n, false, false, 0, 0); });
    const busy = nat.flush(21).then(() => order.push('busy'));
    const w = 512;
    const x = filled(nat, w * w, 2, 'float32');
    const y = nat.alloc('float32', w * w);
    // Behind eight 2048^3 products in one FIFO, this would wait for all of them.
    nat.withStream!(22, () => nat.gemm(x, x, y, 1, w, w, w, false, false, 0, 0));
    let witnessMs = 0;
    const witness = nat.flush(22).then(() => { witnessMs = performance.now() - t0; order.push('witness'); });
    await Promise.all([busy, witness]);
    const busyMs = performance.now() - t0;
    expect(order).toEqual(['witness', 'busy']);
    expect(witnessMs).toBeLessThan(busyMs / 2);
    // And the witness's product is right (against the reference on the same inputs).
    const rx = ref.alloc('float32', w * w);
    ref.writeNumbers(rx, nat.readNumbers(x));
    const ry = ref.alloc('float32', w * w);
    ref.gemm(rx, rx, ry, 1, w, w, w, false, false, 0, 0);
    const got = nat.readNumbers(y);
    const want = ref.readNumbers(ry);
    for (let i = 0; i < got.length; i += 997) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-3 * (1 + Math.abs(want[i])));
    for (const s of [a, x, y, ...outs]) nat.free(s);
  }, 120_000);

  /**
   * Three streams each run a random program over their own buffers (products large enough to be
   * stepped among elementwise calls, everything queued). Run one stream after another, then again
   * interleaved call by call: every buffer must end with the same bits.
   */
  it('each stream keeps its order under interleaving: results equal a sequential run', async () => {
    defaultLimit = addon.setInlineLimit(0);
    const r = rng(5);
    const n = 832; // 832^3 is over 2^29 multiply-adds: a product in steps
    const streams = [31, 32, 33];
    const programs = streams.map(() => Array.from({ length: 12 }, () => {
      const k = Math.floor(r() * 4);
      const [x, y, o] = [0, 1, 2].map(() => Math.floor(r() * 4));
      return { k, x, y, o };
    }));
    const buffers = () => streams.map((_, i) => Array.from({ length: 4 }, (_, j) => filled(nat, n * n, 100 + i * 10 + j)));
    const step = (b: Storage[], st: { k: number; x: number; y: number; o: number }) => {
      const [x, y, o] = [b[st.x], b[st.y], b[st.o]];
      switch (st.k) {
        case 0: nat.gemm(x, y, o === x || o === y ? b[3] : o, 1, n, n, n, false, false, 0, 0); break;
        case 1: nat.binary('add', x, flat(n * n), y, flat(n * n), o); break;
        case 2: nat.binaryScalar('mul', x, 0.25, false, o); break;
        default: nat.unary('tanh', x, o);
      }
    };
    // One stream after another, each flushed before the next starts.
    const alone = buffers();
    for (let i = 0; i < streams.length; i++) {
      nat.withStream!(streams[i], () => { for (const st of programs[i]) step(alone[i], st); });
      await nat.flush(streams[i]);
    }
    // Call by call, round robin across streams.
    const mixed = buffers();
    const before = addon.streamStats();
    for (let c = 0; c < 12; c++) {
      for (let i = 0; i < streams.length; i++) nat.withStream!(streams[i], () => step(mixed[i], programs[i][c]));
    }
    await Promise.all(streams.map((s) => nat.flush(s)));
    expect(addon.streamStats().steps).toBeGreaterThan(before.steps);
    for (let i = 0; i < streams.length; i++) {
      for (let j = 0; j < 4; j++) same(nat.readNumbers(mixed[i][j]), nat.readNumbers(alone[i][j]), `stream ${i} buffer ${j}`);
    }
    for (const b of [...alone, ...mixed]) for (const x of b) nat.free(x);
  }, 120_000);

  it('calls of different streams that share a buffer keep queue order', async () => {
    defaultLimit = addon.setInlineLimit(0);
    const n = 832;
    const a = filled(nat, n * n, 3);
    // The product alone first, for its bits.
    const product = nat.alloc('float64', n * n);
    nat.withStream!(40, () => nat.gemm(a, a, product, 1, n, n, n, false, false, 0, 0));
    await nat.flush(40);
    const p = nat.readNumbers(product);
    const shared = nat.alloc('float64', n * n);
    const seen = nat.alloc('float64', n * n);
    const later = nat.alloc('float64', n * n);
    // Stream 41 writes `shared` (a product in steps); stream 42 reads it, then overwrites it;
    // stream 41 reads it last. Each read must see the write queued just before it.
    nat.withStream!(41, () => nat.gemm(a, a, shared, 1, n, n, n, false, false, 0, 0));
    nat.withStream!(42, () => nat.binaryScalar('mul', shared, 2, false, seen));
    nat.withStream!(42, () => nat.fill(shared, 1));
    nat.withStream!(41, () => nat.binaryScalar('add', shared, 1, false, later));
    await Promise.all([nat.flush(41), nat.flush(42)]);
    same(nat.readNumbers(seen), p.map((v) => 2 * v), 'seen');
    expect(nat.readNumbers(later).every((v) => v === 2)).toBe(true);
    for (const x of [a, product, shared, seen, later]) nat.free(x);
  }, 60_000);
});

describe('deadlines', () => {
  it("stop a stream's pending calls between steps, mark what they write failed, and spare other streams", async () => {
    const n = 1536;
    const a = filled(nat, n * n, 4);
    const chain = (k: number) => {
      const outs: Storage[] = [];
      let prev = a;
      for (let i = 0; i < k; i++) {
        const o = nat.alloc('float64', n * n);
        nat.gemm(prev, a, o, 1, n, n, n, false, false, 0, 0);
        outs.push(o);
        prev = o;
      }
      return outs;
    };
    // The whole chain once, unstopped, to know how long it takes here and now.
    let t0 = performance.now();
    const full = nat.withStream!(51, () => chain(6));
    await nat.flush(51);
    const fullMs = performance.now() - t0;
    expect(nat.clearDeadline!(51)).toBe(false);

    // Again with a budget of a tenth of that; a witness stream runs beside it.
    nat.setDeadline!(52, fullMs / 10);
    t0 = performance.now();
    const stopped = nat.withStream!(52, () => chain(6));
    const w = nat.alloc('float64', 64);
    nat.withStream!(53, () => nat.fill(w, 3));
    await nat.flush(52);
    const stoppedMs = performance.now() - t0;
    expect(stoppedMs).toBeLessThan(fullMs / 2);
    expect(nat.clearDeadline!(52)).toBe(true);
    expect(nat.clearDeadline!(52)).toBe(false);
    // The last product never ran: failed, and reading it says why.
    const last = stopped[stopped.length - 1];
    expect(nat.failed!(last)).toBe('intact');
    expect(() => nat.readNumbers(last)).toThrow(/time budget/);
    // The inputs are untouched, and what did complete before the deadline is right.
    expect(nat.failed!(a)).toBeNull();
    for (let i = 0; i < stopped.length; i++) {
      if (nat.failed!(stopped[i])) continue;
      same(nat.readNumbers(stopped[i]), nat.readNumbers(full[i]), `product ${i}`);
    }
    await nat.flush(53);
    expect(nat.readNumbers(w).every((v) => v === 3)).toBe(true);
    // The stream works again once its deadline is cleared.
    const again = nat.alloc('float64', n * n);
    nat.withStream!(52, () => nat.gemm(a, a, again, 1, n, n, n, false, false, 0, 0));
    await nat.flush(52);
    expect(nat.failed!(again)).toBeNull();
    same(nat.readNumbers(again), nat.readNumbers(full[0]), 'after the deadline');
    for (const s of [a, w, again, ...full, ...stopped]) nat.free(s);
  }, 120_000);

  it('a kernel reading a stopped output fails instead of running on it', async () => {
    const n = 1024;
    const a = filled(nat, n * n, 6);
    const c = nat.alloc('float64', n * n);
    nat.setDeadline!(61, 0);
    nat.withStream!(61, () => nat.gemm(a, a, c, 1, n, n, n, false, false, 0, 0));
    await nat.flush(61);
    expect(nat.clearDeadline!(61)).toBe(true);
    expect(nat.failed!(c)).toBe('intact');
    const d = nat.alloc('float64', 4);
    // Small and independent: it runs inline, and refuses the failed input.
    expect(() => nat.withStream!(61, () => nat.copyStrided(c, flat(4), d))).toThrow(/time budget/);
    // Nothing was written: the failure can be forgotten, and c reads what it held (zeros).
    expect(nat.clearFailure!(c)).toBe(true);
    expect(nat.failed!(c)).toBeNull();
    expect(nat.readNumbers(c).every((v) => v === 0)).toBe(true);
    for (const s of [a, c, d]) nat.free(s);
  }, 60_000);

  it("a reused buffer whose overwriting kernel was stopped before it ran keeps its zeros: it never reads a former buffer's bytes", async () => {
    const n = (4 << 20) / 8;
    const x = filled(nat, n, 8);
    // A 4 MiB buffer full of 7s goes back to the cache; the next one of its size reuses it.
    const junk = nat.alloc('float64', n);
    nat.fill(junk, 7);
    nat.free(junk);
    addon.sync();
    const out = nat.alloc('float64', n);
    nat.setDeadline!(63, 0);
    nat.withStream!(63, () => nat.unary('exp', x, out));
    await nat.flush(63);
    expect(nat.clearDeadline!(63)).toBe(true);
    // Nothing was written: the buffer holds what it held, the zeros of a new array.
    expect(nat.failed!(out)).toBe('intact');
    expect(nat.clearFailure!(out)).toBe(true);
    expect(nat.readNumbers(out).every((v) => v === 0)).toBe(true);
    for (const s of [x, out]) nat.free(s);
  }, 60_000);

  it('a product stopped part way is clobbered: its failure stays', async () => {
    const n = 2048;
    const a = filled(nat, n * n, 7);
    const c = nat.alloc('float64', n * n);
    // Time it first, then stop the same product a quarter of the way in (it runs in many steps).
    let t0 = performance.now();
    nat.withStream!(62, () => nat.gemm(a, a, c, 1, n, n, n, false, false, 0, 0));
    await nat.flush(62);
    const ms = performance.now() - t0;
    nat.setDeadline!(62, ms / 4);
    t0 = performance.now();
    nat.withStream!(62, () => nat.gemm(a, a, c, 1, n, n, n, false, false, 0, 0));
    await nat.flush(62);
    expect(performance.now() - t0).toBeLessThan(ms * 0.75);
    expect(nat.clearDeadline!(62)).toBe(true);
    expect(nat.failed!(c)).toBe('clobbered');
    expect(nat.clearFailure!(c)).toBe(false);
    expect(() => nat.readNumbers(c)).toThrow(/time budget/);
    // A full overwrite makes it whole.
    nat.writeNumbers(c, new Float64Array(n * n).fill(1));
    expect(nat.failed!(c)).toBeNull();
    for (const s of [a, c]) nat.free(s);
  }, 60_000);

  it('refuses bad arguments', () => {
    expect(() => nat.setDeadline!(-1, 10)).toThrow(/stream/);
    expect(() => nat.setDeadline!(1.5, 10)).toThrow(/stream/);
    expect(() => nat.setDeadline!(1, Number.NaN)).toThrow(/budgetMs/);
    expect(() => nat.setDeadline!(1, 'x' as unknown as number)).toThrow(/budgetMs/);
    nat.clearDeadline!(1);
  });
});
