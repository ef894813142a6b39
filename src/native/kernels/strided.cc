#include "kernels/strided.h"

#include <cstring>
#include <memory>

#include "kernels/layout.h"
#include "kernels/threads.h"

namespace gs {

Work copy_strided(const Buf& x_, const View& xv, const Buf& out_) {
  same_dtype(x_, out_, "copyStrided");
  check_view(x_.length, xv, "x");
  if (numel(xv.shape, xv.rank) != out_.length) fail("copyStrided: out length does not match the view shape");
  if (out_.length == 0) return {};
  const int64_t* strides[1] = {xv.strides};
  const int64_t offsets[1] = {xv.offset};
  auto plan = std::make_shared<Plan<1>>(make_plan<1>(xv.shape, xv.rank, strides, offsets));
  const Buf x = x_, out = out_;
  return {[plan, x, out] {
  const Plan<1>& p = *plan;
  with_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* src = x.as<T>();
    T* o = out.as<T>();
    parallel_for(p.size, kGrain, [&](int64_t lo, int64_t hi) {
      walk(p, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
        const T* s = src + off[0];
        const int64_t st = in[0];
        if (st == 1) {
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
  }, double(out_.length)};
}

Work scatter_add_strided(const Buf& x_, const Buf& out_, const View& ov) {
  same_dtype(x_, out_, "scatterAddStrided");
  check_view(out_.length, ov, "out");
  if (numel(ov.shape, ov.rank) != x_.length) fail("scatterAddStrided: x length does not match the view shape");
  if (x_.length == 0) return {};
  const int64_t* strides[1] = {ov.strides};
  const int64_t offsets[1] = {ov.offset};
  auto plan = std::make_shared<Plan<1>>(make_plan<1>(ov.shape, ov.rank, strides, offsets));
  const Buf x = x_, out = out_;
  return {[plan, x, out] {
  const Plan<1>& p = *plan;
  with_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* src = x.as<T>();
    T* o = out.as<T>();
    // Serial and in row-major order: a view with zero strides sends several x elements to one
    // out element, and the sum must be taken in the reference's order.
    walk(p, 0, p.size, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
      T* d = o + off[0];
      const int64_t st = in[0];
      if (st == 0) {
        T acc = *d;
        for (int64_t j = 0; j < cnt; j++) acc += src[i + j];
        *d = acc;
      } else {
        for (int64_t j = 0; j < cnt; j++) d[j * st] += src[i + j];
      }
    });
  });
  }, double(x_.length)};
}

}  // namespace gs
