// The reduction of one contiguous run to a double: the hot loop of reduce(). Eight independent
// lanes let the compiler vectorize without reassociating a single accumulator.
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/ops.h"

namespace gs {

template <Reduce op>
constexpr double reduce_init() {
  return op == Reduce::sum ? 0.0 : op == Reduce::prod ? 1.0
       : op == Reduce::max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

// REDUCE_STEP of reference.ts: NaN in either the accumulator or the value wins.
template <Reduce op>
inline double reduce_step(double a, double x) {
  switch (op) {
    case Reduce::sum: return a + x;
    case Reduce::prod: return a * x;
    case Reduce::max: return (a != a || x != x) ? std::numeric_limits<double>::quiet_NaN() : x > a ? x : a;
    case Reduce::min: return (a != a || x != x) ? std::numeric_limits<double>::quiet_NaN() : x < a ? x : a;
  }
  return a;
}

double reduce_run_f32(Reduce op, const float* x, int64_t n);
double reduce_run_f64(Reduce op, const double* x, int64_t n);

}  // namespace gs
