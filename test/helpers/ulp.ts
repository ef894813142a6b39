/**
 * float32 ulp arithmetic for the tests of the float32-native transcendental kernels, and their
 * documented bounds (src/native/kernels/unary_f32.h, docs/API.md "Precision").
 */

/** Worst error of each float32 SIMD kernel, in ulps of the exact value. */
export const F32_ULP_BOUND = { exp: 1, log: 1, tanh: 2, sigmoid: 1, expm1: 1, log1p: 1, softrelu: 2 } as const;
export type F32SimdOp = keyof typeof F32_ULP_BOUND;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
/** The spacing of float32 values at |v| (v's binade; 2^-149 among the denormals). */
export function ulp32(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  f64[0] = a;
  const e = ((u32[1] >>> 20) & 0x7ff) - 1023;
  return 2 ** (Math.min(e, 127) - 23);
}

/** Error of `got` (a float32 result) in ulps of `exact`; Infinity for a wrong special value. */
export function ulpError(got: number, exact: number): number {
  if (Number.isNaN(exact) || Number.isNaN(got)) return Number.isNaN(exact) && Number.isNaN(got) ? 0 : Infinity;
  const rounded = Math.fround(exact);
  if (!Number.isFinite(rounded) || !Number.isFinite(got)) return Object.is(got, rounded) ? 0 : Infinity;
  return Math.abs(got - exact) / ulp32(exact);
}

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
/** A float32's position on the number line in floats: neighbours differ by 1, and -0 = +0. */
export function floatIndex(v: number): number {
  f32[0] = v;
  return i32[0] < 0 ? -(i32[0] & 0x7fffffff) : i32[0];
}
