// Batched GEMM, as specified in backend.ts: C_p = op(A_p) @ op(B_p).
#pragma once
#include "kernels/common.h"

namespace gs {

Work gemm(const Buf& a, const Buf& b, const Buf& out, int64_t batch, int64_t m, int64_t n, int64_t k,
          bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b);

// The instruction set the GEMM micro-kernels and the SIMD elementwise kernels use: "avx512f",
// "avx2" or "sse2" (baseline x86-64: plain compiled loops, libm for transcendentals). Capping it
// (GRADSERVE_ISA, tests, benchmarks) never raises it above what the CPU supports; returns the
// level in force.
const char* simd_level();
const char* set_simd_cap(const char* level);
// True while the level in force is AVX2 or higher (the elementwise kernels follow the same cap).
bool simd_at_least_avx2();
// True while the level in force is AVX-512F (the float32 transcendental kernels use it).
bool simd_at_least_avx512();

}  // namespace gs
