#include "kernels/layout.h"

#include <string>

namespace gs {

int64_t numel(const int64_t* shape, int rank) {
  __int128 n = 1;
  for (int d = 0; d < rank; d++) {
    if (shape[d] < 0) fail("negative dimension");
    n *= shape[d];
    if (n > kMaxIndex) fail("too many elements");
  }
  return static_cast<int64_t>(n);
}

void check_view(int64_t len, const View& v, const char* what) {
  int64_t n = numel(v.shape, v.rank);
  if (n == 0) return;
  // 128-bit sums: shape and |stride| are each below 2^53, so no term can overflow.
  __int128 lo = v.offset, hi = v.offset;
  for (int d = 0; d < v.rank; d++) {
    __int128 span = static_cast<__int128>(v.shape[d] - 1) * v.strides[d];
    if (span > 0) hi += span; else lo += span;
  }
  if (lo < 0 || hi >= len) fail(std::string("view of ") + what + " is out of bounds");
}

}  // namespace gs
