/**
 * How a number becomes an element of each dtype, the rule both backends follow (the native one in
 * src/native/kernels/convert.h):
 * - integers: truncated toward zero, NaN and infinities give 0, out-of-range values wrap modulo
 *   2^bits (JS typed arrays' ToInt32/ToUint8; x86 gives MXNet the same for uint8);
 * - float32: rounded to nearest (Math.fround); float16: rounded to nearest, ties to even, NaN to
 *   the one quiet NaN 0x7e00.
 */
import type { DType } from './backend.js';

const TWO63 = 2 ** 63;
const TWO64 = 2 ** 64;

/** The int64 that v converts to, as a double (exact up to 2^53, the nearest double beyond). */
export function toInt64(v: number): number {
  if (!Number.isFinite(v)) return 0;
  const t = Math.trunc(v) + 0; // + 0 turns -0 into 0
  if (t >= -TWO63 && t < TWO63) return t;
  // |t| >= 2^63 is a multiple of 2^11: the remainder and corrections are exact.
  let m = t % TWO64;
  if (m >= TWO63) m -= TWO64;
  if (m < -TWO63) m += TWO64;
  return m;
}

/** Round half to even of x >= 0 (x < 2^52). */
function rne(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** The float16 bits nearest to v. */
export function halfBits(v: number): number {
  if (v !== v) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | rne(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let mant = rne((a / 2 ** e - 1) * 1024);
  if (mant === 1024) { mant = 0; e++; }
  return sign | ((e + 15) << 10) | mant;
}

/** The value of float16 bits h. */
export function halfValue(h: number): number {
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (m + 1024) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

const toInt32 = (v: number): number => v | 0;
const toUint8 = (v: number): number => (Number.isFinite(v) ? ((Math.trunc(v) % 256) + 256) % 256 : 0);

/** v as an element of dtype, returned as the number that element holds. */
export const toDType: Readonly<Record<DType, (v: number) => number>> = {
  float32: Math.fround,
  float64: (v) => v,
  int32: toInt32,
  int64: toInt64,
  uint8: toUint8,
  float16: (v) => halfValue(halfBits(v)),
};
