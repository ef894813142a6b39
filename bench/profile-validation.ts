/**
 * The HTTP layer's own cost for big bodies, without the engine or a socket: JSON.parse, the depth
 * check, and validation (the exact fast check, and zod alone for comparison) of the 1000-statement
 * /ops program of profile-http-chain.ts and of a 1e6-number array upload.
 *   node --import tsx bench/profile-validation.ts [iterations]
 */
import { ArrayBody, OpsBody } from '../src/http/schemas/api.js';
import { fastCheckOf } from '../src/http/schemas/fast.js';
import { parseNested } from '../src/session/codec.js';

const iterations = Number(process.argv[2] ?? 200);
const N = 1000;
const chain: unknown[] = [{ op: 'multiply', args: ['x', 1.0001], out: 'y' }];
for (let i = 1; i < N; i++) chain.push({ op: 'multiply', args: ['y', 1.0001], out: 'y' });
const ops = JSON.stringify({ ops: [{ op: 'scope', kind: 'record', body: chain }, { op: 'backward', args: ['y'] }] });
const list = JSON.stringify({ name: 'u', dtype: 'float32', data: Array.from({ length: 1_000_000 }, (_, i) => Math.fround(Math.sin(i))) });

function median(f: () => unknown, n: number): string {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1].toFixed(3);
}

const { jsonDepthOver } = await import('../src/http/body.js');
const fastOps = fastCheckOf(OpsBody)!;
const parsedOps = JSON.parse(ops);
console.log(`ops program (${N} statements), ms per request: JSON.parse ${median(() => JSON.parse(ops), iterations)}, `
  + `depth check ${median(() => jsonDepthOver(ops, parsedOps, 64), iterations)}, `
  + `fast check ${median(() => fastOps(parsedOps), iterations)}, zod alone ${median(() => OpsBody.safeParse(parsedOps), iterations)}`);
const fastArray = fastCheckOf(ArrayBody)!;
const parsedList = JSON.parse(list);
console.log(`1e6-number list, ms: JSON.parse ${median(() => JSON.parse(list), 7)}, depth check ${median(() => jsonDepthOver(list, parsedList, 64), 7)}, `
  + `fast check ${median(() => fastArray(parsedList), 7)}, zod alone ${median(() => ArrayBody.safeParse(parsedList), 3)}, `
  + `parseNested ${median(() => parseNested(parsedList.data), 7)}`);
