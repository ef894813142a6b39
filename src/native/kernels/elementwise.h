// Fill, arange, eye, cast and the elementwise kernels (unary, broadcasting binary, where).
#pragma once
#include "kernels/common.h"
#include "kernels/ops.h"

namespace gs {

void fill(const Buf& out, double value);
void arange(const Buf& out, double start, double step);
void eye(const Buf& out, int64_t rows, int64_t cols, int64_t k);
void cast(const Buf& x, const Buf& out);

void unary(Unary op, const Buf& x, const Buf& out);
void binary(Binary op, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out);
void binary_scalar(Binary op, const Buf& x, double scalar, bool scalar_first, const Buf& out);
void where(const Buf& c, const View& cv, const Buf& a, const View& av, const Buf& b, const View& bv, const Buf& out);

}  // namespace gs
