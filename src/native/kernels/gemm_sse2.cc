// Baseline x86-64 micro-kernels (SSE2, no FMA): the path for CPUs without AVX2.
#include <emmintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "sse2"
#define GS_UK_INLINE __attribute__((target(GS_UK_TARGET), always_inline)) static inline

struct F64 {
  using T = double;
  using V = __m128d;
  static constexpr int W = 2;
  GS_UK_INLINE V zero() { return _mm_setzero_pd(); }
  GS_UK_INLINE V load(const T* p) { return _mm_loadu_pd(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm_set1_pd(*p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm_add_pd(_mm_mul_pd(a, b), c); }
  GS_UK_INLINE V add(V a, V b) { return _mm_add_pd(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm_storeu_pd(p, v); }
};

struct F32 {
  using T = float;
  using V = __m128;
  static constexpr int W = 4;
  GS_UK_INLINE V zero() { return _mm_setzero_ps(); }
  GS_UK_INLINE V load(const T* p) { return _mm_loadu_ps(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm_set1_ps(*p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  GS_UK_INLINE V add(V a, V b) { return _mm_add_ps(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm_storeu_ps(p, v); }
};

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_sse2() {
  MicroKernels k;
  k.f32 = make_micro_kernel<F32, 6, 2>();
  k.f64 = make_micro_kernel<F64, 6, 2>();
  return k;
}

}  // namespace gs
