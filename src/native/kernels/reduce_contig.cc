#include "kernels/reduce_contig.h"

namespace gs {
namespace {

template <Reduce op, class T>
__attribute__((always_inline)) inline double run(const T* x, int64_t n) {
  double lane[8];
  for (int j = 0; j < 8; j++) lane[j] = reduce_init<op>();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) lane[j] = reduce_step<op>(lane[j], static_cast<double>(x[i + j]));
  double r = reduce_init<op>();
  for (int j = 0; j < 8; j++) r = reduce_step<op>(r, lane[j]);
  for (; i < n; i++) r = reduce_step<op>(r, static_cast<double>(x[i]));
  return r;
}

}  // namespace

// The ISA is chosen at load time (ifunc); the build itself stays generic x86-64.
#define GS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define GS_RUNS(T, suffix)                                                   \
  GS_CLONES static double sum_##suffix(const T* x, int64_t n) { return run<Reduce::sum>(x, n); }   \
  GS_CLONES static double prod_##suffix(const T* x, int64_t n) { return run<Reduce::prod>(x, n); } \
  GS_CLONES static double max_##suffix(const T* x, int64_t n) { return run<Reduce::max>(x, n); }   \
  GS_CLONES static double min_##suffix(const T* x, int64_t n) { return run<Reduce::min>(x, n); }
GS_RUNS(float, f32)
GS_RUNS(double, f64)

double reduce_run_f32(Reduce op, const float* x, int64_t n) {
  switch (op) {
    case Reduce::sum: return sum_f32(x, n);
    case Reduce::prod: return prod_f32(x, n);
    case Reduce::max: return max_f32(x, n);
    case Reduce::min: return min_f32(x, n);
  }
  return 0;
}

double reduce_run_f64(Reduce op, const double* x, int64_t n) {
  switch (op) {
    case Reduce::sum: return sum_f64(x, n);
    case Reduce::prod: return prod_f64(x, n);
    case Reduce::max: return max_f64(x, n);
    case Reduce::min: return min_f64(x, n);
  }
  return 0;
}

}  // namespace gs
