#include "kernels/random.h"

#include <cmath>

#include "kernels/threads.h"

namespace gs {

static inline uint32_t fmix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

uint32_t to_uint32(double x) {
  if (!std::isfinite(x)) return 0;
  // Exact for every double: fmod of an integer-valued double by 2^32 is exact.
  double m = std::fmod(std::trunc(x), 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<uint32_t>(m);
}

uint32_t random_word(uint32_t seed, uint32_t j) {
  // Math.imul and the JS additions wrap modulo 2^32, which unsigned arithmetic does natively.
  return fmix(fmix(j + seed * 0x9e3779b9u) ^ seed);
}

double random_unit(uint32_t seed, double q) {
  const uint32_t hi = random_word(seed, to_uint32(2 * q)) >> 5;
  const uint32_t lo = random_word(seed, to_uint32(2 * q + 1)) >> 6;
  return (static_cast<double>(hi) * 67108864.0 + static_cast<double>(lo)) / 9007199254740992.0;
}

// Each element depends only on (seed, counter + i), so any split over threads gives the same bits.
template <class T, class F>
static void generate(const Buf& out, F&& f) {
  T* o = out.as<T>();
  parallel_for(out.length, kGrain / 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) o[i] = static_cast<T>(f(static_cast<double>(i)));
  });
}

Work random_uniform(const Buf& out_, double seed, double counter, double low, double high) {
  needs_float(out_, "random");
  const uint32_t s = to_uint32(seed);
  const Buf out = out_;
  return {[=] {
            with_dtype(out.dtype, [&](auto t) {
              generate<decltype(t)>(out, [&](double i) { return low + (high - low) * random_unit(s, (counter + i) * 2); });
            });
          },
          double(out.length) * 8};
}

Work random_normal(const Buf& out_, double seed, double counter, double loc, double scale) {
  needs_float(out_, "random");
  const uint32_t s = to_uint32(seed);
  const double two_pi = 2 * M_PI;
  const Buf out = out_;
  return {[=] {
  with_dtype(out.dtype, [&](auto t) {
    generate<decltype(t)>(out, [&](double i) {
      const double u1 = random_unit(s, (counter + i) * 2);
      const double u2 = random_unit(s, (counter + i) * 2 + 1);
      // Same association as the reference: loc + ((scale * r) * cos(theta)).
      return loc + scale * std::sqrt(-2 * std::log(1 - u1)) * std::cos(two_pi * u2);
    });
  });
  }, double(out_.length) * 30};
}

}  // namespace gs
