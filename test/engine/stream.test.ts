/**
 * The native stream: large kernels run off the JS thread in call order, small independent ones
 * inline. Checked against the reference backend under random interleavings of inline and queued
 * calls, frees of buffers still in use, synchronous reads and writes, and per-stream flushes.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Backend, DType, Storage, View } from '../../src/engine/backend.js';
import { referenceBackend as ref } from '../../src/engine/reference.js';
import { loadNativeAddon, nativeBackend as nat } from '../../src/engine/native.js';
import { rng } from '../helpers/rng.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');


/** Exact equality, reported at the first differing element (fast on long arrays). */
function same(got: Float64Array, want: Float64Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) expect(`${what}[${i}] = ${got[i]}`).toBe(`${what}[${i}] = ${want[i]}`);
  }
}

const flat = (n: number): View => ({ shape: [n], strides: [1], offset: 0 });
let defaultLimit = -1;
afterEach(() => {
  if (defaultLimit >= 0) addon.setInlineLimit(defaultLimit);
  addon.sync();
});

function big(dtype: DType, n: number): Storage {
  const s = nat.alloc(dtype, n * n);
  nat.randomUniform(s, 3, 0, -1, 1);
  return s;
}

describe('the native stream', () => {
  it('queues a large gemm, resolves flush when it is done, and reads wait for it', async () => {
    // Large enough (~0.1 s) that the gemm is still running when `a` is freed below, even if a
    // garbage collection pauses this thread for a few milliseconds.
    const n = 1200;
    const a = big('float64', n);
    const c = nat.alloc('float64', n * n);
    nat.gemm(a, a, c, 1, n, n, n, false, false, 0, 0);
    expect(addon.pendingWork()).toBeGreaterThan(0);
    // A dependent small kernel must queue behind it, not run on stale data.
    const d = nat.alloc('float64', n * n);
    nat.binaryScalar('mul', c, 2, false, d);
    const before = addon.nativeBytesLive();
    nat.free(a); // deferred: the gemm still reads it
    expect(a.alive).toBe(false);
    expect(addon.nativeBytesLive()).toBe(before);
    await nat.flush();
    expect(addon.pendingWork()).toBe(0);
    expect(addon.nativeBytesLive()).toBe(before - n * n * 8);
    const cv = nat.readNumbers(c);
    const dv = nat.readNumbers(d);
    for (let i = 0; i < n * n; i += 9973) expect(dv[i]).toBe(2 * cv[i]);
    nat.free(c); nat.free(d);
  });

  it('flush(stream) does not wait for another stream\'s work', async () => {
    const n = 900;
    const a = big('float64', n);
    const c = nat.alloc('float64', n * n);
    nat.withStream!(1, () => nat.gemm(a, a, c, 1, n, n, n, false, false, 0, 0));
    const x = nat.alloc('float64', 10);
    nat.withStream!(2, () => nat.fill(x, 1));
    const order: string[] = [];
    const p1 = nat.flush(1).then(() => order.push('1'));
    const p2 = nat.flush(2).then(() => order.push('2'));
    const p3 = nat.flush(3).then(() => order.push('3'));
    await Promise.all([p1, p2, p3]);
    expect(order[order.length - 1]).toBe('1');
    nat.free(a); nat.free(c); nat.free(x);
  });

  it('readNumbers and writeNumbers wait synchronously for queued work on the buffer', () => {
    const n = 600;
    const a = big('float32', n);
    const c = nat.alloc('float32', n * n);
    nat.gemm(a, a, c, 1, n, n, n, false, true, 0, 0);
    // Overwriting c must not be clobbered by the gemm finishing later.
    nat.writeNumbers(c, new Float64Array(n * n).fill(5));
    expect(nat.readNumbers(c).every((v) => v === 5)).toBe(true);
    nat.gemm(a, a, c, 1, n, n, n, false, true, 0, 0);
    const got = nat.readNumbers(c);
    expect(got[0]).not.toBe(5);
    nat.free(a); nat.free(c);
  });

  it('a flush with nothing pending resolves at once; many flushes all resolve', async () => {
    await nat.flush();
    await nat.flush(12345);
    const a = big('float64', 300);
    const c = nat.alloc('float64', 300 * 300);
    addon.setInlineLimit(0);
    defaultLimit = 1 << 15;
    const flushes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      nat.gemm(a, a, c, 1, 300, 300, 300, false, false, 0, 0);
      flushes.push(nat.flush());
    }
    await Promise.all(flushes);
    expect(addon.pendingWork()).toBe(0);
    nat.free(a); nat.free(c);
  });

  it('a thousand queued calls on one buffer run in call order', async () => {
    // Every call reads and writes acc, so each waits for the one before: the buffer's queue of
    // users grows to a thousand and is drained from its front while more are queued.
    const acc = nat.alloc('float64', 4);
    const step = nat.alloc('float64', 4);
    nat.fill(step, 1);
    addon.setInlineLimit(0);
    defaultLimit = 1 << 15;
    for (let i = 0; i < 1000; i++) {
      nat.binary(i % 2 ? 'add' : 'mul', acc, flat(4), step, flat(4), acc);
      if (i % 2 === 0) nat.fill(step, 2); else nat.fill(step, 1);
    }
    await nat.flush();
    // acc: (((0*1)+2)*1+2)... = 2 * 500 after 500 rounds of (mul by 1, add 2).
    expect(Array.from(nat.readNumbers(acc))).toEqual([1000, 1000, 1000, 1000]);
    nat.free(acc); nat.free(step);
  });

  /**
   * A random program over a few buffers, run on both backends; the native inline limit is varied
   * so that calls land inline or on the worker in every pattern. Every read must see the
   * reference's values.
   */
  for (const limit of [0, 1000, 1 << 15, Infinity]) {
    it(`random programs match the reference (inline limit ${limit})`, async () => {
      defaultLimit = addon.setInlineLimit(limit === Infinity ? 1e300 : limit);
      const r = rng(limit === Infinity ? 99 : limit + 1);
      const sizes = [1, 7, 64, 40_000];
      const start = addon.nativeBytesLive();
      for (let round = 0; round < 6; round++) {
        const n = sizes[Math.floor(r() * sizes.length)];
        const bufs: [Storage, Storage][] = [];
        const fresh = () => {
          const p: [Storage, Storage] = [ref.alloc('float64', n), nat.alloc('float64', n)];
          bufs.push(p);
          return p;
        };
        for (let i = 0; i < 4; i++) {
          const [x, y] = fresh();
          const data = Array.from({ length: n }, () => r() * 2 - 1);
          ref.writeNumbers(x, data); nat.writeNumbers(y, data);
        }
        const pick = () => bufs[Math.floor(r() * bufs.length)];
        for (let step = 0; step < 60; step++) {
          const k = Math.floor(r() * 9);
          const [a1, a2] = pick();
          const [b1, b2] = pick();
          const [o1, o2] = r() < 0.3 ? fresh() : pick();
          const both = (f: (be: Backend, a: Storage, b: Storage, o: Storage) => void) => { f(ref, a1, b1, o1); f(nat, a2, b2, o2); };
          switch (k) {
            case 0: both((be, a, b, o) => be.binary('add', a, flat(n), b, flat(n), o)); break;
            case 1: both((be, a, _b, o) => be.binaryScalar('mul', a, 0.5, false, o)); break;
            case 2: { const op = r() < 0.5 ? 'square' : 'relu'; both((be, a, _b, o) => be.unary(op, a, o)); break; }
            case 3: both((be, a, _b, o) => be.cast(a, o)); break;
            case 4: both((be, a, b, o) => be.binary('sub', a, flat(n), b, flat(n), o)); break;
            case 5: both((be, a, _b, o) => be.scatterAddStrided(a, o, flat(n))); break;
            case 6: {
              same(nat.readNumbers(a2), ref.readNumbers(a1), `step ${step}`);
              break;
            }
            case 7: {
              const data = Array.from({ length: n }, () => r());
              ref.writeNumbers(o1, data); nat.writeNumbers(o2, data);
              break;
            }
            default: {
              // Free a buffer (maybe still in use by queued work) and forget it.
              const i = Math.floor(r() * bufs.length);
              if (bufs.length > 2) {
                const [f1, f2] = bufs.splice(i, 1)[0];
                ref.free(f1); nat.free(f2);
              }
            }
          }
          if (r() < 0.05) await nat.flush();
        }
        for (const [x, y] of bufs) same(nat.readNumbers(y), ref.readNumbers(x), 'final');
        for (const [x, y] of bufs) { ref.free(x); nat.free(y); }
      }
      await nat.flush();
      expect(addon.nativeBytesLive()).toBe(start);
    }, 60_000);
  }

  it('argument errors still throw synchronously while work is queued', () => {
    const a = big('float64', 500);
    const c = nat.alloc('float64', 500 * 500);
    nat.gemm(a, a, c, 1, 500, 500, 500, false, false, 0, 0);
    const small = nat.alloc('float64', 3);
    expect(() => nat.unary('exp', c, small)).toThrow(/length/);
    expect(() => nat.gemm(a, a, small, 1, 500, 500, 500, false, false, 0, 0)).toThrow(/length/);
    expect(() => nat.binary('add', c, flat(500 * 500 + 1), c, flat(500 * 500 + 1), c)).toThrow(Error);
    nat.free(c);
    expect(() => nat.unary('exp', c, c)).toThrow(/freed/);
    nat.free(a); nat.free(small);
  });
});
