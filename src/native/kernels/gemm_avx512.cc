// AVX-512F micro-kernels: 32 zmm registers hold a 12 x 2-vector tile (24 accumulators).
#include <immintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "avx512f"
#define GS_UK_INLINE __attribute__((target(GS_UK_TARGET), always_inline)) static inline

struct F64 {
  using T = double;
  using V = __m512d;
  static constexpr int W = 8;
  GS_UK_INLINE V zero() { return _mm512_setzero_pd(); }
  GS_UK_INLINE V load(const T* p) { return _mm512_loadu_pd(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm512_set1_pd(*p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  GS_UK_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm512_storeu_pd(p, v); }
};

struct F32 {
  using T = float;
  using V = __m512;
  static constexpr int W = 16;
  GS_UK_INLINE V zero() { return _mm512_setzero_ps(); }
  GS_UK_INLINE V load(const T* p) { return _mm512_loadu_ps(p); }
  GS_UK_INLINE V bcast(const T* p) { return _mm512_set1_ps(*p); }
  GS_UK_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  GS_UK_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  GS_UK_INLINE void store(T* p, V v) { _mm512_storeu_ps(p, v); }
};

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_avx512() {
  MicroKernels k;
  k.f32 = make_micro_kernel<F32, 12, 2>();
  k.f64 = make_micro_kernel<F64, 12, 2>();
  return k;
}

}  // namespace gs
