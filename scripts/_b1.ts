import { loadNativeAddon } from '/work/main/src/engine/native.js';
const addon = loadNativeAddon()!;
addon.setThreads(Number(process.env.T ?? 1));
for (const dtype of (process.env.DT ?? 'float32,float64').split(',') as ('float32'|'float64')[]) for (const n of [1024, 2048]) {
  const a = addon.alloc(dtype, n * n), b = addon.alloc(dtype, n * n), c = addon.alloc(dtype, n * n);
  addon.randomUniform(a, 1, 0, -1, 1); addon.randomUniform(b, 2, 0, -1, 1);
  let best = Infinity;
  for (let r = 0; r < (n > 1024 ? 3 : 6); r++) { const t0 = performance.now(); addon.gemm(a, b, c, 1, n, n, n, false, false, 0, 0); best = Math.min(best, performance.now() - t0); }
  process.stdout.write(`${dtype} ${n}: ${(2 * n ** 3 / best / 1e6).toFixed(1)}  `);
  [a, b, c].forEach((s) => addon.free(s));
}
console.log();
