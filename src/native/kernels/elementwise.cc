#include "kernels/elementwise.h"

#include <algorithm>
#include <cstring>

#include "kernels/layout.h"
#include "kernels/scalar_ops.h"
#include "kernels/threads.h"

namespace gs {
namespace {

template <Unary op, class T>
void map_unary(const T* x, T* o, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    // out may be x: each element is read before it is written, at the same index.
#pragma GCC ivdep
    for (int64_t i = lo; i < hi; i++) o[i] = unary_op<op>(x[i]);
  });
}

template <class T>
void unary_t(Unary op, const T* x, T* o, int64_t n) {
  switch (op) {
#define X(name) case Unary::name: map_unary<Unary::name>(x, o, n); break;
    GS_UNARY_OPS(X)
#undef X
  }
}

// One run of a binary kernel; the common stride patterns get loops the compiler can vectorize.
template <Binary op, class T>
inline void binary_run(int64_t n, const T* a, int64_t sa, const T* b, int64_t sb, T* o) {
  if (sa == 1 && sb == 1) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T bv = *b;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const T av = *a;
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) o[i] = binary_op<op>(a[i * sa], b[i * sb]);
  }
}

template <Binary op, class T>
void binary_plan(const Plan<2>& p, const T* a, const T* b, T* o) {
  parallel_for(p.size, kGrain, [&](int64_t lo, int64_t hi) {
    walk(p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* inner) {
      binary_run<op>(cnt, a + off[0], inner[0], b + off[1], inner[1], o + i);
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

void fill(const Buf& out, double value) {
  with_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    const T v = static_cast<T>(value);
    parallel_for(out.length, kGrain, [&](int64_t lo, int64_t hi) { std::fill(o + lo, o + hi, v); });
  });
}

void arange(const Buf& out, double start, double step) {
  with_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    // Computed in double and rounded once, exactly as start + i * step in JS (no FMA).
    parallel_for(out.length, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) o[i] = static_cast<T>(start + static_cast<double>(i) * step);
    });
  });
}

void eye(const Buf& out, int64_t rows, int64_t cols, int64_t k) {
  if (static_cast<__int128>(rows) * cols != out.length) fail("eye: rows * cols does not match the buffer length");
  if (out.length == 0) return;  // also bounds the loop: rows may be huge when cols is 0
  fill(out, 0.0);
  with_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.as<T>();
    for (int64_t i = 0; i < rows; i++) {
      __int128 j = static_cast<__int128>(i) + k;
      if (j >= 0 && j < cols) o[i * cols + static_cast<int64_t>(j)] = T(1);
    }
  });
}

void cast(const Buf& x, const Buf& out) {
  same_length(x, out, "cast");
  if (x.length == 0) return;
  if (x.dtype == out.dtype) {
    std::memmove(out.data, x.data, static_cast<size_t>(x.length * item_size(x.dtype)));
  } else if (x.dtype == DType::F32) {
    const float* s = x.as<float>();
    double* d = out.as<double>();
    parallel_for(x.length, kGrain, [&](int64_t lo, int64_t hi) { for (int64_t i = lo; i < hi; i++) d[i] = s[i]; });
  } else {
    const double* s = x.as<double>();
    float* d = out.as<float>();
    parallel_for(x.length, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) d[i] = static_cast<float>(s[i]);
    });
  }
}

void unary(Unary op, const Buf& x, const Buf& out) {
  same_dtype(x, out, "unary");
  same_length(x, out, "unary");
  with_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    unary_t<T>(op, x.as<T>(), out.as<T>(), x.length);
  });
}

void binary(Binary op, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out) {
  same_dtype(a, out, "binary");
  same_dtype(b, out, "binary");
  check_same_shape(av, bv, "binary");
  check_view(a.length, av, "a");
  check_view(b.length, bv, "b");
  if (numel(av.shape, av.rank) != out.length) fail("binary: out length does not match the view shape");
  if (out.length == 0) return;
  const int64_t* strides[2] = {av.strides, bv.strides};
  const int64_t offsets[2] = {av.offset, bv.offset};
  Plan<2> p = make_plan<2>(av.shape, av.rank, strides, offsets);
  with_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    binary_t<T>(op, p, a.as<T>(), b.as<T>(), out.as<T>());
  });
}

void binary_scalar(Binary op, const Buf& x, double scalar, bool scalar_first, const Buf& out) {
  same_dtype(x, out, "binaryScalar");
  same_length(x, out, "binaryScalar");
  if (x.length == 0) return;
  with_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    // The scalar is rounded to the buffer's dtype first, then broadcast with a zero stride.
    const T s = static_cast<T>(scalar);
    Plan<2> p;
    p.rank = 1;
    p.size = p.shape[0] = x.length;
    p.offset[0] = p.offset[1] = 0;
    p.stride[scalar_first ? 0 : 1][0] = 0;
    p.stride[scalar_first ? 1 : 0][0] = 1;
    const T* xp = x.as<T>();
    binary_t<T>(op, p, scalar_first ? &s : xp, scalar_first ? xp : &s, out.as<T>());
  });
}

void where(const Buf& c, const View& cv, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out) {
  same_dtype(c, out, "where");
  same_dtype(a, out, "where");
  same_dtype(b, out, "where");
  check_same_shape(cv, av, "where");
  check_same_shape(cv, bv, "where");
  check_view(c.length, cv, "cond");
  check_view(a.length, av, "a");
  check_view(b.length, bv, "b");
  if (numel(cv.shape, cv.rank) != out.length) fail("where: out length does not match the view shape");
  if (out.length == 0) return;
  const int64_t* strides[3] = {cv.strides, av.strides, bv.strides};
  const int64_t offsets[3] = {cv.offset, av.offset, bv.offset};
  Plan<3> p = make_plan<3>(cv.shape, cv.rank, strides, offsets);
  with_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    const T* cp = c.as<T>();
    const T* ap = a.as<T>();
    const T* bp = b.as<T>();
    T* o = out.as<T>();
    parallel_for(p.size, kGrain, [&](int64_t lo, int64_t hi) {
      walk(p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
        const T* cc = cp + off[0];
        const T* aa = ap + off[1];
        const T* bb = bp + off[2];
        for (int64_t j = 0; j < cnt; j++) o[i + j] = cc[j * in[0]] != 0 ? aa[j * in[1]] : bb[j * in[2]];
      });
    });
  });
}

}  // namespace gs
