// Run-time choice between the AVX-512F and AVX2 builds of the float32 transcendental kernels.
#include "kernels/unary_f32.h"

#include "kernels/elementwise_simd.h"
#include "kernels/gemm.h"

namespace gs {

bool unary_f32_simd_available(Unary op) {
  switch (op) {
    case Unary::exp: case Unary::log: case Unary::tanh: case Unary::sigmoid:
    case Unary::expm1: case Unary::log1p: case Unary::softrelu:
      return simd_elementwise();
    default:
      return false;
  }
}

bool unary_f32_simd(Unary op, const float* x, float* o, int64_t n, bool nt) {
  if (!unary_f32_simd_available(op)) return false;
  if (simd_at_least_avx512()) return unary_f32_avx512(op, x, o, n, nt);
  return unary_f32_avx2(op, x, o, n, nt);
}

}  // namespace gs
