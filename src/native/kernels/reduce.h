// Reductions over a set of axes of a contiguous array, and argmax / argmin along one axis.
#pragma once
#include "kernels/common.h"
#include "kernels/ops.h"

namespace gs {

// axes: sorted, unique, each in [0, rank). Accumulates in double for both dtypes.
Work reduce(Reduce op, const Buf& x, const int64_t* shape, int rank, const int64_t* axes, int naxes, const Buf& out);
Work arg_reduce(bool is_max, const Buf& x, const int64_t* shape, int rank, int64_t axis, const Buf& out);

}  // namespace gs
