/**
 * What a training loop and a rebinding loop cost the memory system (issue 14): buffers allocated,
 * minor page faults, the session's peak bytes against the process's peak RSS, and time per step.
 * In-process (one session, native backend, no HTTP), so the figures are the engine's and the
 * session's, not the server's.
 *
 *   node --import tsx bench/lifetimes.ts [steps]
 *
 * Prints one JSON line per workload:
 * - mlp: a 784-256-10 MLP, batch 256, and a 784-1024-10 one, batch 2048, float32: forward,
 *   softmax cross entropy, backward and four sgd_updates, one request per step;
 * - rebind: `x = x * 2` on a 1M-element float32 array (4 MiB), one request per statement;
 * - rebind-program: the same 100 statements in one program.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { SessionStore } from '../src/session/store.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';
import type { Backend } from '../src/engine/backend.js';
import { runOps } from '../src/session/service.js';
import '../src/ops/index.js';

const steps = Number(process.argv[2] ?? 50);

let allocs = 0;
const backend: Backend = {
  ...nativeBackend,
  alloc(dtype, n) {
    allocs++;
    return nativeBackend.alloc(dtype, n);
  },
};
const store = new SessionStore(backend, loadConfig({}).limits);

function status(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
const faults = () => process.resourceUsage().minorPageFault;

async function measure(name: string, warm: () => Promise<void>, step: () => Promise<void>, n: number, peak: () => number) {
  for (let i = 0; i < 3; i++) await warm();
  const rssBase = status('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5');
  const a0 = allocs;
  const f0 = faults();
  const hits0 = nativeBackend.cache?.stats().hits;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await step();
  const ms = (performance.now() - t0) / n;
  const stats = nativeBackend.cache?.stats();
  console.log(JSON.stringify({
    workload: name, steps: n,
    allocsPerStep: (allocs - a0) / n,
    faultsPerStep: Math.round((faults() - f0) / n),
    cacheHitsPerStep: stats && hits0 !== undefined ? (stats.hits - hits0) / n : null,
    msPerStep: Number(ms.toFixed(2)),
    sessionPeakMiB: Number((peak() / 2 ** 20).toFixed(1)),
    peakRssAboveBaseMiB: Number(((status('VmHWM') - rssBase) / 2 ** 20).toFixed(1)),
  }));
}

// ---- the MLP ---------------------------------------------------------------------------------
for (const [B, H, n] of [[256, 256, steps], [2048, 1024, Math.max(5, Math.floor(steps / 5))]]) {
  const { session: s } = store.create({ apiKey: null, seed: 1, default_dtype: 'float32' });
  await s.run(() => runOps(s, {
    ops: [
      { op: 'random.normal', attrs: { shape: [B, 784], scale: 1 }, out: 'X' },
      { op: 'random.normal', attrs: { shape: [H, 784], scale: 0.05 }, out: 'W1' },
      { op: 'zeros', attrs: { shape: [H] }, out: 'b1' },
      { op: 'random.normal', attrs: { shape: [10, H], scale: 0.05 }, out: 'W2' },
      { op: 'zeros', attrs: { shape: [10] }, out: 'b2' },
      { op: 'array', args: [Array.from({ length: B }, (_, i) => (i * 7) % 10)], out: 'Y' },
      ...['W1', 'b1', 'W2', 'b2'].map((p) => ({ op: 'attach_grad', args: [p] })),
    ] as never,
  }));
  const step = {
    ops: [
      { op: 'scope', kind: 'record', body: [
        { op: 'FullyConnected', args: ['X', 'W1', 'b1'], attrs: { num_hidden: H }, out: 'h1' },
        { op: 'relu', args: ['h1'], out: 'a1' },
        { op: 'FullyConnected', args: ['a1', 'W2', 'b2'], attrs: { num_hidden: 10 }, out: 'z' },
        { op: 'softmax_cross_entropy', args: ['z', 'Y'], out: 'loss' },
      ] },
      { op: 'backward', args: ['loss'] },
      ...['W1', 'b1', 'W2', 'b2'].map((p) => ({ op: 'sgd_update', args: [p, `${p}.grad`], attrs: { lr: 0.01 } })),
    ],
  } as never;
  const run = () => s.run(() => { runOps(s, step); });
  await measure(`mlp ${B}x784-${H}-10`, run, run, n, () => s.memory.peakBytes);
  store.delete(s);
}

// ---- x = x * 2 -------------------------------------------------------------------------------
{
  const { session: s } = store.create({ apiKey: null, seed: 1, default_dtype: 'float32' });
  await s.run(() => runOps(s, { expr: 'x = nd.ones((1048576,))' }));
  const one = () => s.run(() => { runOps(s, { expr: 'x = x * 2' }); });
  await measure('rebind', one, one, steps * 2, () => s.memory.peakBytes);
  const program = Array.from({ length: 100 }, () => 'x = x * 0.5').join('\n');
  const many = () => s.run(() => { runOps(s, { expr: program }); });
  await measure('rebind-program (100 statements per step)', many, many, Math.max(1, Math.floor(steps / 10)), () => s.memory.peakBytes);
  store.delete(s);
}
