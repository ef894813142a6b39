// Shapes, bounds checks and the strided walker shared by every broadcasting kernel.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/common.h"

namespace gs {

// Product of shape[0..rank); fails beyond kMaxIndex.
int64_t numel(const int64_t* shape, int rank);

// Fails unless every element the view can address lies in [0, len). An empty view addresses none.
void check_view(int64_t len, const View& v, const char* what);

// K operands walked over one shape. Built by make_plan, which drops size-1 dims and merges dims
// that are contiguous for every operand, so the inner loop is as long as possible.
template <int K>
struct Plan {
  int rank = 1;
  int64_t shape[kMaxRank];
  int64_t stride[K][kMaxRank];
  int64_t offset[K];
  int64_t size = 0;
};

template <int K>
Plan<K> make_plan(const int64_t* shape, int rank, const int64_t* const* strides, const int64_t* offsets) {
  Plan<K> p;
  p.size = numel(shape, rank);
  for (int k = 0; k < K; k++) p.offset[k] = offsets[k];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    bool merge = r > 0;
    for (int k = 0; k < K && merge; k++) merge = p.stride[k][r - 1] == strides[k][d] * shape[d];
    if (merge) {
      p.shape[r - 1] *= shape[d];
      for (int k = 0; k < K; k++) p.stride[k][r - 1] = strides[k][d];
    } else {
      p.shape[r] = shape[d];
      for (int k = 0; k < K; k++) p.stride[k][r] = strides[k][d];
      r++;
    }
  }
  if (r == 0) {
    p.shape[0] = 1;
    for (int k = 0; k < K; k++) p.stride[k][0] = 0;
    r = 1;
  }
  p.rank = r;
  return p;
}

// Visits flat indices [lo, hi) of the plan in row-major order as runs along the last dim:
// run(i, count, off, inner) with i the flat index of the run's first element, off[k] each
// operand's offset there and inner[k] its stride along the run.
template <int K, class Run>
void walk(const Plan<K>& p, int64_t lo, int64_t hi, Run&& run) {
  if (lo >= hi) return;
  const int r = p.rank;
  int64_t idx[kMaxRank];
  int64_t off[K];
  int64_t rem = lo;
  for (int d = r - 1; d >= 0; d--) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
  }
  for (int k = 0; k < K; k++) {
    off[k] = p.offset[k];
    for (int d = 0; d < r; d++) off[k] += idx[d] * p.stride[k][d];
  }
  int64_t inner[K];
  for (int k = 0; k < K; k++) inner[k] = p.stride[k][r - 1];
  const int64_t n_in = p.shape[r - 1];
  int64_t i = lo;
  while (i < hi) {
    int64_t cnt = std::min(n_in - idx[r - 1], hi - i);
    run(i, cnt, static_cast<const int64_t*>(off), static_cast<const int64_t*>(inner));
    i += cnt;
    if (i >= hi) break;
    // The run reached the end of the last dim (off still points at its start): rewind to
    // index 0 and carry into the outer dims.
    for (int k = 0; k < K; k++) off[k] -= idx[r - 1] * inner[k];
    idx[r - 1] = 0;
    for (int d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (int k = 0; k < K; k++) off[k] += p.stride[k][d];
      if (idx[d] < p.shape[d]) break;
      for (int k = 0; k < K; k++) off[k] -= p.stride[k][d] * p.shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace gs
