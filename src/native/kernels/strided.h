// Gather a strided view into a contiguous buffer, and its adjoint (scatter-add).
#pragma once
#include "kernels/common.h"

namespace gs {

Work copy_strided(const Buf& x, const View& xv, const Buf& out);
Work scatter_add_strided(const Buf& x, const Buf& out, const View& ov);

}  // namespace gs
