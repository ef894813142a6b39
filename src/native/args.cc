#include "args.h"

#include <cmath>

namespace gs {
namespace {

std::string at(const char* name) { return std::string("native backend: argument `") + name + "` "; }

int64_t to_int(const Napi::Env& env, const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) throw_type(env, what + "must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw_type(env, what + "must be an integer");
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw Napi::RangeError::New(env, what + "is out of range");
  return static_cast<int64_t>(d);
}

std::vector<int64_t> to_int_array(const Napi::Env& env, const Napi::Value& v, const std::string& what, int64_t lo,
                                  int64_t hi) {
  if (!v.IsArray()) throw_type(env, what + "must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  uint32_t len = arr.Length();
  if (len > static_cast<uint32_t>(kMaxRank)) throw Napi::RangeError::New(env, what + "has too many entries");
  std::vector<int64_t> out(len);
  for (uint32_t j = 0; j < len; j++) out[j] = to_int(env, arr.Get(j), what + "[" + std::to_string(j) + "] ", lo, hi);
  return out;
}

}  // namespace

void throw_type(const Napi::Env& env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type(info.Env(), at(name) + "must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  return to_int(info.Env(), info[i], at(name), lo, hi);
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) throw_type(info.Env(), at(name) + "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw_type(info.Env(), at(name) + "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> arg_int_array(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  return to_int_array(info.Env(), info[i], at(name), lo, hi);
}

View arg_view(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    // Packed by native.ts: [rank, offset, shape..., strides...] (one N-API call instead of dozens).
    Napi::Float64Array f = v.As<Napi::Float64Array>();
    const size_t len = f.ElementLength();
    const double* p = f.Data();
    std::string what = at(name);
    auto int_at = [&](size_t j, int64_t lo, int64_t hi) {
      const double d = p[j];
      if (!std::isfinite(d) || d != std::floor(d)) throw_type(env, what + "must hold integers");
      if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) throw Napi::RangeError::New(env, what + "is out of range");
      return static_cast<int64_t>(d);
    };
    if (len < 2) throw_type(env, what + "is a malformed packed view");
    const int64_t rank = int_at(0, 0, kMaxRank);
    if (len != static_cast<size_t>(2 + 2 * rank)) throw_type(env, what + "is a malformed packed view");
    View view;
    view.rank = static_cast<int>(rank);
    view.offset = int_at(1, -kMaxIndex, kMaxIndex);
    for (int d = 0; d < view.rank; d++) {
      view.shape[d] = int_at(2 + d, 0, kMaxIndex);
      view.strides[d] = int_at(2 + rank + d, -kMaxIndex, kMaxIndex);
    }
    return view;
  }
  if (!v.IsObject()) throw_type(env, at(name) + "must be a view {shape, strides, offset}");
  Napi::Object o = v.As<Napi::Object>();
  std::string what = at(name);
  std::vector<int64_t> shape = to_int_array(env, o.Get("shape"), what + ".shape ", 0, kMaxIndex);
  std::vector<int64_t> strides = to_int_array(env, o.Get("strides"), what + ".strides ", -kMaxIndex, kMaxIndex);
  if (shape.size() != strides.size()) throw Napi::RangeError::New(env, what + "has shape and strides of different ranks");
  View view;
  view.rank = static_cast<int>(shape.size());
  for (int d = 0; d < view.rank; d++) {
    view.shape[d] = shape[d];
    view.strides[d] = strides[d];
  }
  view.offset = to_int(env, o.Get("offset"), what + ".offset ", -kMaxIndex, kMaxIndex);
  return view;
}

}  // namespace gs
