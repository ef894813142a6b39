// Kernel names, in the order of backend.ts. Names are parsed once in the addon.
#pragma once
#include <cstring>

namespace gs {

#define GS_UNARY_OPS(X)                                                                           \
  X(neg) X(abs) X(sign) X(square) X(sqrt) X(rsqrt) X(reciprocal) X(exp) X(expm1) X(log) X(log1p) \
  X(sin) X(cos) X(tan) X(arcsin) X(arccos) X(arctan) X(sinh) X(cosh) X(tanh) X(arcsinh)          \
  X(arccosh) X(arctanh) X(relu) X(sigmoid) X(softrelu) X(floor) X(ceil) X(round) X(step)
#define GS_BINARY_OPS(X) \
  X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum) X(eq) X(ne) X(lt) X(le) X(gt) X(ge)
#define GS_REDUCE_OPS(X) X(sum) X(prod) X(max) X(min)

#define GS_ENUM_ITEM(name) name,
enum class Unary { GS_UNARY_OPS(GS_ENUM_ITEM) };
enum class Binary { GS_BINARY_OPS(GS_ENUM_ITEM) };
enum class Reduce { GS_REDUCE_OPS(GS_ENUM_ITEM) };
#undef GS_ENUM_ITEM

#define GS_COUNT_ITEM(name) +1
constexpr int kUnaryCount = 0 GS_UNARY_OPS(GS_COUNT_ITEM);
constexpr int kBinaryCount = 0 GS_BINARY_OPS(GS_COUNT_ITEM);
constexpr int kReduceCount = 0 GS_REDUCE_OPS(GS_COUNT_ITEM);
#undef GS_COUNT_ITEM

// Each returns false for an unknown name.
#define GS_PARSE_ITEM(E, name) if (std::strcmp(s, #name) == 0) { *out = E::name; return true; }
inline bool parse_op(const char* s, Unary* out) {
#define X(name) GS_PARSE_ITEM(Unary, name)
  GS_UNARY_OPS(X)
#undef X
  return false;
}
inline bool parse_op(const char* s, Binary* out) {
#define X(name) GS_PARSE_ITEM(Binary, name)
  GS_BINARY_OPS(X)
#undef X
  return false;
}
inline bool parse_op(const char* s, Reduce* out) {
#define X(name) GS_PARSE_ITEM(Reduce, name)
  GS_REDUCE_OPS(X)
#undef X
  return false;
}
#undef GS_PARSE_ITEM

}  // namespace gs
