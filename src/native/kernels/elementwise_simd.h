// AVX2 + FMA paths of the elementwise kernels, chosen at run time (never by -march): each entry
// point is compiled with a target attribute and only called when simd_elementwise() says so.
#pragma once
#include <cstdint>

#include "kernels/ops.h"

namespace gs {

// True when the CPU (and OS) support AVX2 and FMA and the SIMD cap (setSimdCap) allows AVX2.
bool simd_elementwise();

// float64 exp over n contiguous elements; out may be x. Lanes with |x| > 708 or NaN fall back to
// std::exp, so every element's result depends only on its value (never on chunking or the thread
// count). float32 exp has its own float32-native kernels (unary_f32.h).
void exp_avx2(const double* x, double* o, int64_t n);

// Contiguous binary runs: kind 0 is array-array, 1 array-scalar (b[0]), 2 scalar-array (a[0]).
// nt: store add/sub/mul/div results with non-temporal stores (for outputs much larger than the
// last-level cache). Returns false when the op has no SIMD path (the caller runs the generic loop).
bool binary_avx2(Binary op, int kind, const double* a, const double* b, double* o, int64_t n, bool nt);
bool binary_avx2(Binary op, int kind, const float* a, const float* b, float* o, int64_t n, bool nt);

// Outputs of at least this many bytes are written with non-temporal stores (see binary_avx2).
constexpr int64_t kStreamStoreBytes = int64_t(16) << 20;

}  // namespace gs
