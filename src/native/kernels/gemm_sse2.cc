// Baseline x86-64 micro-kernels (SSE2, no FMA): the path for CPUs without AVX2. Tiles as AVX2's.
#include <emmintrin.h>

#include "kernels/gemm_ukernel.h"

namespace gs {
namespace {

#define GS_UK_TARGET "sse2"

GS_UK_TRAITS(F64, double, __m128d, 2, _mm, pd, _mm_set1_pd(*p), _mm_add_pd(_mm_mul_pd(a, b), c));
GS_UK_TRAITS(F32, float, __m128, 4, _mm, ps, _mm_set1_ps(*p), _mm_add_ps(_mm_mul_ps(a, b), c));

#include "kernels/gemm_ukernel.inl"

}  // namespace

MicroKernels micro_kernels_sse2() { return make_micro_kernels<F32, F64, 6, 2, 8, 6, 2, 4>(); }

}  // namespace gs
