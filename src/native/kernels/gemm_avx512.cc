// AVX-512F micro-kernels: 32 zmm registers hold a 12 x 2-vector tile (24 accumulators); narrow
// products take 16 rows of one vector or 12 rows of two; dot products 3 x 6 (18 accumulators and
// the 9 vectors they are fed from).
#include <immintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "avx512f"

GS_UK_TRAITS(F64, double, __m512d, 8, _mm512, pd, _mm512_set1_pd(*p), _mm512_fmadd_pd(a, b, c));
GS_UK_TRAITS(F32, float, __m512, 16, _mm512, ps, _mm512_set1_ps(*p), _mm512_fmadd_ps(a, b, c));

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_avx512() { return make_micro_kernels<F32, F64, 12, 2, 16, 12, 3, 6>(); }

}  // namespace gs
