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

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw_type(info.Env(), at(name) + "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace gs
