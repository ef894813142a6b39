#include "kernels/strided.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "kernels/layout.h"
#include "kernels/scalar_ops.h"
#include "kernels/threads.h"

namespace gs {

namespace {

// Both kernels walk one strided view of `viewed` against a contiguous buffer of the view's size:
// the checks and the plan are the same, only the direction of the copy differs.
std::shared_ptr<const Plan<1>> view_plan(const Buf& viewed, const View& v, const char* vname, const Buf& dense,
                                         const char* what) {
  same_dtype(viewed, dense, what);
  check_view(viewed.length, v, vname);
  if (numel(v.shape, v.rank) != dense.length) fail(std::string(what) + ": the contiguous buffer's length does not match the view shape");
  if (dense.length == 0) return nullptr;
  const int64_t* strides[1] = {v.strides};
  const int64_t offsets[1] = {v.offset};
  return std::make_shared<const Plan<1>>(make_plan<1>(v.shape, v.rank, strides, offsets));
}

// The Work of a kernel between x and out through one plan: body(plan, x's data, out's data),
// typed by the dtype (both have it).
// Copies look at bits only (with_bits); sums need the arithmetic type (with_numeric).
template <bool kArith, class Body>
Work plan_work(std::shared_ptr<const Plan<1>> plan, const Buf& x, const Buf& out, double cost, Body body) {
  if (kArith) needs_numeric(x, "scatterAddStrided");
  return {[plan, x, out, body] {
    auto typed = [&](auto t) {
      using T = decltype(t);
      body(*plan, x.as<T>(), out.as<T>());
    };
    if constexpr (kArith) with_numeric(x.dtype, typed);
    else with_bits(x.dtype, typed);
  }, cost};
}

}  // namespace

Work copy_strided(const Buf& x_, const View& xv, const Buf& out_) {
  auto plan = view_plan(x_, xv, "x", out_, "copyStrided");
  if (!plan) return {};
  return plan_work<false>(plan, x_, out_, double(out_.length), [](const Plan<1>& p, const auto* src, auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    parallel_for(p.size, kGrain, [&](int64_t lo, int64_t hi) {
      walk(p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
        const T* s = src + off[0];
        const int64_t st = in[0];
        if (st == 1 && cnt <= 64) {
          // Windows of a convolution or a pooling are runs this short (a row of LeNet's 24 x 24
          // outputs): a call to memmove costs more than the copy.
          for (int64_t j = 0; j < cnt; j++) o[i + j] = s[j];
        } else if (st == 1) {
          std::memmove(o + i, s, static_cast<size_t>(cnt) * sizeof(T));
        } else if (st == 0) {
          const T v = *s;
          for (int64_t j = 0; j < cnt; j++) o[i + j] = v;
        } else {
          for (int64_t j = 0; j < cnt; j++) o[i + j] = s[j * st];
        }
      });
    });
  });
}

namespace {

// An axis whose indices send the view's elements to disjoint ranges of out: its stride is wider
// than everything the other axes can add. Threads that each take a range of it write disjoint
// elements, and each element still receives its terms in row-major order, so the sum is the
// serial one bit for bit. -1 when there is none (a view that overlaps itself, such as a
// convolution's windows, across every axis).
int disjoint_axis(const View& v) {
  int best = -1;
  for (int d = 0; d < v.rank; d++) {
    if (v.shape[d] < 2) continue;
    __int128 spread = 0;
    for (int e = 0; e < v.rank; e++)
      if (e != d) spread += static_cast<__int128>(v.shape[e] - 1) * (v.strides[e] < 0 ? -v.strides[e] : v.strides[e]);
    const int64_t st = v.strides[d] < 0 ? -v.strides[d] : v.strides[d];
    if (spread < st && (best < 0 || v.shape[d] > v.shape[best])) best = d;
  }
  return best;
}

}  // namespace

Work scatter_add_strided(const Buf& x_, const Buf& out_, const View& ov) {
  auto plan = view_plan(out_, ov, "out", x_, "scatterAddStrided");
  if (!plan) return {};
  const int split = x_.length >= 2 * kGrain ? disjoint_axis(ov) : -1;
  if (split >= 0) {
    // x is contiguous over the view's shape: walk both as strided operands over a range of the
    // split axis at a time.
    View xv;
    xv.rank = ov.rank;
    int64_t st = 1;
    for (int d = ov.rank - 1; d >= 0; d--) {
      xv.shape[d] = ov.shape[d];
      xv.strides[d] = st;
      st *= ov.shape[d];
    }
    const View o = ov;
    const Buf x = x_, out = out_;
    needs_numeric(x, "scatterAddStrided");
    return {[x, out, o, xv, split] {
      with_numeric(x.dtype, [&](auto t) {
        using T = decltype(t);
        const T* src = x.as<T>();
        T* dst = out.as<T>();
        const int64_t per = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, numel(o.shape, o.rank) / o.shape[split]));
        parallel_for(o.shape[split], per, [&](int64_t lo, int64_t hi) {
          View ob = o, xb = xv;
          ob.shape[split] = xb.shape[split] = hi - lo;
          ob.offset += lo * o.strides[split];
          xb.offset = lo * xv.strides[split];
          const int64_t* strides[2] = {ob.strides, xb.strides};
          const int64_t offsets[2] = {ob.offset, xb.offset};
          const Plan<2> p = make_plan<2>(ob.shape, ob.rank, strides, offsets);
          walk(p, 0, p.size, [&](int64_t, int64_t cnt, const int64_t* off, const int64_t* in) {
            T* d = dst + off[0];
            const T* s = src + off[1];
            for (int64_t j = 0; j < cnt; j++) d[j * in[0]] = any_binary_op<Binary::add>(d[j * in[0]], s[j * in[1]]);
          });
        });
      });
    }, double(x_.length)};
  }
  return plan_work<true>(plan, x_, out_, double(x_.length), [](const Plan<1>& p, const auto* src, auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    // Serial and in row-major order: a view with zero strides sends several x elements to one
    // out element, and the sum must be taken in the reference's order.
    walk(p, 0, p.size, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
      T* d = o + off[0];
      const int64_t st = in[0];
      if (st == 0) {
        T acc = *d;
        for (int64_t j = 0; j < cnt; j++) acc = any_binary_op<Binary::add>(acc, src[i + j]);
        *d = acc;
      } else {
        for (int64_t j = 0; j < cnt; j++) d[j * st] = any_binary_op<Binary::add>(d[j * st], src[i + j]);
      }
    });
  });
}

}  // namespace gs
