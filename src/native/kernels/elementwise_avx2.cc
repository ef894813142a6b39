// AVX2 + FMA elementwise kernels. Only functions carrying GS_AVX2 use AVX2 instructions (no pragma
// or per-file flag), so nothing shared with the rest of the addon is compiled for AVX2.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/elementwise_simd.h"
#include "kernels/gemm.h"
#include "kernels/scalar_ops.h"

#define GS_AVX2 __attribute__((target("avx2,fma")))
#define GS_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

namespace gs {
namespace {

bool detect_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
const bool g_avx2_fma = detect_avx2_fma();

// exp(x) for |x| <= 708: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite, ln2 split in two, FMA so
// the first step is exact), exp(r) by its Taylor series to degree 12 (truncation below 2e-16
// relative on that interval), then scaled by 2^n built in the exponent bits. About 1 ulp.
GS_AVX2_INLINE __m256d exp_core(__m256d x) {
  const __m256d shift = _mm256_set1_pd(0x1.8p52);  // adding it rounds to an integer in the low bits
  const __m256d k = _mm256_fmadd_pd(x, _mm256_set1_pd(0x1.71547652b82fep+0), shift);
  const __m256d n = _mm256_sub_pd(k, shift);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0x1.62e42fefa39efp-1), x);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0x1.abc9e3b39803fp-56), r);
  __m256d p = _mm256_set1_pd(1.0 / 479001600.0);             // 1/12!
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));  // 1/11!
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  // 2^n: the low 12 bits of k's mantissa hold n (two's complement); n + 1023 lies in [2, 2045].
  const __m256i e = _mm256_add_epi64(_mm256_slli_epi64(_mm256_castpd_si256(k), 52),
                                     _mm256_set1_epi64x(int64_t(1023) << 52));
  return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

// Lane mask (4 bits) of the lanes the vector path covers: |x| <= 708, NaN excluded.
GS_AVX2_INLINE int in_range(__m256d x) {
  const __m256d ax = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
  return _mm256_movemask_pd(_mm256_cmp_pd(ax, _mm256_set1_pd(708.0), _CMP_LE_OQ));
}

GS_AVX2_INLINE __m256d exp4(__m256d x) {
  __m256d y = exp_core(x);
  const int ok = in_range(x);
  if (__builtin_expect(ok != 0xF, 0)) {
    alignas(32) double xs[4], ys[4];
    _mm256_store_pd(xs, x);
    _mm256_store_pd(ys, y);
    for (int j = 0; j < 4; j++)
      if (!(ok >> j & 1)) ys[j] = std::exp(xs[j]);
    y = _mm256_load_pd(ys);
  }
  return y;
}

template <class T> struct Vec;
// One specialisation per dtype, over the intrinsics _mm256_op_SUFFIX.
#define GS_AVX2_VEC(TYPE, VEC, WIDTH, SUFFIX)                                            \
  template <> struct Vec<TYPE> {                                                         \
    using V = VEC;                                                                       \
    static constexpr int W = WIDTH;                                                      \
    GS_AVX2_INLINE V load(const TYPE* p) { return _mm256_loadu_##SUFFIX(p); }            \
    GS_AVX2_INLINE V bcast(const TYPE* p) { return _mm256_set1_##SUFFIX(*p); }           \
    GS_AVX2_INLINE void stream(TYPE* p, V v) { _mm256_stream_##SUFFIX(p, v); }           \
    template <Binary op> GS_AVX2_INLINE V apply(V a, V b) {                              \
      if constexpr (op == Binary::add) return _mm256_add_##SUFFIX(a, b);                 \
      else if constexpr (op == Binary::sub) return _mm256_sub_##SUFFIX(a, b);            \
      else if constexpr (op == Binary::mul) return _mm256_mul_##SUFFIX(a, b);            \
      else return _mm256_div_##SUFFIX(a, b);                                             \
    }                                                                                    \
  }
GS_AVX2_VEC(double, __m256d, 4, pd);
GS_AVX2_VEC(float, __m256, 8, ps);
#undef GS_AVX2_VEC

// add/sub/mul/div with non-temporal stores, for outputs far larger than the caches: the output
// lines are not read first (no write-allocate), which saves a quarter of the memory traffic.
// The same IEEE operation per element as the plain loop, so the same bits.
template <Binary op, class T>
GS_AVX2 void bin_stream(int kind, const T* a, const T* b, T* o, int64_t n) {
  using VT = Vec<T>;
  int64_t i = 0;
  auto one = [&](int64_t j) { o[j] = binary_op<op>(kind == 2 ? *a : a[j], kind == 1 ? *b : b[j]); };
  for (; i < n && (reinterpret_cast<uintptr_t>(o + i) & 31) != 0; i++) one(i);
  const typename VT::V sa = VT::bcast(a), sb = VT::bcast(b);
  if (kind == 0) {
    for (; i + VT::W <= n; i += VT::W) VT::stream(o + i, VT::template apply<op>(VT::load(a + i), VT::load(b + i)));
  } else if (kind == 1) {
    for (; i + VT::W <= n; i += VT::W) VT::stream(o + i, VT::template apply<op>(VT::load(a + i), sb));
  } else {
    for (; i + VT::W <= n; i += VT::W) VT::stream(o + i, VT::template apply<op>(sa, VT::load(b + i)));
  }
  for (; i < n; i++) one(i);
  _mm_sfence();  // order the streamed stores before whatever follows (thread join, flags)
}

template <Binary op, class T>
GS_AVX2 void bin_run(int kind, const T* a, const T* b, T* o, int64_t n) {
  // out may alias a or b: every element is read before it is written, at the same index.
  if (kind == 0) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(a[i], b[i]);
  } else if (kind == 1) {
    const T bv = *b;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(a[i], bv);
  } else {
    const T av = *a;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(av, b[i]);
  }
}

template <class T>
bool binary_t(Binary op, int kind, const T* a, const T* b, T* o, int64_t n, bool nt) {
  if (nt) {
    switch (op) {
      case Binary::add: bin_stream<Binary::add>(kind, a, b, o, n); return true;
      case Binary::sub: bin_stream<Binary::sub>(kind, a, b, o, n); return true;
      case Binary::mul: bin_stream<Binary::mul>(kind, a, b, o, n); return true;
      case Binary::div: bin_stream<Binary::div>(kind, a, b, o, n); return true;
      default: break;
    }
  }
  switch (op) {
    case Binary::add: bin_run<Binary::add>(kind, a, b, o, n); return true;
    case Binary::sub: bin_run<Binary::sub>(kind, a, b, o, n); return true;
    case Binary::mul: bin_run<Binary::mul>(kind, a, b, o, n); return true;
    case Binary::div: bin_run<Binary::div>(kind, a, b, o, n); return true;
    case Binary::maximum: bin_run<Binary::maximum>(kind, a, b, o, n); return true;
    case Binary::minimum: bin_run<Binary::minimum>(kind, a, b, o, n); return true;
    default: return false;
  }
}

}  // namespace

bool simd_elementwise() { return g_avx2_fma && simd_at_least_avx2(); }

GS_AVX2 void exp_avx2(const double* x, double* o, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4);
    _mm256_storeu_pd(o + i, exp4(a));
    _mm256_storeu_pd(o + i + 4, exp4(b));
  }
  for (; i < n; i += 4) {
    // The tail goes through the same vector code (padded), so results never depend on where a
    // chunk ends.
    alignas(32) double t[4] = {0, 0, 0, 0};
    const int64_t m = n - i < 4 ? n - i : 4;
    for (int64_t j = 0; j < m; j++) t[j] = x[i + j];
    _mm256_store_pd(t, exp4(_mm256_load_pd(t)));
    for (int64_t j = 0; j < m; j++) o[i + j] = t[j];
  }
}

bool binary_avx2(Binary op, int kind, const double* a, const double* b, double* o, int64_t n, bool nt) {
  return binary_t(op, kind, a, b, o, n, nt);
}
bool binary_avx2(Binary op, int kind, const float* a, const float* b, float* o, int64_t n, bool nt) {
  return binary_t(op, kind, a, b, o, n, nt);
}

}  // namespace gs
