// One element of every elementwise kernel, matching reference.ts bit for bit where IEEE allows.
// Ops that are a single IEEE operation run in the buffer's type (for float32 inputs the result
// equals rounding the double result, so nothing is lost); everything else runs in double and
// rounds once, as the reference does with JS numbers.
#pragma once
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/convert.h"

#include "kernels/ops.h"

namespace gs {

template <class T> constexpr T nan_v() { return std::numeric_limits<T>::quiet_NaN(); }

// Math.pow differs from C pow on two special cases: pow(1, NaN) and pow(+-1, +-Infinity) are NaN.
inline double js_pow(double x, double y) {
  if (std::isnan(y)) return nan_v<double>();
  if (std::isinf(y) && std::fabs(x) == 1.0) return nan_v<double>();
  return std::pow(x, y);
}

template <Unary op, class T>
inline T unary_op(T x) {
  const double d = static_cast<double>(x);
  switch (op) {
    case Unary::neg: return -x;
    case Unary::abs: return std::fabs(x);
    case Unary::sign: return x > 0 ? T(1) : x < 0 ? T(-1) : x == 0 ? T(0) : nan_v<T>();
    case Unary::square: return x * x;
    case Unary::sqrt: return std::sqrt(x);
    case Unary::rsqrt: return static_cast<T>(1.0 / std::sqrt(d));
    case Unary::reciprocal: return T(1) / x;
    case Unary::exp: return static_cast<T>(std::exp(d));
    case Unary::expm1: return static_cast<T>(std::expm1(d));
    case Unary::log: return static_cast<T>(std::log(d));
    case Unary::log1p: return static_cast<T>(std::log1p(d));
    case Unary::sin: return static_cast<T>(std::sin(d));
    case Unary::cos: return static_cast<T>(std::cos(d));
    case Unary::tan: return static_cast<T>(std::tan(d));
    case Unary::arcsin: return static_cast<T>(std::asin(d));
    case Unary::arccos: return static_cast<T>(std::acos(d));
    case Unary::arctan: return static_cast<T>(std::atan(d));
    case Unary::sinh: return static_cast<T>(std::sinh(d));
    case Unary::cosh: return static_cast<T>(std::cosh(d));
    case Unary::tanh: return static_cast<T>(std::tanh(d));
    case Unary::arcsinh: return static_cast<T>(std::asinh(d));
    case Unary::arccosh: return static_cast<T>(std::acosh(d));
    case Unary::arctanh: return static_cast<T>(std::atanh(d));
    case Unary::relu: return x > 0 ? x : x == x ? T(0) : x;
    // Split by sign so neither branch overflows, as in the reference.
    case Unary::sigmoid:
      return static_cast<T>(d >= 0 ? 1.0 / (1.0 + std::exp(-d)) : std::exp(d) / (1.0 + std::exp(d)));
    case Unary::softrelu:
      return static_cast<T>(d > 0 ? d + std::log1p(std::exp(-d)) : std::log1p(std::exp(d)));
    case Unary::floor: return std::floor(x);
    case Unary::ceil: return std::ceil(x);
    case Unary::round: return std::round(x);  // C round: halves away from zero
  }
  return x;
}

template <Binary op, class T>
inline T binary_op(T a, T b) {
  switch (op) {
    case Binary::add: return a + b;
    case Binary::sub: return a - b;
    case Binary::mul: return a * b;
    case Binary::div: return a / b;
    case Binary::pow: return static_cast<T>(js_pow(a, b));
    case Binary::maximum: return (a != a || b != b) ? nan_v<T>() : a > b ? a : b;
    case Binary::minimum: return (a != a || b != b) ? nan_v<T>() : a < b ? a : b;
    case Binary::eq: return a == b ? T(1) : T(0);
    case Binary::ne: return a != b ? T(1) : T(0);
    case Binary::lt: return a < b ? T(1) : T(0);
    case Binary::le: return a <= b ? T(1) : T(0);
    case Binary::gt: return a > b ? T(1) : T(0);
    case Binary::ge: return a >= b ? T(1) : T(0);
  }
  return a;
}

// Integer elements (int32, int64, uint8): arithmetic wraps modulo 2^bits (through the unsigned
// type, so never undefined), division truncates toward zero as C and MXNet do, x / 0 is 0 and
// INT_MIN / -1 wraps to INT_MIN (both trap on x86, and a trap would kill every session). Ops with
// no integer meaning run in double and convert back (convert.h), as MXNet computes them in float.
template <class T> using Unsigned = std::make_unsigned_t<T>;
template <class T> inline T wrap_neg(T x) { return static_cast<T>(Unsigned<T>(0) - static_cast<Unsigned<T>>(x)); }
template <class T> inline T wrap_mul(T a, T b) {
  // uint8 and similar promote to int, where 255 * 255 fits; wider types multiply unsigned.
  if constexpr (sizeof(T) < sizeof(int)) return static_cast<T>(static_cast<int>(a) * static_cast<int>(b));
  else return static_cast<T>(static_cast<Unsigned<T>>(a) * static_cast<Unsigned<T>>(b));
}

template <Unary op, class T>
inline T int_unary_op(T x) {
  switch (op) {
    case Unary::neg: return wrap_neg(x);
    case Unary::abs: return x < 0 ? wrap_neg(x) : x;
    case Unary::sign: return x > 0 ? T(1) : x < 0 ? static_cast<T>(-1) : T(0);
    case Unary::square: return wrap_mul(x, x);
    case Unary::relu: return x > 0 ? x : T(0);
    case Unary::floor: case Unary::ceil: case Unary::round: return x;
    default: return from_double<T>(unary_op<op, double>(static_cast<double>(x)));
  }
}

template <Binary op, class T>
inline T int_binary_op(T a, T b) {
  using U = Unsigned<T>;
  switch (op) {
    case Binary::add: return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    case Binary::sub: return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
    case Binary::mul: return wrap_mul(a, b);
    case Binary::div:
      if (b == 0) return T(0);
      if constexpr (std::is_signed_v<T>) {
        if (a == std::numeric_limits<T>::min() && b == T(-1)) return a;
      }
      return static_cast<T>(a / b);
    case Binary::pow: return from_double<T>(js_pow(static_cast<double>(a), static_cast<double>(b)));
    case Binary::maximum: return a > b ? a : b;
    case Binary::minimum: return a < b ? a : b;
    case Binary::eq: return a == b ? T(1) : T(0);
    case Binary::ne: return a != b ? T(1) : T(0);
    case Binary::lt: return a < b ? T(1) : T(0);
    case Binary::le: return a <= b ? T(1) : T(0);
    case Binary::gt: return a > b ? T(1) : T(0);
    case Binary::ge: return a >= b ? T(1) : T(0);
  }
  return a;
}

// The element op for T, integer or float.
template <Unary op, class T> inline T any_unary_op(T x) {
  if constexpr (std::is_integral_v<T>) return int_unary_op<op>(x);
  else return unary_op<op>(x);
}
template <Binary op, class T> inline T any_binary_op(T a, T b) {
  if constexpr (std::is_integral_v<T>) return int_binary_op<op>(a, b);
  else return binary_op<op>(a, b);
}

}  // namespace gs
