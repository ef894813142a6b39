/**
 * The native command buffer: kernel calls inside withStream are batched and run together, so
 * batches must give exactly what eager calls give, keep their allocations and frees when a command
 * fails, and the addon must reject any malformed command it is handed (frames, fields, handles)
 * without crashing; the ASan run (npm run test:native:asan) runs this file too.
 */
import { describe, expect, it } from 'vitest';
import { loadNativeAddon, nativeBackend as nat, runRawCommands } from '../../src/engine/native.js';
import type { Storage } from '../../src/engine/backend.js';
import { rng } from '../helpers/rng.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');

const view = (n: number) => ({ shape: [n], strides: [1], offset: 0 });

/** y = x * 1.0001 + 0.5, n times, as separate kernel calls. */
function chain(n: number): number[] {
  const x = nat.alloc('float64', 3);
  nat.writeNumbers(x, [1, -2, 3]);
  let cur = x;
  const made: Storage[] = [x];
  for (let i = 0; i < n; i++) {
    const t = nat.alloc('float64', 3);
    nat.binaryScalar('mul', cur, 1.0001, false, t);
    const u = nat.alloc('float64', 3);
    nat.binary('add', t, view(3), t, { shape: [3], strides: [0], offset: 0 }, u);
    made.push(t, u);
    cur = u;
  }
  const out = [...nat.readNumbers(cur)];
  for (const s of made) nat.free(s);
  return out;
}

describe('native command batches', () => {
  it('a batch larger than the command buffer gives exactly the eager result', () => {
    const eager = chain(3000);
    const bytes = addon.nativeBytesLive();
    // 3000 links are about 60,000 command doubles: the buffer (65,536) fills and runs mid-batch.
    const batched = nat.withStream!(7, () => chain(3000));
    expect(batched).toEqual(eager);
    expect(addon.nativeBytesLive()).toBe(bytes);
  });

  it('a failing command surfaces when the batch runs, and the batch still allocates and frees', () => {
    const bytes = addon.nativeBytesLive();
    const kept: Storage[] = [];
    const run = () => nat.withStream!(3, () => {
      const a = nat.alloc('float64', 4);
      const b = nat.alloc('float64', 5);
      // Lengths differ: TypeScript callers never do this, the addon must still refuse it.
      nat.unary('exp', a, b);
      const c = nat.alloc('float64', 2);
      nat.fill(c, 2.5);
      kept.push(c);
      nat.free(a);
      nat.free(b);
    });
    expect(run).toThrow(/length/);
    expect(nat.readNumbers(kept[0])).toEqual(new Float64Array([2.5, 2.5]));
    nat.free(kept[0]);
    expect(addon.nativeBytesLive()).toBe(bytes);
  });

  it('when the scope itself throws, its error wins and its commands still run', () => {
    let c: Storage | null = null;
    expect(() => nat.withStream!(4, () => {
      c = nat.alloc('float32', 3);
      nat.fill(c, 7);
      throw new Error('the op failed');
    })).toThrow('the op failed');
    expect([...nat.readNumbers(c!)]).toEqual([7, 7, 7]);
    nat.free(c!);
  });

  it('a failure met while making room is not lost, and the free that made room still happens', () => {
    const bytes = addon.nativeBytesLive();
    const big = nat.alloc('float64', 1 << 17); // 1 MiB
    const run = () => nat.withStream!(5, () => {
      const a = nat.alloc('float64', 4);
      const b = nat.alloc('float64', 5);
      nat.unary('exp', a, b); // refused by the addon when the batch runs
      // Fill the command buffer so that the free below has to run the batch to make room.
      for (let i = 0; i < 20_000; i++) nat.fill(a, i);
      nat.free(big);
      nat.free(a);
      nat.free(b);
    });
    expect(run).toThrow(/length/);
    expect(addon.nativeBytesLive()).toBe(bytes);
  });

  it('a shape getter that re-enters the backend cannot split a command', () => {
    const x = nat.alloc('float64', 6);
    const out = nat.alloc('float64', 2);
    const other = nat.alloc('float64', 1);
    nat.fill(x, 1);
    const shape = [2, 3];
    Object.defineProperty(shape, 1, { get() { nat.fill(other, 9); return 3; } });
    nat.reduce('sum', x, shape, [1], out);
    expect([...nat.readNumbers(out)]).toEqual([3, 3]);
    expect([...nat.readNumbers(other)]).toEqual([9]);
    for (const s of [x, out, other]) nat.free(s);
  });

  it('a freed storage stays rejected after its handle is reused', () => {
    const a = nat.alloc('float64', 2);
    nat.free(a);
    const b = nat.alloc('float64', 2); // takes a's handle
    nat.fill(b, 3);
    expect(() => nat.fill(a, 1)).toThrow(/freed/);
    expect(() => nat.readNumbers(a)).toThrow(/freed/);
    expect([...nat.readNumbers(b)]).toEqual([3, 3]);
    nat.free(b);
  });
});

// Handles far above any the backend hands out, so raw commands cannot touch other tests' buffers.
const H = 1 << 23;

describe('the addon rejects malformed commands', () => {
  const cases: [string, number[]][] = [
    ['an unknown opcode', [99, 2]],
    ['a negative opcode', [-1, 2]],
    ['a fractional length', [0, 4.5, H, 1, 4]],
    ['a length past the buffer', [0, 50, H, 1, 4]],
    ['a truncated frame', [0]],
    ['a missing field', [0, 4, H, 1]],
    ['a trailing field', [0, 6, H, 1, 4, 9]],
    ['handle 0', [0, 5, 0, 1, 4]],
    ['a handle out of range', [0, 5, 2 ** 24, 1, 4]],
    ['a NaN handle', [0, 5, NaN, 1, 4]],
    // On a free handle, so that only the dtype can be at fault (codes 0-5 are the six dtypes).
    ['an unknown dtype', [0, 5, H + 1, 6, 4]],
    ['a fractional dtype', [0, 5, H + 1, 2.5, 4]],
    ['a negative length', [0, 5, H, 1, -4]],
    ['a huge length', [0, 5, H, 1, 2 ** 52]],
    ['a kernel on a handle never allocated', [2, 4, H + 5, 1]],
    ['an op index out of range', [7, 5, 99, H, H]],
    ['a view of rank 33', [11, 8, H, 33, 0, 1, 1, H]],
    ['a view whose stride reads past the buffer', [11, 8, H, 1, 0, 4, 1000, H]],
    ['a flag that is not 0 or 1', [9, 7, 0, H, 1, 2, H]],
    ['a reduce with too many axes', [13, 40, 0, H, 1, 4, 33, ...new Array(33).fill(0), H]],
    ['a gemm whose sizes overflow its buffers', [15, 13, H, H, H, 1, 1000, 1000, 1000, 0, 0, 0, 0]],
    ['an infinite stream tag', [17, 3, Infinity]],
  ];

  it.each(cases)('%s', (_name, doubles) => {
    // One live buffer at H (4 float64) for the commands that need a valid handle somewhere.
    runRawCommands([0, 5, H, 1, 4]);
    try {
      expect(() => runRawCommands(doubles)).toThrow(Error);
    } finally {
      runRawCommands([1, 3, H]);
    }
    // The engine still works afterwards.
    const x = nat.alloc('float64', 2);
    nat.fill(x, 1.5);
    expect([...nat.readNumbers(x)]).toEqual([1.5, 1.5]);
    nat.free(x);
  });

  it('10,000 random commands never crash, and every raw buffer can be freed', () => {
    const r = rng(20261127);
    const bytes = addon.nativeBytesLive();
    const field = (): number => {
      const k = r();
      if (k < 0.35) return H + Math.floor(r() * 8); // a raw handle, live or not
      if (k < 0.6) return Math.floor(r() * 6); // small integers: dtypes, ranks, flags, op indices
      if (k < 0.75) return Math.floor(r() * 64);
      const odd = [-1, 0.5, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 1e300, 33, 2 ** 24];
      return odd[Math.floor(r() * odd.length)];
    };
    let failures = 0;
    for (let i = 0; i < 10_000; i++) {
      const op = Math.floor(r() * 18);
      const n = Math.floor(r() * 14);
      const doubles = [op, 2 + n];
      for (let j = 0; j < n; j++) doubles.push(field());
      // Allocations and frees name raw handles only (small ones are the backend's), and
      // allocations stay small: at most 63 elements.
      if ((op === 0 || op === 1) && n >= 1 && Number.isInteger(doubles[2]) && doubles[2] < H) doubles[2] = H + Math.abs(doubles[2] % 8);
      if (op === 0 && n >= 3 && !(doubles[4] >= 0 && doubles[4] < 64)) doubles[4] = 8;
      try {
        runRawCommands(doubles);
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(0);
    for (let h = H; h < H + 8; h++) runRawCommands([1, 3, h]);
    runRawCommands([17, 3, 0]); // the fuzz may have left another stream tag in force
    expect(addon.nativeBytesLive()).toBe(bytes);
  });
});
