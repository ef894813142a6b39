#include "kernels/indexed.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/layout.h"
#include "kernels/scalar_ops.h"
#include "kernels/threads.h"

namespace gs {

namespace {

// b when pick, else a, computed on the bits: g++ turns a ternary here into a branch, and which
// element of a window wins is a coin toss on real data (a mispredicted branch per element cost
// 4x the loads).
template <class T> inline T pick_bits(bool pick, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  static_assert(sizeof(U) == sizeof(T), "pick_bits: no unsigned type of this size");
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const U mask = static_cast<U>(0) - static_cast<U>(pick);
  ua ^= (ua ^ ub) & mask;
  std::memcpy(&a, &ua, sizeof(T));
  return a;
}

void needs_index(const Buf& idx, const char* what) {
  if (idx.dtype != DType::I64) fail(std::string(what) + ": indices must be int64, got " + dtype_name(idx.dtype));
}

// Indices are data, not arguments: they are checked when the kernel runs, all of them before
// anything is written, so a bad one leaves the output as it was.
void check_indices(const int64_t* id, int64_t n, int64_t bound, const char* what) {
  for (int64_t i = 0; i < n; i++) {
    if (id[i] < 0 || id[i] >= bound) {
      fail(std::string(what) + ": index " + std::to_string(id[i]) + " at position " + std::to_string(i) +
           " is out of range for " + std::to_string(bound) + " elements");
    }
  }
}

}  // namespace

Work window_max(const Buf& x, const View& xv, int kdims, const Buf& out, const Buf& idx) {
  same_dtype(x, out, "windowMax");
  needs_numeric(x, "windowMax");
  needs_index(idx, "windowMax");
  check_view(x.length, xv, "xv");
  if (kdims < 0 || kdims > xv.rank) fail("windowMax: kdims must lie in [0, the view's rank]");
  const int orank = xv.rank - kdims;
  const int64_t nout = numel(xv.shape, orank);
  const int64_t nwin = numel(xv.shape + orank, kdims);
  if (out.length != nout || idx.length != nout) fail("windowMax: out and idx must hold one element per window");
  if (nout == 0) return {};
  if (nwin == 0) fail("windowMax: the window is empty");
  // Offsets of a window's elements from its first, in row-major order: windows are small
  // (pooling kernels) and every window shares them.
  auto win = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(nwin));
  {
    int64_t at[kMaxRank] = {0};
    int64_t off = 0;
    for (int64_t q = 0; q < nwin; q++) {
      (*win)[static_cast<size_t>(q)] = off;
      for (int d = xv.rank - 1; d >= orank; d--) {
        if (++at[d] < xv.shape[d]) {
          off += xv.strides[d];
          break;
        }
        off -= (xv.shape[d] - 1) * xv.strides[d];
        at[d] = 0;
      }
    }
  }
  const int64_t* strides[1] = {xv.strides};
  const int64_t offsets[1] = {xv.offset};
  auto plan = std::make_shared<const Plan<1>>(make_plan<1>(xv.shape, orank, strides, offsets));
  return {[x, out, idx, win, plan, nout, nwin] {
    with_numeric(x.dtype, [&](auto t) {
      using T = decltype(t);
      const T* xs = x.as<T>();
      T* o = out.as<T>();
      int64_t* id = idx.as<int64_t>();
      const int64_t* w = win->data();
      parallel_for(nout, std::max<int64_t>(1, kGrain / nwin), [&](int64_t lo, int64_t hi) {
        walk(*plan, lo, hi, [&](int64_t i, int64_t cnt, const int64_t* off, const int64_t* in) {
          // A run of windows at a fixed stride, element q of all of them at a time: the windows
          // are independent, where one window's elements form a chain of dependent compares.
          T* ov = o + i;
          int64_t* iv = id + i;
          const int64_t st = in[0];
          for (int64_t j = 0; j < cnt; j++) {
            const int64_t p = off[0] + j * st + w[0];
            ov[j] = xs[p];
            iv[j] = p;
          }
          for (int64_t q = 1; q < nwin; q++) {
            const int64_t at = off[0] + w[q];
            for (int64_t j = 0; j < cnt; j++) {
              const int64_t p = at + j * st;
              const T v = xs[p], bv = ov[j];
              // A NaN wins unless one already did (bv == bv is false then): the first is kept.
              const bool take = (v > bv) | ((v != v) & (bv == bv));
              ov[j] = pick_bits(take, bv, v);
              iv[j] = pick_bits(take, iv[j], p);
            }
          }
        });
      });
    });
  }, double(nout) * double(nwin)};
}

Work index_take(const Buf& x, const Buf& idx, const Buf& out) {
  same_dtype(x, out, "indexTake");
  needs_index(idx, "indexTake");
  same_length(idx, out, "indexTake");
  if (out.length == 0) return {};
  return {[x, idx, out] {
    const int64_t* id = idx.as<int64_t>();
    check_indices(id, idx.length, x.length, "indexTake");
    with_bits(x.dtype, [&](auto t) {
      using T = decltype(t);
      const T* xs = x.as<T>();
      T* o = out.as<T>();
      parallel_for(out.length, kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; i++) o[i] = xs[id[i]];
      });
    });
  }, 2.0 * double(out.length)};
}

Work index_scatter_add(const Buf& x, const Buf& idx, const Buf& out) {
  same_dtype(x, out, "indexScatterAdd");
  needs_numeric(x, "indexScatterAdd");
  needs_index(idx, "indexScatterAdd");
  same_length(x, idx, "indexScatterAdd");
  if (x.length == 0) return {};
  return {[x, idx, out] {
    const int64_t* id = idx.as<int64_t>();
    check_indices(id, idx.length, out.length, "indexScatterAdd");
    with_numeric(x.dtype, [&](auto t) {
      using T = decltype(t);
      const T* xs = x.as<T>();
      T* o = out.as<T>();
      // Serial: several entries may name one element, and the sum is taken in order of i, as the
      // reference takes it.
      for (int64_t i = 0; i < x.length; i++) o[id[i]] = any_binary_op<Binary::add>(o[id[i]], xs[i]);
    });
  }, 2.0 * double(x.length)};
}

}  // namespace gs
