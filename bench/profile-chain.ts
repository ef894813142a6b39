/**
 * Profiles the 1000-op scalar chain (forward + backward in one request) without HTTP:
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-chain.ts [iterations]
 * Prints ms per request; open the .cpuprofile in Chrome DevTools to see where per-op time goes.
 */
import { SessionStore } from '../src/session/store.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from "../src/engine/native.js";
import { referenceBackend } from "../src/engine/reference.js";
import { runOps } from '../src/session/service.js';
import '../src/ops/index.js';

const N = 1000;
const iterations = Number(process.argv[2] ?? 200);
const store = new SessionStore(process.env.BACKEND === "reference" ? referenceBackend : nativeBackend, loadConfig({}).limits);
const { session: s } = store.create({ apiKey: null, seed: 1, default_dtype: 'float32' });
await s.run(() => runOps(s, { ops: [{ op: 'array', args: [[1]], out: 'x' }] } as never));
await s.run(() => runOps(s, { ops: [{ op: 'attach_grad', args: ['x'] }] } as never));
const chain: unknown[] = [{ op: 'multiply', args: ['x', 1.0001], out: 'y' }];
for (let i = 1; i < N; i++) chain.push({ op: 'multiply', args: ['y', 1.0001], out: 'y' });
const body = { ops: [{ op: 'scope', kind: 'record', body: chain }, { op: 'backward', args: ['y'] }] } as never;
const times: number[] = [];
for (let i = 0; i < iterations; i++) {
  const t0 = performance.now();
  await s.run(() => runOps(s, body));
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(`${N}-op chain fwd+bwd: median ${times[times.length >> 1].toFixed(2)} ms per request, ${(times[times.length >> 1] * 1000 / N).toFixed(2)} µs per op`);
