#include "kernels/elementwise.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>

#include "kernels/convert.h"
#include "kernels/elementwise_simd.h"
#include "kernels/layout.h"
#include "kernels/scalar_ops.h"
#include "kernels/threads.h"
#include "kernels/unary_f32.h"

namespace gs {
namespace {

// Elements of one step of a large elementwise kernel (kernels/stream.h): a few milliseconds.
constexpr int64_t kElementStep = int64_t(1) << 22;

template <Unary op, class T>
void map_unary(const T* x, T* o, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    // out may be x: each element is read before it is written, at the same index.
#pragma GCC ivdep
    for (int64_t i = lo; i < hi; i++) o[i] = any_unary_op<op>(x[i]);
  });
}

template <class T>
void unary_t(Unary op, const T* x, T* o, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (unary_f32_simd_available(op)) {
      const bool nt = n * static_cast<int64_t>(sizeof(T)) >= kStreamStoreBytes;
      parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) { unary_f32_simd(op, x + lo, o + lo, hi - lo, nt); });
      return;
    }
  }
  if constexpr (std::is_same_v<T, double>) {
    if (op == Unary::exp && simd_elementwise()) {
      parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) { exp_avx2(x + lo, o + lo, hi - lo); });
      return;
    }
  }
  switch (op) {
#define X(name) case Unary::name: map_unary<Unary::name>(x, o, n); break;
    GS_UNARY_OPS(X)
#undef X
  }
}

// One run of a binary kernel; the common stride patterns get loops the compiler can vectorize.
template <Binary op, class T>
inline void binary_run(int64_t n, const T* a, int64_t sa, const T* b, int64_t sb, T* o, bool simd, bool nt) {
  if constexpr (std::is_floating_point_v<T>) {
    if (simd && (sa == 1 || sa == 0) && (sb == 1 || sb == 0) && sa + sb > 0 &&
        binary_avx2(op, sa == 1 && sb == 1 ? 0 : sa == 1 ? 1 : 2, a, b, o, n, nt))
      return;
  }
  if (sa == 1 && sb == 1) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = any_binary_op<op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T bv = *b;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = any_binary_op<op>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const T av = *a;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = any_binary_op<op>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) o[i] = any_binary_op<op>(a[i * sa], b[i * sb]);
  }
}

template <Binary op, class T>
void binary_plan(const Plan<2>& p, const T* a, const T* b, T* o) {
  const bool simd = simd_elementwise();
  const bool nt = p.size * static_cast<int64_t>(sizeof(T)) >= kStreamStoreBytes;
  parallel_for(p.size, kGrain, [&](int64_t lo, int64_t hi) {
    walk(p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* inner) {
      binary_run<op>(cnt, a + off[0], inner[0], b + off[1], inner[1], o + i, simd, nt);
    });
  });
}

template <class T>
void binary_t(Binary op, const Plan<2>& p, const T* a, const T* b, T* o) {
  switch (op) {
#define X(name) case Binary::name: binary_plan<Binary::name>(p, a, b, o); break;
    GS_BINARY_OPS(X)
#undef X
  }
}

void check_same_shape(const View& x, const View& y, const char* what) {
  bool same = x.rank == y.rank;
  for (int d = 0; same && d < x.rank; d++) same = x.shape[d] == y.shape[d];
  if (!same) fail(std::string(what) + ": views have different shapes");
}

}  // namespace

// Relative costs, in simple element operations, for the inline-or-queue decision.
static double unary_cost(Unary op, DType dtype) {
  switch (op) {
    case Unary::neg: case Unary::abs: case Unary::sign: case Unary::square: case Unary::relu:
    case Unary::floor: case Unary::ceil: case Unary::round: case Unary::reciprocal:
    case Unary::sqrt:
      return 1;
    case Unary::exp:
      return simd_elementwise() ? 2 : 12;  // the AVX2 path runs at about 1 ns per element
    case Unary::log: case Unary::tanh: case Unary::sigmoid: case Unary::expm1: case Unary::log1p:
    case Unary::softrelu:
      return dtype == DType::F32 && simd_elementwise() ? 2 : 12;  // SIMD in float32 only (unary_f32.h)
    default:
      return 12;
  }
}

Work fill(const Buf& out, double value) {
  const Buf o = out;
  return {[o, value] {
            with_storable(o.dtype, [&](auto t) {
              using T = decltype(t);
              T* p = o.as<T>();
              const T v = from_double<T>(value);
              parallel_for(o.length, kGrain, [&](int64_t lo, int64_t hi) { std::fill(p + lo, p + hi, v); });
            });
          },
          double(out.length)};
}

Work arange(const Buf& out, double start, double step) {
  const Buf o = out;
  return {[o, start, step] {
            with_storable(o.dtype, [&](auto t) {
              using T = decltype(t);
              T* p = o.as<T>();
              // Computed in double and rounded once, exactly as start + i * step in JS (no FMA).
              parallel_for(o.length, kGrain, [&](int64_t lo, int64_t hi) {
                for (int64_t i = lo; i < hi; i++) p[i] = from_double<T>(start + static_cast<double>(i) * step);
              });
            });
          },
          double(out.length)};
}

Work eye(const Buf& out, int64_t rows, int64_t cols, int64_t k) {
  if (static_cast<__int128>(rows) * cols != out.length) fail("eye: rows * cols does not match the buffer length");
  if (out.length == 0) return {};  // also bounds the loop: rows may be huge when cols is 0
  const Buf o = out;
  Work zero = fill(out, 0.0);
  return {[o, rows, cols, k, zero] {
            zero.run();
            with_storable(o.dtype, [&](auto t) {
              using T = decltype(t);
              T* p = o.as<T>();
              const T one = from_double<T>(1.0);
              for (int64_t i = 0; i < rows; i++) {
                __int128 j = static_cast<__int128>(i) + k;
                if (j >= 0 && j < cols) p[i * cols + static_cast<int64_t>(j)] = one;
              }
            });
          },
          double(out.length)};
}

Work cast(const Buf& x, const Buf& out) {
  same_length(x, out, "cast");
  if (x.length == 0) return {};
  const Buf xs = x, o = out;
  return {[xs, o] {
            if (xs.dtype == o.dtype) {
              // memmove: out may be x itself.
              const size_t bytes = static_cast<size_t>(xs.length * item_size(xs.dtype));
              if (xs.data != o.data) {
                char* d = static_cast<char*>(o.data);
                const char* s = static_cast<const char*>(xs.data);
                parallel_for(static_cast<int64_t>(bytes), kGrain * 8, [&](int64_t lo, int64_t hi) {
                  std::memmove(d + lo, s + lo, static_cast<size_t>(hi - lo));
                });
              }
            } else {
              with_storable(xs.dtype, [&](auto st) {
                with_storable(o.dtype, [&](auto dt) {
                  using S = decltype(st);
                  using D = decltype(dt);
                  const S* s = xs.as<S>();
                  D* d = o.as<D>();
                  parallel_for(xs.length, kGrain, [&](int64_t lo, int64_t hi) {
                    for (int64_t i = lo; i < hi; i++) d[i] = convert<D>(s[i]);
                  });
                });
              });
            }
          },
          double(x.length)};
}

Work unary(Unary op, const Buf& x, const Buf& out) {
  same_dtype(x, out, "unary");
  needs_numeric(x, "unary");
  same_length(x, out, "unary");
  if (x.length == 0) return {};
  const Buf xs = x, o = out;
  const double cost = double(x.length) * unary_cost(op, x.dtype);
  auto range = [op, xs, o](int64_t lo, int64_t hi) {
    with_numeric(xs.dtype, [&](auto t) {
      using T = decltype(t);
      unary_t<T>(op, xs.as<T>() + lo, o.as<T>() + lo, hi - lo);
    });
  };
  Work w{[range, n = xs.length] { range(0, n); }, cost};
  // Large arrays come in steps of kElementStep elements (each element is computed alone, so a
  // step gives the bits of the whole call), for the stream to serve others between them.
  if (xs.length >= 2 * kElementStep) {
    const int64_t n = xs.length;
    w.steps = (n + kElementStep - 1) / kElementStep;
    w.step = [range, n](int64_t s) {
      if (s < 0 || s * kElementStep >= n) fail("unary: step out of range");
      range(s * kElementStep, std::min(n, (s + 1) * kElementStep));
    };
  }
  return w;
}

Work binary(Binary op, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out) {
  same_dtype(a, out, "binary");
  same_dtype(b, out, "binary");
  needs_numeric(out, "binary");
  check_same_shape(av, bv, "binary");
  check_view(a.length, av, "a");
  check_view(b.length, bv, "b");
  if (numel(av.shape, av.rank) != out.length) fail("binary: out length does not match the view shape");
  if (out.length == 0) return {};
  const int64_t* strides[2] = {av.strides, bv.strides};
  const int64_t offsets[2] = {av.offset, bv.offset};
  // The plan is built now and captured by value (a few hundred bytes); the views may go away.
  auto p = std::make_shared<Plan<2>>(make_plan<2>(av.shape, av.rank, strides, offsets));
  const Buf as = a, bs = b, o = out;
  return {[op, p, as, bs, o] {
            with_numeric(o.dtype, [&](auto t) {
              using T = decltype(t);
              binary_t<T>(op, *p, as.as<T>(), bs.as<T>(), o.as<T>());
            });
          },
          double(out.length) * (op == Binary::pow ? 20 : 1)};
}

Work binary_scalar(Binary op, const Buf& x, double scalar, bool scalar_first, const Buf& out) {
  same_dtype(x, out, "binaryScalar");
  needs_numeric(x, "binaryScalar");
  same_length(x, out, "binaryScalar");
  if (x.length == 0) return {};
  const Buf xs = x, o = out;
  return {[op, xs, scalar, scalar_first, o] {
            with_numeric(xs.dtype, [&](auto t) {
              using T = decltype(t);
              // The scalar is rounded to the buffer's dtype first (an integer buffer truncates it,
              // as MXNet's DType(scalar) does), then broadcast with a zero stride.
              const T s = from_double<T>(scalar);
              Plan<2> p;
              p.rank = 1;
              p.size = p.shape[0] = xs.length;
              p.offset[0] = p.offset[1] = 0;
              p.stride[scalar_first ? 0 : 1][0] = 0;
              p.stride[scalar_first ? 1 : 0][0] = 1;
              const T* xp = xs.as<T>();
              binary_t<T>(op, p, scalar_first ? &s : xp, scalar_first ? xp : &s, o.as<T>());
            });
          },
          double(x.length) * (op == Binary::pow ? 20 : 1)};
}

Work where(const Buf& c, const View& cv, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out) {
  same_dtype(c, out, "where");
  same_dtype(a, out, "where");
  same_dtype(b, out, "where");
  needs_numeric(out, "where");
  check_same_shape(cv, av, "where");
  check_same_shape(cv, bv, "where");
  check_view(c.length, cv, "cond");
  check_view(a.length, av, "a");
  check_view(b.length, bv, "b");
  if (numel(cv.shape, cv.rank) != out.length) fail("where: out length does not match the view shape");
  if (out.length == 0) return {};
  const int64_t* strides[3] = {cv.strides, av.strides, bv.strides};
  const int64_t offsets[3] = {cv.offset, av.offset, bv.offset};
  auto p = std::make_shared<Plan<3>>(make_plan<3>(cv.shape, cv.rank, strides, offsets));
  const Buf cs = c, as = a, bs = b, o = out;
  return {[p, cs, as, bs, o] {
            with_numeric(o.dtype, [&](auto t) {
              using T = decltype(t);
              const T* cp = cs.as<T>();
              const T* ap = as.as<T>();
              const T* bp = bs.as<T>();
              T* op = o.as<T>();
              parallel_for(p->size, kGrain, [&](int64_t lo, int64_t hi) {
                walk(*p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
                  const T* cc = cp + off[0];
                  const T* aa = ap + off[1];
                  const T* bb = bp + off[2];
                  for (int64_t j = 0; j < cnt; j++) op[i + j] = cc[j * in[0]] != 0 ? aa[j * in[1]] : bb[j * in[2]];
                });
              });
            });
          },
          double(out.length)};
}

}  // namespace gs
