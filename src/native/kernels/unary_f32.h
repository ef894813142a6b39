// float32-native SIMD kernels for exp, log, tanh, sigmoid, expm1, log1p and softrelu
// (vmath_f32.inl), one build per
// instruction set, chosen at run time by the SIMD level in force (gemm.h: simd_level()).
//
// They compute in float32 instead of rounding a double result, so they are not bit-identical to
// the reference backend (Math.fround(Math.exp(x))); their error against the exact value, checked
// over a sweep of float32 inputs for every path, is at most 1 ulp for exp, log, sigmoid, expm1
// and log1p and 2 ulp for tanh and softrelu, denormal results included (test/helpers/ulp.ts holds
// the same figures).
// Special values are exact: exp(-inf) = 0, exp(inf) = inf, overflow to inf and underflow to
// denormals or 0 as IEEE rounding gives; log(+-0) = -inf, log of a negative number = NaN;
// NaN in gives NaN out; expm1 and log1p keep the sign of zero.
#pragma once
#include <cstdint>

#include "kernels/ops.h"

namespace gs {

// True when op (one of the seven above) has a float32 SIMD kernel at the level in force (AVX2 +
// FMA or AVX-512F).
bool unary_f32_simd_available(Unary op);

// Runs op over n contiguous elements (out may be x) if unary_f32_simd_available(op), with
// non-temporal stores when nt; returns false (doing nothing) otherwise.
bool unary_f32_simd(Unary op, const float* x, float* o, int64_t n, bool nt);

// Per instruction set; only called when the CPU has it.
bool unary_f32_avx2(Unary op, const float* x, float* o, int64_t n, bool nt);
bool unary_f32_avx512(Unary op, const float* x, float* o, int64_t n, bool nt);

}  // namespace gs
