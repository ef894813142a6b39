// Fill, arange, eye, cast and the elementwise kernels (unary, broadcasting binary, where).
#pragma once
#include "kernels/common.h"
#include "kernels/ops.h"

namespace gs {

// Each checks its arguments now (throwing KernelError) and returns the work (see Work).
Work fill(const Buf& out, double value);
Work arange(const Buf& out, double start, double step);
Work eye(const Buf& out, int64_t rows, int64_t cols, int64_t k);
Work cast(const Buf& x, const Buf& out);

Work unary(Unary op, const Buf& x, const Buf& out);
Work binary(Binary op, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out);
Work binary_scalar(Binary op, const Buf& x, double scalar, bool scalar_first, const Buf& out);
Work where(const Buf& c, const View& cv, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out);

}  // namespace gs
