/**
 * Sessions give their memory back: 1,000 sessions that hold arrays (some computed by queued
 * kernels) are created and deleted; the addon's live bytes return exactly to where they started
 * and the process RSS close to it.
 */
import { describe, expect, it } from 'vitest';
import { SessionStore } from '../../src/session/store.js';
import { loadConfig } from '../../src/config.js';
import { loadNativeAddon, nativeBackend } from '../../src/engine/native.js';
import { apply } from '../../src/ops/dispatch.js';
import '../../src/ops/index.js';

const addon = process.env.GRADSERVE_BACKEND === 'reference' ? null : loadNativeAddon();

describe.skipIf(!addon)('session memory', () => {
  it('1,000 sessions holding arrays are created and deleted without a leak', async () => {
    const store = new SessionStore(nativeBackend, loadConfig({}).limits);
    const round = async () => {
      const made = [];
      for (let i = 0; i < 1000; i++) {
        const { session: s } = store.create({ apiKey: null, seed: i, default_dtype: 'float64' });
        await s.run(() => {
          // 64 KiB arrays and a 32 KiB product; the matmul is large enough to be queued on the worker.
          const a = s.k.full('float64', [64, 128], 1 + i);
          const b = s.k.full('float64', [128, 64], 0.5);
          s.names.set('a', a);
          s.names.set('b', b);
          s.names.set('c', apply('dot', [a, b])[0]);
        });
        made.push(s);
      }
      expect(addon!.nativeBytesLive()).toBeGreaterThanOrEqual(1000 * (64 * 128 + 128 * 64 + 64 * 64) * 8);
      for (const s of made) store.delete(s);
      await nativeBackend.flush();
    };
    // One round first, so the allocator's arenas and V8's heap have grown to their working size.
    await round();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const bytes0 = addon!.nativeBytesLive();
    const rss0 = process.memoryUsage().rss;
    for (let r = 0; r < 3; r++) await round();
    gc?.();
    expect(addon!.nativeBytesLive()).toBe(bytes0);
    // Each round holds about 160 MB at its peak; what stays must be a small fraction of that.
    const grown = process.memoryUsage().rss - rss0;
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(64 * 2 ** 20);
  }, 120_000);
});
