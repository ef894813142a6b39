// AVX2 + FMA micro-kernels: 16 ymm registers hold a 6 x 2-vector tile (12 accumulators).
#include <immintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "avx2,fma"
#define GS_UK_INLINE __attribute__((target(GS_UK_TARGET), always_inline)) static inline

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  GS_UK_INLINE V zero() { return _mm256_setzero_pd(); }
  GS_UK_INLINE V load(const T* p) { return _mm256_loadu_pd(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  GS_UK_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm256_storeu_pd(p, v); }
};

struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;
  GS_UK_INLINE V zero() { return _mm256_setzero_ps(); }
  GS_UK_INLINE V load(const T* p) { return _mm256_loadu_ps(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  GS_UK_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm256_storeu_ps(p, v); }
};

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_avx2() {
  MicroKernels k;
  k.f32 = make_micro_kernel<F32, 6, 2>();
  k.f64 = make_micro_kernel<F64, 6, 2>();
  return k;
}

}  // namespace gs
