// The float32 transcendental kernels (vmath_f32.inl) on AVX-512F: sixteen lanes, masks as
// __mmask16, 2^n by vscalefps (one rounding into the denormals or to inf).
#include <immintrin.h>

// GCC 12 flags the deliberately undefined pass-through operand (_mm512_undefined_ps) inside its
// own unmasked AVX-512 intrinsics as maybe-uninitialized; the lanes it names are never used.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>

#include "kernels/unary_f32.h"

#define GS_VM_TARGET __attribute__((target("avx512f")))
#define GS_VM_INLINE __attribute__((target("avx512f"), always_inline)) static inline

namespace gs {
namespace {

struct S {
  using V = __m512;
  using M = __mmask16;
  using I = __m512i;
  static constexpr int W = 16;
  GS_VM_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  GS_VM_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  GS_VM_INLINE void stream(float* p, V v) { _mm512_stream_ps(p, v); }
  GS_VM_INLINE void fence() { _mm_sfence(); }
  GS_VM_INLINE V set1(float v) { return _mm512_set1_ps(v); }
  GS_VM_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  GS_VM_INLINE V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  GS_VM_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  GS_VM_INLINE V div(V a, V b) { return _mm512_div_ps(a, b); }
  GS_VM_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  GS_VM_INLINE V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  GS_VM_INLINE V min(V a, V b) { return _mm512_min_ps(a, b); }
  GS_VM_INLINE V max(V a, V b) { return _mm512_max_ps(a, b); }
  GS_VM_INLINE V abs(V a) { return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
  GS_VM_INLINE V neg(V a) { return _mm512_castsi512_ps(_mm512_xor_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  GS_VM_INLINE V copysign(V mag, V sgn) {
    const I s = _mm512_set1_epi32(INT32_MIN);
    return _mm512_castsi512_ps(_mm512_or_epi32(_mm512_andnot_epi32(s, _mm512_castps_si512(mag)),
                                               _mm512_and_epi32(s, _mm512_castps_si512(sgn))));
  }
  GS_VM_INLINE V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  GS_VM_INLINE M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  GS_VM_INLINE M eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  GS_VM_INLINE M isnan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  GS_VM_INLINE M mand(M a, M b) { return static_cast<M>(a & b); }
  GS_VM_INLINE V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
  GS_VM_INLINE I bits(V a) { return _mm512_castps_si512(a); }
  GS_VM_INLINE V frombits(I a) { return _mm512_castsi512_ps(a); }
  GS_VM_INLINE I iset1(int32_t v) { return _mm512_set1_epi32(v); }
  GS_VM_INLINE I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  GS_VM_INLINE I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  GS_VM_INLINE I iand(I a, I b) { return _mm512_and_epi32(a, b); }
  GS_VM_INLINE I srai23(I a) { return _mm512_srai_epi32(a, 23); }
  GS_VM_INLINE V tofloat(I a) { return _mm512_cvtepi32_ps(a); }
  GS_VM_INLINE V ldexp(V p, V n) { return _mm512_scalef_ps(p, n); }
};

#include "kernels/vmath_f32.inl"

}  // namespace

bool unary_f32_avx512(Unary op, const float* x, float* o, int64_t n, bool nt) { return map_unary_f32(op, x, o, n, nt); }

}  // namespace gs
