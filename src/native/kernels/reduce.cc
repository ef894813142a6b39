#include "kernels/reduce.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/convert.h"
#include "kernels/layout.h"
#include "kernels/reduce_contig.h"
#include "kernels/threads.h"

namespace gs {
namespace {

double run_of(Reduce op, const float* x, int64_t n) { return reduce_run_f32(op, x, n); }
double run_of(Reduce op, const double* x, int64_t n) { return reduce_run_f64(op, x, n); }
// Integers accumulate in double too (exact up to 2^53) and convert back once, as the reference does.
template <class T> double run_of(Reduce op, const T* x, int64_t n) {
  double r = 0;
  switch (op) {
#define X(name)                                                                   \
  case Reduce::name:                                                              \
    r = reduce_init<Reduce::name>();                                              \
    for (int64_t i = 0; i < n; i++) r = reduce_step<Reduce::name>(r, static_cast<double>(x[i])); \
    break;
    GS_REDUCE_OPS(X)
#undef X
  }
  return r;
}

// x folded into acc over flat indices [lo, hi) of the plan (operand 0: x, operand 1: acc).
template <Reduce op, class T>
void fold(const Plan<2>& p, const T* x, double* acc, int64_t lo, int64_t hi) {
  walk(p, lo, hi, [&](int64_t, int64_t cnt, const int64_t* off, const int64_t* in) {
    const T* xs = x + off[0];  // x is contiguous, so its inner stride is 1
    double* a = acc + off[1];
    if (in[1] == 0) {
      *a = reduce_step<op>(*a, run_of(op, xs, cnt));
    } else {
      for (int64_t j = 0; j < cnt; j++) a[j] = reduce_step<op>(a[j], static_cast<double>(xs[j]));
    }
  });
}

template <Reduce op, class T>
void reduce_t(const Plan<2>& p, bool outer_reduced, const T* x, double* acc, int64_t nout) {
  const int64_t total = p.size;
  const int threads = num_threads();
  const int64_t g0 = p.shape[0];
  const int64_t per_g0 = total / g0;
  if (total < kGrain || threads <= 1 || g0 == 1) {
    fold<op>(p, x, acc, 0, total);
  } else if (!outer_reduced) {
    // Slices of the outer kept dim write disjoint parts of acc.
    parallel_for(g0, std::max<int64_t>(1, kGrain / per_g0), [&](int64_t lo, int64_t hi) {
      fold<op>(p, x, acc, lo * per_g0, hi * per_g0);
    });
  } else if (nout * threads <= total) {
    // Each task folds a slice of the outer reduced dim into a private accumulator; the
    // partials are combined at the end (an order the reference does not use, so sums may
    // differ in the last bits).
    const int tasks = static_cast<int>(std::min<int64_t>(threads, g0));
    std::vector<std::vector<double>> part(tasks - 1, std::vector<double>(nout, reduce_init<op>()));
    run_tasks(tasks, [&](int t) {
      double* a = t == 0 ? acc : part[t - 1].data();
      int64_t lo = g0 * t / tasks, hi = g0 * (t + 1) / tasks;
      fold<op>(p, x, a, lo * per_g0, hi * per_g0);
    });
    for (auto& q : part)
      for (int64_t i = 0; i < nout; i++) acc[i] = reduce_step<op>(acc[i], q[i]);
  } else {
    fold<op>(p, x, acc, 0, total);
  }
}

}  // namespace

Work reduce(Reduce op, const Buf& x_, const int64_t* shape, int rank, const int64_t* axes, int naxes, const Buf& out_) {
  const Buf x = x_, out = out_;
  same_dtype(x, out, "reduce");
  needs_numeric(x, "reduce");
  if (rank > kMaxRank) fail("reduce: rank too large");
  if (numel(shape, rank) != x.length) fail("reduce: shape does not match the buffer length");
  bool reduced[kMaxRank] = {false};
  for (int i = 0; i < naxes; i++) {
    if (axes[i] < 0 || axes[i] >= rank) fail("reduce: axis out of range");
    if (i > 0 && axes[i] <= axes[i - 1]) fail("reduce: axes must be sorted and unique");
    reduced[axes[i]] = true;
  }
  int64_t kept_shape[kMaxRank];
  int nkept = 0;
  for (int d = 0; d < rank; d++) if (!reduced[d]) kept_shape[nkept++] = shape[d];
  const int64_t nout = numel(kept_shape, nkept);
  if (nout != out.length) fail("reduce: out length does not match the kept dims");
  if (nout == 0) return {};

  // Group the dims (size 1 dropped) into alternating runs of kept and reduced ones. x is
  // contiguous, so each group is one dim of x; acc is contiguous over the kept groups.
  Plan<2> p;
  p.size = x.length;
  p.offset[0] = p.offset[1] = 0;
  bool group_reduced[kMaxRank];
  int g = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    if (g > 0 && group_reduced[g - 1] == reduced[d]) {
      p.shape[g - 1] *= shape[d];
    } else {
      p.shape[g] = shape[d];
      group_reduced[g] = reduced[d];
      g++;
    }
  }
  if (g == 0) {
    p.shape[0] = 1;
    group_reduced[0] = false;
    g = 1;
  }
  p.rank = g;
  int64_t sx = 1, sa = 1;
  for (int d = g - 1; d >= 0; d--) {
    p.stride[0][d] = sx;
    sx *= p.shape[d];
    p.stride[1][d] = group_reduced[d] ? 0 : sa;
    if (!group_reduced[d]) sa *= p.shape[d];
  }

  struct Grouped {
    Plan<2> p;
    bool outer_reduced;
  };
  auto g_ = std::make_shared<Grouped>(Grouped{p, group_reduced[0]});
  return {[g_, op, x, out, nout] {
  const Plan<2>& p = g_->p;
  with_numeric(x.dtype, [&](auto t) {
    using T = decltype(t);
    std::vector<double> tmp;
    double* acc;
    if constexpr (std::is_same_v<T, double>) {
      acc = out.as<double>();
    } else {
      tmp.resize(static_cast<size_t>(nout));
      acc = tmp.data();
    }
    switch (op) {
#define X(name)                                                                 \
  case Reduce::name:                                                            \
    std::fill(acc, acc + nout, reduce_init<Reduce::name>());                    \
    if (x.length > 0) reduce_t<Reduce::name>(p, g_->outer_reduced, x.as<T>(), acc, nout); \
    break;
      GS_REDUCE_OPS(X)
#undef X
    }
    if constexpr (!std::is_same_v<T, double>) {
      T* o = out.as<T>();
      for (int64_t i = 0; i < nout; i++) o[i] = from_double<T>(acc[i]);
    }
  });
  }, double(x.length) + double(nout)};
}

Work arg_reduce(bool is_max, const Buf& x_, const int64_t* shape, int rank, int64_t axis, const Buf& out_) {
  const Buf x = x_, out = out_;
  same_dtype(x, out, "argReduce");
  needs_numeric(x, "argReduce");
  if (axis < 0 || axis >= rank) fail("argReduce: axis out of range");
  if (numel(shape, rank) != x.length) fail("argReduce: shape does not match the buffer length");
  const int64_t outer = numel(shape, static_cast<int>(axis));
  const int64_t n = shape[axis];
  const int64_t inner = numel(shape + axis + 1, rank - static_cast<int>(axis) - 1);
  if (outer * inner != out.length) fail("argReduce: out length does not match the kept dims");
  if (out.length == 0) return {};
  if (n == 0) fail("argReduce: cannot take the arg of an empty axis");
  return {[=] {
  constexpr int64_t kChunk = 256;
  const int64_t chunks_per_outer = (inner + kChunk - 1) / kChunk;
  with_numeric(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* xs = x.as<T>();
    T* o = out.as<T>();
    // Walks j outermost over a chunk of inner positions so reads stay sequential.
    parallel_for(outer * chunks_per_outer, std::max<int64_t>(1, kGrain / (n * kChunk)), [&](int64_t lo, int64_t hi) {
      int64_t best[kChunk];
      T bv[kChunk];
      for (int64_t task = lo; task < hi; task++) {
        const int64_t ob = task / chunks_per_outer;
        const int64_t i0 = (task % chunks_per_outer) * kChunk;
        const int64_t cnt = std::min(kChunk, inner - i0);
        const T* base = xs + ob * n * inner + i0;
        for (int64_t i = 0; i < cnt; i++) { best[i] = 0; bv[i] = base[i]; }
        for (int64_t j = 1; j < n; j++) {
          const T* row = base + j * inner;
          for (int64_t i = 0; i < cnt; i++) {
            if (bv[i] != bv[i]) continue;  // the first NaN wins, as in NumPy
            const T v = row[i];
            if (v != v || (is_max ? v > bv[i] : v < bv[i])) { best[i] = j; bv[i] = v; }
          }
        }
        for (int64_t i = 0; i < cnt; i++) o[ob * inner + i0 + i] = static_cast<T>(best[i]);
      }
    });
  });
  }, double(x.length)};
}

}  // namespace gs
