/**
 * GEMM throughput of the native backend: `npx tsx scripts/bench-gemm.ts [sizes...]`.
 * Prints GFLOP/s (2 n^3 flops per product) for float32 and float64, with 1 thread and with all.
 */
import { loadNativeAddon, nativeBackend as nat } from '../src/engine/native.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('build the addon first: npm run install');

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const ns = sizes.length ? sizes : [256, 1024, 2048];
const maxThreads = addon.getThreads();

function bench(dtype: 'float32' | 'float64', n: number, threads: number): number {
  addon!.setThreads(threads);
  const a = nat.alloc(dtype, n * n);
  const b = nat.alloc(dtype, n * n);
  const c = nat.alloc(dtype, n * n);
  nat.randomUniform(a, 1, 0, -1, 1);
  nat.randomUniform(b, 2, 0, -1, 1);
  addon!.sync();
  // Large products run on the stream's worker: sync() waits for them.
  const run = () => { nat.gemm(a, b, c, 1, n, n, n, false, false, 0, 0); addon!.sync(); };
  run();
  // Repeat until ~0.5 s so small sizes are not timer noise; keep the best round.
  let best = Infinity;
  const deadline = performance.now() + 500;
  do {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  } while (performance.now() < deadline);
  for (const s of [a, b, c]) nat.free(s);
  return (2 * n ** 3) / (best / 1000) / 1e9;
}

console.log(`simd: ${addon.simdLevel()}, threads available: ${maxThreads}`);
for (const dtype of ['float32', 'float64'] as const) {
  for (const n of ns) {
    const row = [`${dtype} n=${n}`];
    for (const t of [...new Set([1, maxThreads])]) row.push(`${t}T ${bench(dtype, n, t).toFixed(1)} GFLOP/s`);
    console.log(row.join('  '));
  }
}
addon.setThreads(maxThreads);
