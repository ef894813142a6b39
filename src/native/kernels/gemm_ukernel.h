// Register-tiled GEMM micro-kernels, one set per instruction set. A micro-kernel multiplies a
// packed A panel (k steps of mr values) by a B panel (k steps of nr values, ldb apart: nr when
// packed, B's row length when read where it lies) into an mr x nr tile of C with row stride ldc,
// overwriting it or adding to it.
#pragma once
#include <cstdint>

namespace gs {

template <class T>
struct MicroKernel {
  int mr = 0, nr = 0;
  void (*run)(int64_t k, const T* a, const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) = nullptr;
};

// Narrow products (C no wider than `width`, one or two vectors): A is read where it lies (row i
// at a + i * lda, or with ta column i of a k x m matrix), B comes packed k x width with zero
// padding, and mr rows of C are computed a call, of which the first `rows` are written (added
// to C with accumulate). Packing A, which costs as much as the product when n is this small, is
// what the general path would do.
template <class T>
struct NarrowKernel {
  int mr = 0, width = 0;
  void (*run)(int64_t k, const T* a, int64_t lda, bool ta, const T* b, T* c, int64_t ldc, int rows, int n,
              bool accumulate) = nullptr;
};

// Products with a small C and a long depth, both operands along it (A m x k, B n x k: a
// convolution's weight gradient, window values by filters summed over every position of the
// batch): each value of C is the dot product of a row of A and a row of B, read where they lie.
// One call computes an mr x nr block of them over k, the first `rows` x `cols` written (added to
// C with accumulate); rows and cols past those repeat the last real one and are dropped.
template <class T>
struct DotKernel {
  int mr = 0, nr = 0;
  void (*run)(int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int rows, int cols,
              bool accumulate) = nullptr;
};

struct MicroKernels {
  MicroKernel<float> f32;
  MicroKernel<double> f64;
  DotKernel<float> f32_dot;
  DotKernel<double> f64_dot;
  // [0]: one vector wide, [1]: two.
  NarrowKernel<float> f32_narrow[2];
  NarrowKernel<double> f64_narrow[2];
};

MicroKernels micro_kernels_sse2();
MicroKernels micro_kernels_avx2();
MicroKernels micro_kernels_avx512();

}  // namespace gs

// The vector traits gemm_ukernel.inl is written against, for one dtype of one instruction set:
// NAME(T, V, W) over intrinsics PREFIX_op_SUFFIX (`_mm256_loadu_pd`), with the broadcast and the
// multiply-add given whole since instruction sets spell them differently (SSE2 has no FMA). Each
// file defines GS_UK_TARGET before expanding it: the target attribute, not -march, is what lets
// one binary hold every instruction set and pick at run time; always_inline because a trait left
// as a call inside the micro-kernel's loop would cost more than the instruction it wraps.
#define GS_UK_INLINE __attribute__((target(GS_UK_TARGET), always_inline)) static inline
#define GS_UK_TRAITS(NAME, TYPE, VEC, WIDTH, PREFIX, SUFFIX, BCAST, FMA)               \
  struct NAME {                                                                        \
    using T = TYPE;                                                                    \
    using V = VEC;                                                                     \
    static constexpr int W = WIDTH;                                                    \
    GS_UK_INLINE V zero() { return PREFIX##_setzero_##SUFFIX(); }                      \
    GS_UK_INLINE V load(const T* p) { return PREFIX##_loadu_##SUFFIX(p); }             \
    GS_UK_INLINE V bcast(const T* p) { return BCAST; }                                 \
    GS_UK_INLINE V fma(V a, V b, V c) { return FMA; }                                  \
    GS_UK_INLINE V add(V a, V b) { return PREFIX##_add_##SUFFIX(a, b); }               \
    GS_UK_INLINE void store(T* p, V v) { PREFIX##_storeu_##SUFFIX(p, v); }             \
  }
