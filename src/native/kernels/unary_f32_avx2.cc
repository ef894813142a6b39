// The float32 transcendental kernels (vmath_f32.inl) on AVX2 + FMA: eight lanes, masks as vectors.
// Only functions carrying the target attribute use AVX2, as in elementwise_avx2.cc.
#include <immintrin.h>

#include <cstdint>

#include "kernels/unary_f32.h"

#define GS_VM_TARGET __attribute__((target("avx2,fma")))
#define GS_VM_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

namespace gs {
namespace {

struct S {
  using V = __m256;
  using M = __m256;
  using I = __m256i;
  static constexpr int W = 8;
  GS_VM_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  GS_VM_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  GS_VM_INLINE void stream(float* p, V v) { _mm256_stream_ps(p, v); }
  GS_VM_INLINE void fence() { _mm_sfence(); }
  GS_VM_INLINE V set1(float v) { return _mm256_set1_ps(v); }
  GS_VM_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  GS_VM_INLINE V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  GS_VM_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  GS_VM_INLINE V div(V a, V b) { return _mm256_div_ps(a, b); }
  GS_VM_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }    // a b + c
  GS_VM_INLINE V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  // min/max return the second operand when either is NaN (exp_v relies on it only to clamp).
  GS_VM_INLINE V min(V a, V b) { return _mm256_min_ps(a, b); }
  GS_VM_INLINE V max(V a, V b) { return _mm256_max_ps(a, b); }
  GS_VM_INLINE V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  GS_VM_INLINE V neg(V a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
  GS_VM_INLINE V copysign(V mag, V sgn) {
    const V s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  GS_VM_INLINE V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  GS_VM_INLINE M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  GS_VM_INLINE M eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  GS_VM_INLINE M isnan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  GS_VM_INLINE M mand(M a, M b) { return _mm256_and_ps(a, b); }
  GS_VM_INLINE V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }  // m ? a : b
  GS_VM_INLINE I bits(V a) { return _mm256_castps_si256(a); }
  GS_VM_INLINE V frombits(I a) { return _mm256_castsi256_ps(a); }
  GS_VM_INLINE I iset1(int32_t v) { return _mm256_set1_epi32(v); }
  GS_VM_INLINE I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  GS_VM_INLINE I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  GS_VM_INLINE I iand(I a, I b) { return _mm256_and_si256(a, b); }
  GS_VM_INLINE I srai23(I a) { return _mm256_srai_epi32(a, 23); }
  GS_VM_INLINE V tofloat(I a) { return _mm256_cvtepi32_ps(a); }
  // p 2^n for integral n in [-150, 128]: in two factors 2^(n/2) and 2^(n - n/2), each a normal
  // float, so the product overflows to inf or lands in the denormals with a single rounding.
  GS_VM_INLINE V ldexp(V p, V n) {
    const I k = _mm256_cvtps_epi32(n);
    const I h = _mm256_srai_epi32(k, 1);
    const I bias = _mm256_set1_epi32(127);
    const V a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    const V b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(k, h), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, a), b);
  }
};

#include "kernels/vmath_f32.inl"

}  // namespace

bool unary_f32_avx2(Unary op, const float* x, float* o, int64_t n, bool nt) { return map_unary_f32(op, x, o, n, nt); }

}  // namespace gs
