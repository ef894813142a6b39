// Kernel names, in the order of backend.ts: commands name a kernel by its index in these lists.
// The addon exports the lists (abi() in addon.cc) and native.ts refuses to load when they differ
// from its own.
#pragma once

namespace gs {

#define GS_UNARY_OPS(X)                                                                           \
  X(neg) X(abs) X(sign) X(square) X(sqrt) X(rsqrt) X(reciprocal) X(exp) X(expm1) X(log) X(log1p) \
  X(sin) X(cos) X(tan) X(arcsin) X(arccos) X(arctan) X(sinh) X(cosh) X(tanh) X(arcsinh)          \
  X(arccosh) X(arctanh) X(relu) X(sigmoid) X(softrelu) X(floor) X(ceil) X(round)
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

}  // namespace gs
