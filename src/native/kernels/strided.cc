#include "kernels/strided.h"

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
        if (st == 1 && cnt <= 16) {
          // Windows of a convolution or a pooling are runs this short: a call to memmove costs
          // more than the copy.
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

Work scatter_add_strided(const Buf& x_, const Buf& out_, const View& ov) {
  auto plan = view_plan(out_, ov, "out", x_, "scatterAddStrided");
  if (!plan) return {};
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
