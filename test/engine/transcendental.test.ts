/**
 * The float32 exp, log, tanh, sigmoid, expm1, log1p and softrelu kernels against float64 Math.* on a sweep of float32
 * inputs (a stride through every bit pattern, both signs, plus the edges), on every SIMD path this
 * CPU has: avx512f and avx2 run the float32-native vector kernels (src/native/kernels/vmath_f32.inl),
 * sse2 the scalar libm ones. Each path must stay within the documented ulp bound (unary_f32.h,
 * docs/API.md), with special values exact. The test names say which path ran; a path the CPU
 * lacks is skipped, not passed.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { loadNativeAddon, nativeBackend as nat, SIMD_LEVELS } from '../../src/engine/native.js';
import { runProcess } from '../helpers/process.js';
import { F32_ULP_BOUND, ulpError, type F32SimdOp } from '../helpers/ulp.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');

const ULP_BOUND = F32_ULP_BOUND;
type Op = F32SimdOp;
const EXACT: Record<Op, (x: number) => number> = {
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  // Split by sign as the reference does: neither side overflows, and float64 is far finer.
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  expm1: Math.expm1,
  log1p: Math.log1p,
  softrelu: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))),
};

const EDGES = [
  0, -0, Infinity, -Infinity, NaN, 1, -1, 0.5, -0.5, 2, 10, -10, 1e-8, -1e-8, 2 ** -149, -(2 ** -149), 2 ** -126,
  2 ** -127, 1.1754942e-38, 3.4028235e38, -3.4028235e38,
  // exp: overflow and underflow edges, the reduction's half-way points, the clamp bounds
  88.72283, 88.72284, 88.7229, 89, 89.5, -87.33654, -87.3366, -103.27893, -103.97208, -103.9721, -104, -104.1, -150,
  0.34657359, -0.34657359, 0.3466, -0.3466, 1.0397208, 100, -100,
  // log: around 1 and sqrt(1/2), sqrt(2)
  0.99999994, 1.0000001, 0.70710677, 0.7071068, 1.4142135, 1.4142137, 0.75, 1.5,
  // tanh: the polynomial/exp split, saturation; sigmoid: the denormal tail
  0.625, 0.62499994, 0.6250001, -0.625, 9, 9.1, -9.1, 20, -20, -88, -95, -103.5,
];

/** float32 inputs: every 4099th bit pattern (both signs, all exponents, NaNs included) and the edges. */
function sweep(): Float32Array {
  const bits: number[] = [];
  for (let b = 0; b < 2 ** 32; b += 4099) bits.push(b);
  const xs = new Float32Array(bits.length + EDGES.length);
  new Uint32Array(xs.buffer, 0, bits.length).set(bits);
  xs.set(EDGES, bits.length);
  return xs;
}
const XS = sweep();

function run(op: Op, xs: Float32Array): Float64Array {
  const s = nat.alloc('float32', xs.length);
  const o = nat.alloc('float32', xs.length);
  try {
    nat.writeBytes(s, new Uint8Array(xs.buffer, xs.byteOffset, xs.byteLength));
    nat.unary(op, s, o);
    return nat.readNumbers(o);
  } finally {
    nat.free(s); nat.free(o);
  }
}

const hw = addon.setSimdCap('avx512f');
const rank = (level: string) => SIMD_LEVELS.indexOf(level as (typeof SIMD_LEVELS)[number]);
afterAll(() => { addon.setSimdCap(hw); });

describe('float32 transcendental kernels on every SIMD path', () => {
  for (const level of SIMD_LEVELS) {
    const missing = rank(level) < rank(hw);
    for (const op of Object.keys(ULP_BOUND) as Op[]) {
      it.skipIf(missing)(`${op} within ${ULP_BOUND[op]} ulp on the ${level} path`, () => {
        expect(addon.setSimdCap(level)).toBe(level);
        expect(addon.simdLevel()).toBe(level);
        const got = run(op, XS);
        let worst = 0;
        let at = 0;
        for (let i = 0; i < XS.length; i++) {
          const e = ulpError(got[i], EXACT[op](XS[i]));
          if (e > worst) { worst = e; at = i; }
        }
        console.log(`${level} ${op}: worst ${worst.toFixed(3)} ulp at x = ${XS[at]} over ${XS.length} inputs`);
        expect(worst, `${op}(${XS[at]}) = ${got[at]}, exact ${EXACT[op](XS[at])}`).toBeLessThanOrEqual(ULP_BOUND[op]);
      });
    }

    it.skipIf(missing)(`special values are exact on the ${level} path`, () => {
      addon.setSimdCap(level);
      const xs = Float32Array.of(Infinity, -Infinity, NaN, 0, -0, -1, 2 ** -149, 100, -200);
      const want: Record<Op, number[]> = {
        exp: [Infinity, 0, NaN, 1, 1, Math.fround(Math.exp(-1)), 1, Infinity, 0],
        log: [Infinity, NaN, NaN, -Infinity, -Infinity, NaN, Math.fround(Math.log(2 ** -149)), Math.fround(Math.log(100)), NaN],
        tanh: [1, -1, NaN, 0, -0, Math.fround(Math.tanh(-1)), 2 ** -149, 1, -1],
        sigmoid: [1, 0, NaN, 0.5, 0.5, Math.fround(EXACT.sigmoid(-1)), 0.5, 1, 0],
        expm1: [Infinity, -1, NaN, 0, -0, Math.fround(Math.expm1(-1)), 2 ** -149, Infinity, -1],
        log1p: [Infinity, NaN, NaN, 0, -0, -Infinity, 2 ** -149, Math.fround(Math.log1p(100)), NaN],
        softrelu: [Infinity, 0, NaN, Math.fround(Math.LN2), Math.fround(Math.LN2), Math.fround(EXACT.softrelu(-1)), Math.fround(Math.LN2), 100, 0],
      };
      for (const op of Object.keys(want) as Op[]) {
        expect(Array.from(run(op, xs)), `${op} on ${level}`).toEqual(want[op]);
      }
      // Denormal results and their rounding: exp and sigmoid reach below 2^-126 without flushing.
      const tiny = Float32Array.of(-88, -95, -103, -103.9);
      for (const op of ['exp', 'sigmoid'] as const) {
        const got = run(op, tiny);
        for (let i = 0; i < tiny.length; i++) {
          expect(got[i], `${op}(${tiny[i]}) on ${level}`).toBeGreaterThan(0);
          expect(ulpError(got[i], EXACT[op](tiny[i])), `${op}(${tiny[i]}) on ${level}`).toBeLessThanOrEqual(1);
        }
      }
    });

    it.skipIf(missing)(`results do not depend on length, offset or threads on the ${level} path`, () => {
      addon.setSimdCap(level);
      const base = XS.subarray(0, 70_001);
      for (const op of Object.keys(ULP_BOUND) as Op[]) {
        const whole = run(op, base);
        for (const [lo, n] of [[0, 1], [3, 5], [1, 17], [5, 33], [7, 1000], [11, 70_001 - 11]]) {
          const part = run(op, base.subarray(lo, lo + n));
          for (let i = 0; i < n; i++) {
            if (!Object.is(part[i], whole[lo + i])) expect(`${op}[${lo + i}] = ${part[i]}`).toBe(`${op}[${lo + i}] = ${whole[lo + i]}`);
          }
        }
      }
    });

    // Outputs of 16 MiB and more are stored non-temporally once aligned, and threads cut an array
    // where its length says, so a thread's part starts at any offset: on AVX2 a part starting 1 to 7
    // floats past a 64-byte line once computed the first 8 of its head and left the rest unwritten.
    it.skipIf(missing)(`streamed outputs split among threads at any alignment match one thread on the ${level} path`, () => {
      addon.setSimdCap(level);
      const threads0 = addon.getThreads();
      const n = (1 << 22) + 37;
      const xs = new Float32Array(n);
      for (let i = 0; i < n; i++) xs[i] = XS[(i * 7919) % XS.length];
      try {
        for (const op of ['tanh', 'exp'] as const) {
          addon.setThreads(1);
          const whole = run(op, xs);
          for (const t of [3, 7]) {
            addon.setThreads(t);
            const split = run(op, xs);
            for (let i = 0; i < n; i++) {
              if (!Object.is(split[i], whole[i])) expect(`${op}[${i}] with ${t} threads = ${split[i]}`).toBe(`${op}[${i}] with ${t} threads = ${whole[i]}`);
            }
          }
        }
      } finally {
        addon.setThreads(threads0);
      }
    });
  }
});

describe('GRADSERVE_ISA', () => {
  const probe = "import { loadNativeAddon } from './src/engine/native.ts'; console.log(loadNativeAddon().simdLevel());";
  const root = join(import.meta.dirname, '..', '..');
  const start = (isa: string) =>
    runProcess(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: root, env: { ...process.env, GRADSERVE_ISA: isa } });

  it('caps the level at load, never above the CPU', { timeout: 30_000 }, async () => {
    for (const isa of SIMD_LEVELS) {
      const r = await start(isa);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(rank(isa) < rank(hw) ? hw : isa);
    }
  });

  it('refuses an unknown level by name', { timeout: 30_000 }, async () => {
    const r = await start('avx9000');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/GRADSERVE_ISA must be one of avx512f, avx2, sse2 \(got 'avx9000'\)/);
  });
});
