// Kernels that address elements by computed indices rather than by strides: the maximum of each
// pooling window with where it lies, a gather by flat index and its adjoint. Max pooling keeps
// the index of each window's maximum, so its gradient is one scatter instead of rereading the
// windows.
#pragma once
#include "kernels/common.h"

namespace gs {

// For each window of x (the last `kdims` axes of the view xv, the others enumerate windows):
// out[i] = its maximum (x's dtype) and idx[i] (int64) = the flat position in x of the first one,
// in row-major window order, as MXNet's max pooling routes its gradient. A NaN wins, the first.
Work window_max(const Buf& x, const View& xv, int kdims, const Buf& out, const Buf& idx);

// out[i] = x[idx[i]]; idx is int64 and every entry must lie in [0, x.length).
Work index_take(const Buf& x, const Buf& idx, const Buf& out);

// out[idx[i]] += x[i] in order of i: the adjoint of index_take.
Work index_scatter_add(const Buf& x, const Buf& idx, const Buf& out);

}  // namespace gs
