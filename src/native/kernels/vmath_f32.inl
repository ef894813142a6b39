// float32 exp, log, tanh, sigmoid, expm1, log1p and softrelu over SIMD lanes, written once against the lane operations of
// a traits struct `S` that the including file defines for its instruction set (with GS_VM_INLINE
// carrying that file's target attribute). Included inside an anonymous namespace.
//
// Error bounds (unary_f32.h): exp, log, sigmoid, expm1, log1p <= 1 ulp; tanh, softrelu <= 2 ulp.
// The worst seen over the sweep of test/engine/transcendental.test.ts (a million float32 inputs
// over every binade, both instruction sets alike): exp 0.74, log 0.88, tanh 1.20, sigmoid 0.71,
// expm1 0.96, log1p 0.83, softrelu 1.17 ulp.
// Every lane's result depends only on its input, so the tail, the chunking and the thread count
// never change a bit.
//
// The polynomials were fitted on Chebyshev nodes (iteratively reweighted least squares towards
// minimax relative error) and rounded to float32; their truncation error is below 0.1 ulp.

using V = S::V;
using M = S::M;
using I = S::I;

// exp(x) = 2^n (hi + lo) for x in [-104, 89]: x = n ln2 + r with n = round(x / ln2) and |r| <=
// ln2/2, r = x - n ln2_hi (exact: ln2_hi has 9 bits, so both the product and, by FMA, the
// difference are exact) - n ln2_lo (rounded once); exp(r) = 1 + r + r^2 q(r) with q of degree 4.
// 1 + r is split exactly into its rounded value and error (|r| < 1), the polynomial's rest added
// to the error, and the pair renormalized: hi is exp(r) rounded once, and hi + lo carries it to
// about 2^-26 (the rounding of r); exp_v uses hi, sigmoid_v both.
GS_VM_INLINE void exp_parts(V x, V& hi, V& lo, V& n) {
  n = S::round(S::mul(x, S::set1(0x1.715476p+0f)));
  V r = S::fnma(n, S::set1(0x1.63p-1f), x);
  r = S::fnma(n, S::set1(-0x1.bd0106p-13f), r);
  V q = S::set1(0x1.687d92p-10f);
  q = S::fma(q, r, S::set1(0x1.123b8ep-7f));
  q = S::fma(q, r, S::set1(0x1.555b56p-5f));
  q = S::fma(q, r, S::set1(0x1.55548ep-3f));
  q = S::fma(q, r, S::set1(0x1.fffff8p-2f));
  const V h = S::add(S::set1(1.0f), r);
  const V l = S::fma(q, S::mul(r, r), S::add(S::sub(S::set1(1.0f), h), r));
  // Renormalized, so that hi is the rounded exp(r) and |lo| is below half its ulp.
  hi = S::add(h, l);
  lo = S::add(S::sub(h, hi), l);
}

// Inputs are clamped to [-104, 89] first (exp is 0 and inf in float32 beyond those), so n fits
// S::ldexp's range, which overflows to inf and underflows into denormals with one rounding.
GS_VM_INLINE V exp_v(V x) {
  const V xc = S::max(S::min(x, S::set1(89.0f)), S::set1(-104.0f));
  V hi, lo, n;
  exp_parts(xc, hi, lo, n);
  // The clamp turned NaN into a number; put it back.
  return S::select(S::isnan(x), x, S::ldexp(hi, n));
}

// log(x): x = 2^k m with m in [sqrt(1/2), sqrt(2)) (the exponent taken relative to sqrt(1/2)'s
// bits), f = m - 1 (exact), log(1+f) = 2 atanh(s) with s = f / (2 + f), |s| <= 0.1716, written as
// f - s (f - R(s^2)) so that f itself carries the leading bits and the rounding errors only touch
// a correction below a fifth of the result; then k ln2 added with one rounding (FMA).
// log(x) + extra / x, for log1p's rounding correction (extra is below x's ulp; 0 for log itself).
template <bool kExtra>
GS_VM_INLINE V log_core(V x, V extra) {
  // Denormals are scaled into the normal range first (and their exponent corrected below).
  const M tiny = S::lt(x, S::set1(0x1p-126f));
  const V xs = S::select(tiny, S::mul(x, S::set1(0x1p23f)), x);
  const I ix = S::isub(S::bits(xs), S::iset1(0x3f3504f3));
  const V k = S::sub(S::tofloat(S::srai23(ix)), S::select(tiny, S::set1(23.0f), S::set1(0.0f)));
  const V m = S::frombits(S::iadd(S::iand(ix, S::iset1(0x007fffff)), S::iset1(0x3f3504f3)));
  const V f = S::sub(m, S::set1(1.0f));
  const V s = S::div(f, S::add(f, S::set1(2.0f)));
  const V z = S::mul(s, s);
  V R = S::set1(2.0f / 11);
  R = S::fma(R, z, S::set1(2.0f / 9));
  R = S::fma(R, z, S::set1(2.0f / 7));
  R = S::fma(R, z, S::set1(2.0f / 5));
  R = S::fma(R, z, S::set1(2.0f / 3));
  R = S::mul(R, z);
  V l1p;
  if constexpr (kExtra) {
    // The correction joins the small term, so f is still rounded against only once.
    l1p = S::sub(f, S::fma(s, S::sub(f, R), S::neg(S::div(extra, x))));
  } else {
    l1p = S::fnma(s, S::sub(f, R), f);
  }
  const V t = S::fma(k, S::set1(-0x1.05c610p-29f), l1p);
  const V y = S::fma(k, S::set1(0x1.62e430p-1f), t);
  // Everything outside (0, inf): log(+-0) = -inf, log(inf) = inf, negative or NaN gives NaN.
  const M ok = S::mand(S::lt(S::set1(0.0f), x), S::lt(x, S::set1(__builtin_inff())));
  const V special = S::select(S::eq(x, S::set1(0.0f)), S::set1(-__builtin_inff()),
                              S::select(S::eq(x, S::set1(__builtin_inff())), x, S::set1(__builtin_nanf(""))));
  return S::select(ok, y, special);
}

GS_VM_INLINE V log_v(V x) { return log_core<false>(x, x); }

// log1p(x) = log(w) + c / w with w = 1 + x rounded and c its exact rounding error (Fast2Sum,
// taking the larger of 1 and |x| first); -0 stays -0.
GS_VM_INLINE V log1p_v(V x) {
  const V one = S::set1(1.0f);
  const V w = S::add(one, x);
  const M small = S::lt(S::abs(x), one);
  const V big_part = S::select(small, one, x), small_part = S::select(small, x, one);
  const V c = S::sub(small_part, S::sub(w, big_part));
  return S::select(S::eq(x, S::set1(0.0f)), x, log_core<true>(w, c));
}

// expm1(x): for |x| < ln2/2 the series r + r^2 q(r) of exp_parts with n = 0 (no cancellation);
// beyond, 2^n (hi + lo) - 1 with the subtraction's error kept (Fast2Sum against -1) and added
// back with lo, so the result is rounded once more only. -0 stays -0; overflow gives inf.
GS_VM_INLINE V expm1_v(V x) {
  const V one = S::set1(1.0f);
  const V xc = S::max(S::min(x, S::set1(89.0f)), S::set1(-104.0f));
  V hi, lo, n;
  exp_parts(xc, hi, lo, n);
  const V A = S::ldexp(hi, n);
  const V a = S::select(S::lt(S::set1(100.0f), n), S::set1(0.0f), S::ldexp(lo, n));
  const M ge1 = S::lt(one, A);
  const V big = S::select(ge1, A, S::neg(one)), small = S::select(ge1, S::neg(one), A);
  const V t = S::add(big, small);
  const V e = S::sub(small, S::sub(t, big));
  V large = S::add(t, S::add(e, a));
  large = S::select(S::lt(A, S::set1(__builtin_inff())), large, A);
  V q = S::set1(0x1.687d92p-10f);
  q = S::fma(q, x, S::set1(0x1.123b8ep-7f));
  q = S::fma(q, x, S::set1(0x1.555b56p-5f));
  q = S::fma(q, x, S::set1(0x1.55548ep-3f));
  q = S::fma(q, x, S::set1(0x1.fffff8p-2f));
  const V near0 = S::fma(q, S::mul(x, x), x);
  const V y = S::select(S::lt(S::abs(x), S::set1(0.34657359f)), near0, large);
  return S::select(S::isnan(x), x, S::select(S::eq(x, S::set1(0.0f)), x, y));
}

// tanh(x) = sign(x) tanh(|x|): below 0.625 an odd polynomial y + y^3 P(y^2) (P of degree 4);
// above, 1 - 2 / (exp(2y) + 1), where the subtraction loses nothing (the quotient is below 0.45).
// exp(2y) overflowing gives exactly 1; NaN stays NaN through the second branch.
GS_VM_INLINE V tanh_v(V x) {
  const V y = S::abs(x);
  const V z = S::mul(y, y);
  V p = S::set1(-0x1.76be74p-8f);
  p = S::fma(p, z, S::set1(0x1.525e7ap-6f));
  p = S::fma(p, z, S::set1(-0x1.b84644p-5f));
  p = S::fma(p, z, S::set1(0x1.110782p-3f));
  p = S::fma(p, z, S::set1(-0x1.555534p-2f));
  const V small = S::fma(S::mul(y, z), p, y);
  const V e = exp_v(S::add(y, y));
  const V large = S::sub(S::set1(1.0f), S::div(S::set1(2.0f), S::add(e, S::set1(1.0f))));
  return S::copysign(S::select(S::lt(y, S::set1(0.625f)), small, large), x);
}

// sigmoid(x) with E = exp(-|x|) in (0, 1]: 1 / (1 + E) for x >= 0, E / (1 + E) below, so neither
// side overflows and very negative inputs still reach the denormals. E is kept as A + a (from
// exp_parts) and 1 + E as D + d (exactly, as 1 >= A), and the quotient q = N / D gets one
// correction step from its exact residual: rounding E first would cost up to 1.5 ulp, because
// E's binade can be twice as coarse as the result's. 1 / D for that step is q (x >= 0) or 1 - q.
GS_VM_INLINE V sigmoid_v(V x) {
  const V y = S::max(S::neg(S::abs(x)), S::set1(-104.0f));
  V hi, lo, n;
  exp_parts(y, hi, lo, n);
  // Far down E is denormal and its low part below anything 1 + E or the result can hold.
  const V A = S::ldexp(hi, n);
  const V a = S::select(S::lt(n, S::set1(-100.0f)), S::set1(0.0f), S::ldexp(lo, n));
  const V one = S::set1(1.0f);
  const V D = S::add(one, A);
  const V d = S::add(S::add(S::sub(one, D), A), a);
  const M neg = S::lt(x, S::set1(0.0f));
  const V N = S::select(neg, A, one);
  V q = S::div(N, D);
  const V res = S::fnma(q, d, S::add(S::fnma(q, D, N), S::select(neg, a, S::set1(0.0f))));
  q = S::fma(res, S::select(neg, S::sub(one, q), q), q);
  return S::select(S::isnan(x), x, q);
}

// softrelu(x) = log(1 + e^x) = max(x, 0) + log1p(E) with E = exp(-|x|) <= 1 kept as A + a, and
// 1 + E split exactly into w + c (1 >= A), so the logarithm sees E to about 2^-48.
GS_VM_INLINE V softrelu_v(V x) {
  const V one = S::set1(1.0f);
  const V y = S::max(S::neg(S::abs(x)), S::set1(-104.0f));
  V hi, lo, n;
  exp_parts(y, hi, lo, n);
  const V A = S::ldexp(hi, n);
  const V a = S::select(S::lt(n, S::set1(-100.0f)), S::set1(0.0f), S::ldexp(lo, n));
  const V w = S::add(one, A);
  const V c = S::add(S::add(S::sub(one, w), A), a);
  const V l = log_core<true>(w, c);
  return S::select(S::isnan(x), x, S::add(S::max(x, S::set1(0.0f)), l));
}

// n contiguous elements (out may be x: each lane is read before it is written, at its index).
// nt: the output is far larger than the caches, so store it non-temporally once aligned. The
// ragged head and tail go through the same vector code, padded, so no element takes another path.
template <class F>
GS_VM_INLINE void map_padded(const float* x, float* o, int64_t m) {
  alignas(64) float t[S::W] = {};
  for (int64_t j = 0; j < m; j++) t[j] = x[j];
  S::store(t, F::apply(S::load(t)));
  for (int64_t j = 0; j < m; j++) o[j] = t[j];
}

template <class F>
GS_VM_TARGET void map_f32(const float* x, float* o, int64_t n, bool nt) {
  constexpr int W = S::W;
  constexpr uintptr_t align = W * sizeof(float);
  int64_t i = 0;
  if (nt) {
    // A streamed store needs the vector's own alignment, so the head is always shorter than one
    // vector (aligning to a 64-byte line would need up to 15 floats, two AVX2 vectors).
    const int64_t head = static_cast<int64_t>((align - (reinterpret_cast<uintptr_t>(o) & (align - 1))) & (align - 1)) / 4;
    if ((reinterpret_cast<uintptr_t>(o) & 3) == 0 && head < n) {
      if (head > 0) map_padded<F>(x, o, head);
      for (i = head; i + W <= n; i += W) S::stream(o + i, F::apply(S::load(x + i)));
      S::fence();
    }
  }
  for (; i + W <= n; i += W) S::store(o + i, F::apply(S::load(x + i)));
  if (i < n) map_padded<F>(x + i, o + i, n - i);
}

struct ExpF { GS_VM_INLINE V apply(V x) { return exp_v(x); } };
struct LogF { GS_VM_INLINE V apply(V x) { return log_v(x); } };
struct TanhF { GS_VM_INLINE V apply(V x) { return tanh_v(x); } };
struct SigmoidF { GS_VM_INLINE V apply(V x) { return sigmoid_v(x); } };
struct Log1pF { GS_VM_INLINE V apply(V x) { return log1p_v(x); } };
struct Expm1F { GS_VM_INLINE V apply(V x) { return expm1_v(x); } };
struct SoftreluF { GS_VM_INLINE V apply(V x) { return softrelu_v(x); } };

GS_VM_TARGET bool map_unary_f32(Unary op, const float* x, float* o, int64_t n, bool nt) {
  switch (op) {
    case Unary::exp: map_f32<ExpF>(x, o, n, nt); return true;
    case Unary::log: map_f32<LogF>(x, o, n, nt); return true;
    case Unary::tanh: map_f32<TanhF>(x, o, n, nt); return true;
    case Unary::sigmoid: map_f32<SigmoidF>(x, o, n, nt); return true;
    case Unary::log1p: map_f32<Log1pF>(x, o, n, nt); return true;
    case Unary::expm1: map_f32<Expm1F>(x, o, n, nt); return true;
    case Unary::softrelu: map_f32<SoftreluF>(x, o, n, nt); return true;
    default: return false;
  }
}
