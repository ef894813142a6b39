/**
 * The native engine's caching allocator (issue 14, item 2): buffers of 256 KiB and more come
 * from memory mappings kept by size class, so a hot loop reuses them without page faults; the
 * cache is bounded, zeroes what it hands out again, gives its memory back when idle or asked, and
 * its figures reach /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { loadNativeAddon, nativeBackend } from '../../src/engine/native.js';
import { startServer, Client, type TestServer } from '../helpers/server.js';

const addon = process.env.GRADSERVE_BACKEND === 'reference' ? null : loadNativeAddon();
const cache = nativeBackend.cache!;
const MiB = 2 ** 20;

/** Allocates, writes and frees a float64 buffer of `bytes` (rounded to elements), `n` times. */
function cycle(bytes: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = nativeBackend.alloc('float64', Math.floor(bytes / 8));
    nativeBackend.fill(s, 1);
    nativeBackend.free(s);
    addon!.sync();
  }
}

const faults = (): number => process.resourceUsage().minorPageFault;

/**
 * A buffer of `length` elements served from a mapping the cache kept, after a buffer of the same
 * size filled with `junk` was freed into it (the bytes it must never show).
 */
function reusedBuffer(dtype: 'float32' | 'float64', length: number, junk: number) {
  const before = nativeBackend.alloc(dtype, length);
  nativeBackend.fill(before, junk);
  nativeBackend.free(before);
  addon!.sync();
  const s0 = cache.stats();
  const out = nativeBackend.alloc(dtype, length);
  expect(cache.stats().hits - s0.hits).toBe(1);
  return out;
}

describe.skipIf(!addon)('the native buffer cache', () => {
  beforeAll(() => {
    cache.setLimit(64 * MiB);
    cache.trim();
  });
  afterAll(() => cache.setLimit(256 * MiB));

  it('a buffer freed and allocated again is a hit, without page faults; without the cache each one faults its pages', () => {
    cycle(3 * MiB, 1);
    const s0 = cache.stats();
    const f0 = faults();
    cycle(3 * MiB, 50);
    const hot = faults() - f0;
    const s1 = cache.stats();
    expect(s1.hits - s0.hits).toBe(50);
    expect(s1.misses - s0.misses).toBe(0);
    cache.setLimit(0);
    const f1 = faults();
    cycle(3 * MiB, 50);
    const cold = faults() - f1;
    cache.setLimit(63 * MiB);
    // 3 MiB is 768 pages (below the 4 MiB from which mappings ask for huge pages): a fresh mapping
    // faults each of them when zeroed by first touch.
    expect(cold).toBeGreaterThan(50 * 384);
    expect(hot, `hot loop faulted ${hot} pages, cold ${cold}`).toBeLessThan(cold / 20);
  });

  it('nearby sizes share a size class (a last, smaller batch reuses the full batch\'s mapping)', () => {
    cycle(5 * MiB, 1);
    const s0 = cache.stats();
    cycle(4.5 * MiB, 1); // 4.5 MiB and 5 MiB are both in the 5 MiB class (4 MiB + 1 MiB steps)
    expect(cache.stats().hits - s0.hits).toBe(1);
  });

  it('a reused buffer reads as zeros', () => {
    const b = reusedBuffer('float64', (2 * MiB) / 8, 7);
    const v = nativeBackend.readNumbers(b);
    expect(v.every((x) => x === 0)).toBe(true);
    nativeBackend.free(b);
  });

  it('small freed buffers are counted while kept, bounded at 4 MiB, and given back by a trim', () => {
    cache.trim();
    expect(cache.stats().smallCachedBytes).toBe(0);
    // 64 buffers of 128 KiB live at once, then freed: the lists keep 1 MiB of that class.
    const held = Array.from({ length: 64 }, () => nativeBackend.alloc('float64', (128 * 1024) / 8));
    for (const b of held) nativeBackend.free(b);
    addon!.sync();
    const kept = cache.stats().smallCachedBytes;
    expect(kept).toBe(1024 * 1024);
    // Other classes fill up to the overall bound and no further.
    for (const kib of [1, 2, 4, 8, 16, 32, 64, 256 - 1]) {
      const bs = Array.from({ length: 2048 / kib }, () => nativeBackend.alloc('float64', (kib * 1024) / 8));
      for (const b of bs) nativeBackend.free(b);
    }
    addon!.sync();
    expect(cache.stats().smallCachedBytes).toBeLessThanOrEqual(4 * MiB);
    expect(cache.stats().smallCachedBytes).toBeGreaterThan(kept);
    cache.trim();
    expect(cache.stats().smallCachedBytes).toBe(0);
  });

  it('small buffers, kept in their own free lists, come back as zeros at every size class', () => {
    // 1 element to just under the 256 KiB of the mappings: each size freed full of junk and
    // allocated again (the free list hands back that very block) must read as zeros.
    for (let bytes = 8; bytes < 256 * 1024; bytes = bytes * 2 + 8) {
      const n = bytes / 8;
      for (let round = 0; round < 3; round++) {
        const junk = nativeBackend.alloc('float64', n);
        nativeBackend.fill(junk, -3.5);
        nativeBackend.free(junk);
        addon!.sync();
        const b = nativeBackend.alloc('float64', n);
        const v = nativeBackend.readNumbers(b);
        expect(v.length).toBe(n);
        expect(v.every((x) => x === 0), `${n} float64 elements, round ${round}`).toBe(true);
        nativeBackend.free(b);
      }
    }
  });

  it('an elementwise kernel writes a reused buffer without zeroing it first, and every element is its own', () => {
    const n = (2 * MiB) / 8;
    const x = nativeBackend.alloc('float64', 4);
    nativeBackend.writeNumbers(x, [1, 2, 3, 4]);
    const y = nativeBackend.alloc('float64', n);
    nativeBackend.fill(y, 0.5);
    const out = reusedBuffer('float64', n, 7);
    nativeBackend.binary('add', y, { shape: [n], strides: [1], offset: 0 }, x, { shape: [n], strides: [0], offset: 2 }, out);
    const v = nativeBackend.readNumbers(out);
    expect(v.every((e) => e === 3.5)).toBe(true);
    for (const s of [x, y, out]) nativeBackend.free(s);
  });

  it('a gather, a product and a cast write a reused buffer whole without zeroing it first; refused, it reads as zeros', () => {
    const n = 512; // n x n float64: 2 MiB, a size the cache keeps
    const reused = (dtype: 'float32' | 'float64' = 'float64') => reusedBuffer(dtype, n * n, 9);
    const a = nativeBackend.alloc('float64', n * n);
    nativeBackend.arange(a, 0, 1);
    // The transpose, gathered through a strided view.
    const t = reused();
    nativeBackend.copyStrided(a, { shape: [n, n], strides: [1, n], offset: 0 }, t);
    const tv = nativeBackend.readNumbers(t);
    expect(tv.every((v, i) => v === (i % n) * n + Math.floor(i / n))).toBe(true);
    // A product with the identity (every element written once, by the micro-kernel's tiles).
    const eye = nativeBackend.alloc('float64', n * n);
    nativeBackend.writeNumbers(eye, Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)));
    const p = reused();
    nativeBackend.gemm(a, eye, p, 1, n, n, n, false, false, 0, 0);
    const pv = nativeBackend.readNumbers(p);
    expect(pv.every((v, i) => v === i)).toBe(true);
    const c = reused('float32');
    nativeBackend.cast(a, c);
    expect(nativeBackend.readNumbers(c).every((v, i) => v === i)).toBe(true);
    // A product refused for its shapes writes nothing: the reused buffer still reads as zeros.
    const refused = reused();
    expect(() => { nativeBackend.gemm(a, eye, refused, 1, n, n, n + 1, false, false, 0, 0); addon!.sync(); }).toThrow(/bounds/);
    expect(nativeBackend.readNumbers(refused).every((v) => v === 0)).toBe(true);
    for (const s of [a, t, eye, p, c, refused]) nativeBackend.free(s);
  });

  it('a reused buffer whose kernel was refused reads as zeros, not as the bytes it held before', () => {
    const n = (2 * MiB) / 8;
    const out = reusedBuffer('float64', n, 9);
    const x = nativeBackend.alloc('float64', n + 1);
    // Lengths differ: the kernel is refused before it writes anything.
    expect(() => { nativeBackend.unary('exp', x, out); addon!.sync(); nativeBackend.readNumbers(out); }).toThrow(/length/);
    expect(nativeBackend.readNumbers(out).every((e) => e === 0)).toBe(true);
    for (const s of [x, out]) nativeBackend.free(s);
  });

  it('stays within its bound, evicting what was used least recently', () => {
    cache.setLimit(8 * MiB);
    const held = [1, 2, 3, 4].map(() => nativeBackend.alloc('float64', (3 * MiB) / 8));
    for (const h of held) nativeBackend.free(h);
    addon!.sync();
    const s = cache.stats();
    expect(s.cachedBytes).toBeLessThanOrEqual(8 * MiB);
    expect(s.cachedBytes).toBeGreaterThanOrEqual(6 * MiB);
    cache.setLimit(64 * MiB);
  });

  it('gives way as live buffers grow towards the budget it shares with them', () => {
    cache.trim();
    const base = addon!.nativeBytesLive();
    cache.setLimit(64 * MiB, base + 16 * MiB);
    try {
      cycle(4 * MiB, 1);
      cycle(8 * MiB, 1);
      // 12 MiB cached beside the live bytes: within the 16 MiB the budget leaves.
      expect(cache.stats().cachedBytes).toBe(12 * MiB);
      // 10 MiB of new live buffers (a size not cached) leave room for 6 MiB of cache.
      const held = nativeBackend.alloc('float64', (10 * MiB) / 8);
      addon!.sync();
      expect(cache.stats().cachedBytes).toBeLessThanOrEqual(6 * MiB);
      nativeBackend.free(held);
      addon!.sync();
      expect(cache.stats().budgetBytes).toBe(base + 16 * MiB);
    } finally {
      cache.setLimit(64 * MiB);
    }
  });

  it('gives its memory back when idle: the first check after activity keeps it, the next trims', () => {
    cycle(2 * MiB, 2);
    expect(cache.stats().cachedBytes).toBeGreaterThan(0);
    expect(cache.trim(true)).toBe(0); // allocations since the last check: not idle
    const t0 = cache.stats().trims;
    expect(cache.trim(true)).toBeGreaterThan(0);
    const s = cache.stats();
    expect(s.cachedBytes).toBe(0);
    expect(s.trims).toBe(t0 + 1);
  });
});

describe.skipIf(!addon)('the buffer cache in /metrics', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer(); });
  afterAll(async () => { await srv.close(); });

  it('counts the hits of a loop that rebinds a large array', async () => {
    const c = await Client.open(srv.url);
    const read = async () => {
      const text = (await request(srv.url).get('/metrics').expect(200)).text;
      const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      return { hits: num('gradserve_alloc_cache_hits_total'), misses: num('gradserve_alloc_cache_misses_total'), cached: num('gradserve_alloc_cached_bytes'), limit: num('gradserve_alloc_cache_limit_bytes'), trims: num('gradserve_alloc_cache_trims_total') };
    };
    const m0 = await read();
    expect(m0.limit).toBe(256 * MiB);
    expect(nativeBackend.cache!.stats().budgetBytes).toBe(srv.config.limits.maxTotalBytes);
    await c.expr('x = nd.ones((262144,))');
    // `x + 1` is a temporary: it cannot write over x (x lives on) or over y (the statement that
    // rebinds y is the `* 2`, which writes over the dying temporary), so each request allocates
    // one buffer and frees the last y.
    for (let i = 0; i < 20; i++) await c.expr('y = (x + 1) * 2');
    const m1 = await read();
    // 1 MiB arrays: after the first two, each request's output reuses a freed mapping.
    expect(m1.hits - m0.hits).toBeGreaterThanOrEqual(18);
    expect(m1.cached).toBeGreaterThan(0);
    expect(Number.isFinite(m1.trims)).toBe(true);
  });

  it('shows the small buffers kept in free lists', async () => {
    const c = await Client.open(srv.url);
    // 20 rebinds of a 4 KiB array: each request frees the last y into its class's list (the
    // temporary `x + 1` takes a buffer from it; see above).
    await c.expr('x = nd.ones((1024,))');
    for (let i = 0; i < 20; i++) await c.expr('y = (x + 1) * 2');
    const text = (await request(srv.url).get('/metrics').expect(200)).text;
    const small = Number(/^gradserve_alloc_small_cached_bytes (\S+)$/m.exec(text)?.[1]);
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThanOrEqual(4 * MiB);
  });
});
