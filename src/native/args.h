// Reading JS arguments into kernel types. Every reader names the argument it rejects and throws
// a JS Error (never reads past what it was handed).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "kernels/common.h"

namespace gs {

[[noreturn]] void throw_type(const Napi::Env& env, const std::string& msg);

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name);
// An integer-valued number in [lo, hi].
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace gs
