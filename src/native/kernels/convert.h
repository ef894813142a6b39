// Conversions between dtypes, the same rules as reference.ts (`toDType`): a double becomes an
// integer by truncation toward zero, NaN and infinities become 0, and values out of range wrap
// modulo 2^bits (what JS typed arrays do, and what x86 gives MXNet for uint8); a double becomes
// float16 rounded to nearest, ties to even. Integers convert to integers by wrapping, directly
// (never through double, which would round int64 above 2^53).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/common.h"

namespace gs {

inline uint16_t half_from_double(double d) {
  // NaN's sign is not visible to JS, so every NaN becomes the one positive quiet NaN.
  if (std::isnan(d)) return 0x7e00;
  const uint16_t sign = std::signbit(d) ? 0x8000 : 0;
  const double a = std::fabs(d);
  if (a >= 65520.0) return sign | 0x7c00;  // halfway between 65504 and 2^16 and beyond: infinity
  if (a < 6.103515625e-05) {               // below 2^-14: subnormal, a multiple of 2^-24
    // Scaling by 2^24 is exact; nearbyint rounds ties to even in the default mode. 1024 is the
    // smallest normal, whose bits are the same.
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0));
  }
  int e;
  const double f = std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  double mant = std::nearbyint((f * 2 - 1) * 1024);
  int exp = e - 1;
  if (mant == 1024) {
    mant = 0;
    exp++;
  }
  return sign | static_cast<uint16_t>((exp + 15) << 10) | static_cast<uint16_t>(mant);
}

inline double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m, -24);
  else if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

template <class T> inline double to_double(T x) { return static_cast<double>(x); }
inline double to_double(Half x) { return half_to_double(x.bits); }

// A double as an integer of T (see the top of this file).
template <class T> inline T int_from_double(double v) {
  static_assert(std::is_integral_v<T>, "integers only");
  if (!std::isfinite(v)) return T(0);
  const double t = std::trunc(v);
  if constexpr (sizeof(T) == 8) {
    constexpr double two63 = 9223372036854775808.0, two64 = 18446744073709551616.0;
    if (t >= -two63 && t < two63) return static_cast<T>(static_cast<int64_t>(t));
    // |t| >= 2^63 is a multiple of 2^11, so fmod and the corrections below are exact.
    double m = std::fmod(t, two64);
    if (m >= two63) m -= two64;
    if (m < -two63) m += two64;
    return static_cast<T>(static_cast<int64_t>(m));
  } else {
    constexpr double mod = 4294967296.0;  // 2^32; narrower types then keep the low bits
    double m = std::fmod(t, mod);
    if (m < 0) m += mod;
    return static_cast<T>(static_cast<uint32_t>(m));
  }
}

template <class T> inline T from_double(double v) {
  if constexpr (std::is_same_v<T, Half>) return Half{half_from_double(v)};
  else if constexpr (std::is_integral_v<T>) return int_from_double<T>(v);
  else return static_cast<T>(v);
}

// x (of S) as a U.
template <class U, class S> inline U convert(S x) {
  if constexpr (std::is_same_v<U, S>) return x;
  else if constexpr (std::is_integral_v<U> && std::is_integral_v<S>) return static_cast<U>(x);  // wraps
  else return from_double<U>(to_double(x));
}

}  // namespace gs
