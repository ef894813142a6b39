// Register-tiled GEMM micro-kernels, one set per instruction set. A micro-kernel multiplies a
// packed A panel (k steps of mr values) by a packed B panel (k steps of nr values) into an
// mr x nr tile of C with row stride ldc, overwriting it or adding to it.
#pragma once
#include <cstdint>

namespace gs {

template <class T>
struct MicroKernel {
  int mr = 0, nr = 0;
  void (*run)(int64_t k, const T* a, const T* b, T* c, int64_t ldc, bool accumulate) = nullptr;
};

struct MicroKernels {
  MicroKernel<float> f32;
  MicroKernel<double> f64;
};

MicroKernels micro_kernels_sse2();
MicroKernels micro_kernels_avx2();
MicroKernels micro_kernels_avx512();

}  // namespace gs
