// AVX2 + FMA micro-kernels: 16 ymm registers hold a 6 x 2-vector tile (12 accumulators); narrow
// products take 8 rows of one vector or 6 rows of two; dot products 2 x 4 (8 accumulators, 6 loads).
#include <immintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "avx2,fma"

GS_UK_TRAITS(F64, double, __m256d, 4, _mm256, pd, _mm256_broadcast_sd(p), _mm256_fmadd_pd(a, b, c));
GS_UK_TRAITS(F32, float, __m256, 8, _mm256, ps, _mm256_broadcast_ss(p), _mm256_fmadd_ps(a, b, c));

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_avx2() { return make_micro_kernels<F32, F64, 6, 2, 8, 6, 2, 4>(); }

}  // namespace gs
