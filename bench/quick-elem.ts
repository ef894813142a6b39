/**
 * Quick elementwise check: add/sub/mul/div/exp (and add-scalar) at a few sizes, ours vs numpy's in
 * the same run (interleaved rounds, medians). Not part of `npm run bench`.
 *
 *   npx tsx bench/quick-elem.ts [ops=add,exp] [sizes=1e6,1e7] [dtypes=float32,float64] [rounds=5]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { loadNativeAddon, nativeBackend as nat } from '../src/engine/native.js';
import type { DType } from '../src/engine/backend.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('build the native engine first');
const ops = (process.argv[2] ?? 'add,exp').split(',');
const sizes = (process.argv[3] ?? '1e6,1e7').split(',').map(Number);
const dtypes = (process.argv[4] ?? 'float32,float64').split(',') as DType[];
const ROUNDS = Number(process.argv[5] ?? 5);

const py = spawn('/usr/bin/python3', ['-u', '-c', `
import sys, json, time, numpy as np
st = {}
for line in sys.stdin:
    r = json.loads(line); k = (r['dtype'], r['n'])
    if k not in st:
        g = np.random.default_rng(2)
        st[k] = (g.uniform(-1, 1, r['n']).astype(r['dtype']), g.uniform(-1, 1, r['n']).astype(r['dtype']), np.empty(r['n'], r['dtype']))
    a, b, c = st[k]
    f = {'add': lambda: np.add(a, b, out=c), 'sub': lambda: np.subtract(a, b, out=c), 'mul': lambda: np.multiply(a, b, out=c),
         'div': lambda: np.divide(a, b, out=c), 'exp': lambda: np.exp(a, out=c), 'adds': lambda: np.add(a, 2.5, out=c)}[r['op']]
    f(); t0 = time.perf_counter()
    for _ in range(r['reps']): f()
    print(json.dumps((time.perf_counter() - t0) / r['reps']), flush=True)
`]);
const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
async function numpy(op: string, dtype: DType, n: number, reps: number): Promise<number> {
  py.stdin.write(JSON.stringify({ op, dtype, n, reps }) + '\n');
  return JSON.parse((await lines.next()).value as string) as number;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
function timeSync(fn: () => void, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / 1000 / reps;
}

for (const dtype of dtypes) {
  for (const n of sizes) {
    const a = nat.alloc(dtype, n), b = nat.alloc(dtype, n), c = nat.alloc(dtype, n);
    nat.randomUniform(a, 3, 0, -1, 1);
    nat.randomUniform(b, 4, 0, -1, 1);
    addon.sync();
    const v = { shape: [n], strides: [1], offset: 0 };
    for (const op of ops) {
      const call = op === 'exp' ? () => { nat.unary('exp', a, c); addon.sync(); }
        : op === 'adds' ? () => { nat.binaryScalar('add', a, 2.5, false, c); addon.sync(); }
        : () => { nat.binary(op, a, v, b, v, c); addon.sync(); };
      const reps = Math.max(1, Math.round(0.1 / timeSync(call, 1)));
      const ours: number[] = [], theirs: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ours.push(timeSync(call, reps));
        theirs.push(await numpy(op, dtype, n, reps));
      }
      const o = median(ours), t = median(theirs);
      console.log(`${op.padEnd(4)} ${dtype} n=${n.toExponential(0)}  ours ${(o * 1e3).toFixed(3)} ms  numpy ${(t * 1e3).toFixed(3)} ms  ratio ${(t / o).toFixed(2)}x`);
    }
    for (const s of [a, b, c]) nat.free(s);
  }
}
py.stdin.end();
console.log(`load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}, threads ${addon.getThreads()}`);
