// The whole native surface of gradserve, in one place: one function per Backend method of
// src/engine/backend.ts, a Storage class, and a few diagnostics. This file only reads arguments
// and resolves storages; the kernels (src/native/kernels) re-check every length, stride and
// bound before touching memory, and any inconsistency becomes a JS Error.
//
// Arguments that can run JS (views and arrays read through getters) are read before any storage
// is resolved to a raw pointer, so a getter that frees a storage cannot leave a dangling pointer.
#include <napi.h>

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "args.h"
#include "kernels/common.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/memory.h"
#include "kernels/ops.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "kernels/strided.h"
#include "kernels/threads.h"

namespace gs {
namespace {

// Marks objects made by this addon, so a foreign or forged object is rejected before unwrapping.
const napi_type_tag kStorageTag = {0x6772616473657276ULL, 0x2e73746f72616765ULL};

DType parse_dtype(const Napi::Env& env, const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "float64") return DType::F64;
  throw Napi::TypeError::New(env, "native backend: unknown dtype " + s);
}

class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeStorage",
                       {InstanceAccessor<&Storage::GetAlive>("alive"), InstanceAccessor<&Storage::GetLength>("length"),
                        InstanceAccessor<&Storage::GetDType>("dtype")});
  }

  // new NativeStorage(dtype, length): a zero-filled buffer.
  explicit Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info) {
    Napi::Env env = info.Env();
    dtype_ = parse_dtype(env, arg_string(info, 0, "dtype"));
    const int64_t length = arg_int(info, 1, "length", 0, kMaxIndex / 8);
    try {
      data_ = buffer_alloc(length * item_size(dtype_));
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "native backend: out of memory allocating " + std::to_string(length) + " elements");
    }
    length_ = length;
    alive_ = true;
    info.This().As<Napi::Object>().TypeTag(&kStorageTag);
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes());
  }

  ~Storage() override { release(); }

  void Finalize(Napi::Env env) override {
    if (alive_) Napi::MemoryManagement::AdjustExternalMemory(env, -bytes());
    release();
  }

  Buf live(const Napi::Env& env, const char* name) const {
    if (!alive_) throw Napi::Error::New(env, std::string("native backend: argument `") + name + "` was freed");
    return Buf{data_, length_, dtype_};
  }

  // Frees the memory now; idempotent.
  void free_now(const Napi::Env& env) {
    if (!alive_) return;
    Napi::MemoryManagement::AdjustExternalMemory(env, -bytes());
    release();
  }

 private:
  int64_t bytes() const { return length_ * item_size(dtype_); }
  void release() {
    if (!alive_) return;
    buffer_free(data_, bytes());
    data_ = nullptr;
    alive_ = false;
    length_ = 0;  // as the reference: a freed buffer is empty
  }

  Napi::Value GetAlive(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), alive_); }
  Napi::Value GetLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(length_)); }
  Napi::Value GetDType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(dtype_)); }

  void* data_ = nullptr;
  int64_t length_ = 0;
  DType dtype_ = DType::F32;
  bool alive_ = false;
};

Storage* storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kStorageTag))
    throw Napi::TypeError::New(info.Env(), std::string("native backend: argument `") + name + "` is not a native storage");
  Storage* s = Storage::Unwrap(v.As<Napi::Object>());
  if (!s) throw Napi::TypeError::New(info.Env(), std::string("native backend: argument `") + name + "` is not a native storage");
  return s;
}

Buf buf_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return storage_arg(info, i, name)->live(info.Env(), name);
}

template <class Op>
Op op_arg(const Napi::CallbackInfo& info, size_t i, const char* family) {
  std::string s = arg_string(info, i, "op");
  Op op;
  if (!parse_op(s.c_str(), &op)) throw Napi::Error::New(info.Env(), std::string("native backend: unknown ") + family + " kernel " + s);
  return op;
}

Napi::Value Undefined(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---- memory --------------------------------------------------------------------------------

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  auto* ctor = info.Env().GetInstanceData<Napi::FunctionReference>();
  return ctor->New({info[0], info[1]});
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  storage_arg(info, 0, "s")->free_now(info.Env());
  return Undefined(info);
}

Napi::Value WriteBytes(const Napi::CallbackInfo& info) {
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "native backend: argument `bytes` must be a Uint8Array");
  Napi::TypedArray bytes = info[1].As<Napi::TypedArray>();
  const size_t n = bytes.ByteLength();
  const uint8_t* src = n ? static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset() : nullptr;
  Buf s = buf_arg(info, 0, "s");
  if (static_cast<int64_t>(n) != s.length * item_size(s.dtype)) throw Napi::Error::New(info.Env(), "native backend: writeBytes: byte length mismatch");
  if (n) std::memcpy(s.data, src, n);
  return Undefined(info);
}

Napi::Value ReadBytes(const Napi::CallbackInfo& info) {
  Buf s = buf_arg(info, 0, "s");
  const size_t n = static_cast<size_t>(s.length * item_size(s.dtype));
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), n);
  if (n) std::memcpy(ab.Data(), s.data, n);
  return Napi::Uint8Array::New(info.Env(), n, ab, 0);
}

// Reads any numeric typed array or array of numbers into doubles (before any storage is resolved).
std::vector<double> numbers_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  std::vector<double> out;
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    const size_t n = ta.ElementLength();
    out.resize(n);
    if (n == 0) return out;
    const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    auto copy = [&](auto tag) {
      using S = decltype(tag);
      const S* p = reinterpret_cast<const S*>(base);
      for (size_t j = 0; j < n; j++) out[j] = static_cast<double>(p[j]);
    };
    switch (ta.TypedArrayType()) {
      case napi_float64_array: std::memcpy(out.data(), base, n * 8); break;
      case napi_float32_array: copy(float{}); break;
      case napi_int8_array: copy(int8_t{}); break;
      case napi_uint8_array: case napi_uint8_clamped_array: copy(uint8_t{}); break;
      case napi_int16_array: copy(int16_t{}); break;
      case napi_uint16_array: copy(uint16_t{}); break;
      case napi_int32_array: copy(int32_t{}); break;
      case napi_uint32_array: copy(uint32_t{}); break;
      default: throw Napi::TypeError::New(env, "native backend: argument `data` must hold numbers, not bigints");
    }
    return out;
  }
  if (!v.IsArray()) throw Napi::TypeError::New(env, "native backend: argument `data` must be a Float64Array or an array of numbers");
  Napi::Array arr = v.As<Napi::Array>();
  const uint32_t n = arr.Length();
  out.resize(n);
  for (uint32_t j = 0; j < n; j++) {
    Napi::Value e = arr.Get(j);
    if (!e.IsNumber()) throw Napi::TypeError::New(env, "native backend: argument `data`[" + std::to_string(j) + "] must be a number");
    out[j] = e.As<Napi::Number>().DoubleValue();
  }
  return out;
}

Napi::Value WriteNumbers(const Napi::CallbackInfo& info) {
  std::vector<double> data = numbers_arg(info, 1);
  Buf s = buf_arg(info, 0, "s");
  if (static_cast<int64_t>(data.size()) != s.length) throw Napi::Error::New(info.Env(), "native backend: writeNumbers: length mismatch");
  if (s.dtype == DType::F64) {
    if (!data.empty()) std::memcpy(s.data, data.data(), data.size() * 8);
  } else {
    float* d = s.as<float>();
    for (size_t j = 0; j < data.size(); j++) d[j] = static_cast<float>(data[j]);
  }
  return Undefined(info);
}

Napi::Value ReadNumbers(const Napi::CallbackInfo& info) {
  Buf s = buf_arg(info, 0, "s");
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), static_cast<size_t>(s.length));
  if (s.dtype == DType::F64) {
    if (s.length) std::memcpy(out.Data(), s.data, static_cast<size_t>(s.length) * 8);
  } else {
    const float* p = s.as<float>();
    double* d = out.Data();
    for (int64_t j = 0; j < s.length; j++) d[j] = p[j];
  }
  return out;
}

// ---- creation ------------------------------------------------------------------------------

Napi::Value Fill(const Napi::CallbackInfo& info) {
  double value = arg_number(info, 1, "value");
  fill(buf_arg(info, 0, "out"), value);
  return Undefined(info);
}

Napi::Value Arange(const Napi::CallbackInfo& info) {
  double start = arg_number(info, 1, "start"), step = arg_number(info, 2, "step");
  arange(buf_arg(info, 0, "out"), start, step);
  return Undefined(info);
}

Napi::Value Eye(const Napi::CallbackInfo& info) {
  int64_t rows = arg_int(info, 1, "rows", 0, kMaxIndex), cols = arg_int(info, 2, "cols", 0, kMaxIndex);
  int64_t k = arg_int(info, 3, "k", -kMaxIndex, kMaxIndex);
  eye(buf_arg(info, 0, "out"), rows, cols, k);
  return Undefined(info);
}

Napi::Value RandomUniform(const Napi::CallbackInfo& info) {
  double seed = arg_number(info, 1, "seed"), counter = arg_number(info, 2, "counter");
  double low = arg_number(info, 3, "low"), high = arg_number(info, 4, "high");
  random_uniform(buf_arg(info, 0, "out"), seed, counter, low, high);
  return Undefined(info);
}

Napi::Value RandomNormal(const Napi::CallbackInfo& info) {
  double seed = arg_number(info, 1, "seed"), counter = arg_number(info, 2, "counter");
  double loc = arg_number(info, 3, "loc"), scale = arg_number(info, 4, "scale");
  random_normal(buf_arg(info, 0, "out"), seed, counter, loc, scale);
  return Undefined(info);
}

// ---- elementwise ---------------------------------------------------------------------------

Napi::Value UnaryFn(const Napi::CallbackInfo& info) {
  Unary op = op_arg<Unary>(info, 0, "unary");
  unary(op, buf_arg(info, 1, "x"), buf_arg(info, 2, "out"));
  return Undefined(info);
}

Napi::Value BinaryFn(const Napi::CallbackInfo& info) {
  Binary op = op_arg<Binary>(info, 0, "binary");
  View av = arg_view(info, 2, "av"), bv = arg_view(info, 4, "bv");
  binary(op, buf_arg(info, 1, "a"), av, buf_arg(info, 3, "b"), bv, buf_arg(info, 5, "out"));
  return Undefined(info);
}

Napi::Value BinaryScalar(const Napi::CallbackInfo& info) {
  Binary op = op_arg<Binary>(info, 0, "binary");
  double scalar = arg_number(info, 2, "scalar");
  bool first = arg_bool(info, 3, "scalarFirst");
  binary_scalar(op, buf_arg(info, 1, "x"), scalar, first, buf_arg(info, 4, "out"));
  return Undefined(info);
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  View cv = arg_view(info, 1, "cv"), av = arg_view(info, 3, "av"), bv = arg_view(info, 5, "bv");
  where(buf_arg(info, 0, "cond"), cv, buf_arg(info, 2, "a"), av, buf_arg(info, 4, "b"), bv, buf_arg(info, 6, "out"));
  return Undefined(info);
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  View xv = arg_view(info, 1, "xv");
  copy_strided(buf_arg(info, 0, "x"), xv, buf_arg(info, 2, "out"));
  return Undefined(info);
}

Napi::Value ScatterAddStrided(const Napi::CallbackInfo& info) {
  View ov = arg_view(info, 2, "ov");
  scatter_add_strided(buf_arg(info, 0, "x"), buf_arg(info, 1, "out"), ov);
  return Undefined(info);
}

// ---- reductions and products ---------------------------------------------------------------

Napi::Value ReduceFn(const Napi::CallbackInfo& info) {
  Reduce op = op_arg<Reduce>(info, 0, "reduce");
  std::vector<int64_t> shape = arg_int_array(info, 2, "shape", 0, kMaxIndex);
  std::vector<int64_t> axes = arg_int_array(info, 3, "axes", -kMaxIndex, kMaxIndex);
  reduce(op, buf_arg(info, 1, "x"), shape.data(), static_cast<int>(shape.size()), axes.data(),
         static_cast<int>(axes.size()), buf_arg(info, 4, "out"));
  return Undefined(info);
}

Napi::Value ArgReduce(const Napi::CallbackInfo& info) {
  std::string op = arg_string(info, 0, "op");
  if (op != "argmax" && op != "argmin") throw Napi::Error::New(info.Env(), "native backend: unknown argReduce kernel " + op);
  std::vector<int64_t> shape = arg_int_array(info, 2, "shape", 0, kMaxIndex);
  int64_t axis = arg_int(info, 3, "axis", -kMaxIndex, kMaxIndex);
  arg_reduce(op == "argmax", buf_arg(info, 1, "x"), shape.data(), static_cast<int>(shape.size()), axis,
             buf_arg(info, 4, "out"));
  return Undefined(info);
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  int64_t batch = arg_int(info, 3, "batch", 0, kMaxIndex), m = arg_int(info, 4, "m", 0, kMaxIndex);
  int64_t n = arg_int(info, 5, "n", 0, kMaxIndex), k = arg_int(info, 6, "k", 0, kMaxIndex);
  bool ta = arg_bool(info, 7, "transA"), tb = arg_bool(info, 8, "transB");
  int64_t sa = arg_int(info, 9, "strideA", 0, kMaxIndex), sb = arg_int(info, 10, "strideB", 0, kMaxIndex);
  gemm(buf_arg(info, 0, "a"), buf_arg(info, 1, "b"), buf_arg(info, 2, "out"), batch, m, n, k, ta, tb, sa, sb);
  return Undefined(info);
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  cast(buf_arg(info, 0, "x"), buf_arg(info, 1, "out"));
  return Undefined(info);
}

// ---- diagnostics (not part of Backend) -----------------------------------------------------

Napi::Value NativeBytesLive(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(bytes_live())); }
Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_num_threads(static_cast<int>(arg_int(info, 0, "n", 1, 64)));
  return Napi::Number::New(info.Env(), num_threads());
}
Napi::Value SimdLevel(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), simd_level()); }
Napi::Value SetSimdCap(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), set_simd_cap(arg_string(info, 0, "level").c_str()));
}

// Kernel errors and allocation failures become JS Errors; nothing escapes as a C++ exception.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "native backend: out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function storage = Storage::Define(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(storage)));
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Entry entries[] = {
      {"alloc", guarded<Alloc>},
      {"free", guarded<Free>},
      {"writeBytes", guarded<WriteBytes>},
      {"readBytes", guarded<ReadBytes>},
      {"writeNumbers", guarded<WriteNumbers>},
      {"readNumbers", guarded<ReadNumbers>},
      {"fill", guarded<Fill>},
      {"arange", guarded<Arange>},
      {"eye", guarded<Eye>},
      {"randomUniform", guarded<RandomUniform>},
      {"randomNormal", guarded<RandomNormal>},
      {"unary", guarded<UnaryFn>},
      {"binary", guarded<BinaryFn>},
      {"binaryScalar", guarded<BinaryScalar>},
      {"where", guarded<Where>},
      {"copyStrided", guarded<CopyStrided>},
      {"scatterAddStrided", guarded<ScatterAddStrided>},
      {"reduce", guarded<ReduceFn>},
      {"argReduce", guarded<ArgReduce>},
      {"gemm", guarded<Gemm>},
      {"cast", guarded<Cast>},
      {"nativeBytesLive", guarded<NativeBytesLive>},
      {"getThreads", guarded<GetThreads>},
      {"setThreads", guarded<SetThreads>},
      {"simdLevel", guarded<SimdLevel>},
      {"setSimdCap", guarded<SetSimdCap>},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  exports.Set("Storage", storage);
  return exports;
}

}  // namespace
}  // namespace gs

static Napi::Object InitGradserve(Napi::Env env, Napi::Object exports) { return gs::Init(env, exports); }
NODE_API_MODULE(gradserve, InitGradserve)
