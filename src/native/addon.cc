// The whole native surface of gradserve, in one place: one function per Backend method of
// src/engine/backend.ts, a Storage class, and a few diagnostics. This file only reads arguments
// and resolves storages; the kernels (src/native/kernels) re-check every length, stride and
// bound before touching memory, and any inconsistency becomes a JS Error.
//
// Arguments that can run JS (views and arrays read through getters) are read before any storage
// is resolved to its memory block, so a getter that frees a storage cannot slip a freed buffer in.
//
// Kernels run on the stream (kernels/stream.h): small ones inline, large ones (and anything that
// touches a buffer queued work uses) on its worker thread, in call order. `flush` returns a
// promise that a thread-safe function resolves when the caller's queued work has completed.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
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
#include "kernels/stream.h"
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

// Per-environment state: the Storage constructor, the stream and the pending flushes.
struct AddonData {
  Napi::FunctionReference storage_ctor;
  Napi::ThreadSafeFunction tsfn;
  std::unique_ptr<Stream> stream;
  // Flush promises waiting for a call number; only touched on the JS thread.
  std::vector<std::pair<int64_t, Napi::Promise::Deferred>> waiters;

  // On the JS thread, when the worker has reached a requested call number.
  void progress(Napi::Env env) {
    for (;;) {
      const int64_t done = stream->completed();
      std::vector<Napi::Promise::Deferred> ready;
      int64_t next = INT64_MAX;
      for (size_t i = 0; i < waiters.size();) {
        if (waiters[i].first <= done) {
          ready.push_back(waiters[i].second);
          waiters[i] = waiters.back();
          waiters.pop_back();
        } else {
          next = std::min(next, waiters[i].first);
          i++;
        }
      }
      for (auto& d : ready) d.Resolve(env.Undefined());
      if (waiters.empty()) {
        tsfn.Unref(env);
        return;
      }
      if (!stream->request_wake(next)) return;
    }
  }
};

AddonData* data_of(const Napi::Env& env) { return env.GetInstanceData<AddonData>(); }
Stream& stream_of(const Napi::Env& env) { return *data_of(env)->stream; }

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
      block_ = std::make_shared<Block>(dtype_, length);
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "native backend: out of memory allocating " + std::to_string(length) + " elements");
    }
    length_ = length;
    info.This().As<Napi::Object>().TypeTag(&kStorageTag);
    if (counted()) Napi::MemoryManagement::AdjustExternalMemory(env, block_->bytes());
  }

  void Finalize(Napi::Env env) override {
    if (counted()) Napi::MemoryManagement::AdjustExternalMemory(env, -block_->bytes());
    block_.reset();
  }

  // The memory block, shared with whatever queued work uses it.
  const BlockRef& live(const Napi::Env& env, const char* name) const {
    if (!block_) throw Napi::Error::New(env, std::string("native backend: argument `") + name + "` was freed");
    return block_;
  }

  // Frees the memory now, or as soon as the queued work using it completes; idempotent.
  void free_now(const Napi::Env& env) {
    if (!block_) return;
    if (counted()) Napi::MemoryManagement::AdjustExternalMemory(env, -block_->bytes());
    block_.reset();
    length_ = 0;  // as the reference: a freed buffer is empty
  }

 private:
  Napi::Value GetAlive(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), bool(block_)); }
  Napi::Value GetLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(length_)); }
  Napi::Value GetDType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(dtype_)); }

  // Only buffers of a page or more are reported to V8 as external memory: tiny ones do not move
  // its GC heuristics, and the call costs about as much as the allocation.
  bool counted() const { return block_ && block_->bytes() >= 4096; }

  BlockRef block_;
  int64_t length_ = 0;
  DType dtype_ = DType::F32;
};

Storage* storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kStorageTag))
    throw Napi::TypeError::New(info.Env(), std::string("native backend: argument `") + name + "` is not a native storage");
  Storage* s = Storage::Unwrap(v.As<Napi::Object>());
  if (!s) throw Napi::TypeError::New(info.Env(), std::string("native backend: argument `") + name + "` is not a native storage");
  return s;
}

BlockRef block_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return storage_arg(info, i, name)->live(info.Env(), name);
}

// A checked kernel call on the stream: inline when small and independent, queued otherwise.
void submit(const Napi::CallbackInfo& info, Work w, std::initializer_list<const BlockRef*> reads,
            std::initializer_list<const BlockRef*> writes) {
  stream_of(info.Env()).submit(std::move(w), reads, writes);
}

// A block ready for synchronous access: queued work on it has completed and did not fail.
const BlockRef& settled(const Napi::CallbackInfo& info, const BlockRef& b, bool for_reading) {
  stream_of(info.Env()).wait(*b);
  if (for_reading && !b->error.empty()) throw Napi::Error::New(info.Env(), b->error);
  return b;
}

template <class Op> constexpr int op_count();
template <> constexpr int op_count<Unary>() { return kUnaryCount; }
template <> constexpr int op_count<Binary>() { return kBinaryCount; }
template <> constexpr int op_count<Reduce>() { return kReduceCount; }

// A kernel name, or its index in the order of kernelNames() (native.ts sends indices: cheaper).
template <class Op>
Op op_arg(const Napi::CallbackInfo& info, size_t i, const char* family) {
  if (info[i].IsNumber()) {
    const int64_t k = arg_int(info, i, "op", 0, op_count<Op>() - 1);
    return static_cast<Op>(k);
  }
  std::string s = arg_string(info, i, "op");
  Op op;
  if (!parse_op(s.c_str(), &op)) throw Napi::Error::New(info.Env(), std::string("native backend: unknown ") + family + " kernel " + s);
  return op;
}

Napi::Value Undefined(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---- memory --------------------------------------------------------------------------------

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return data_of(info.Env())->storage_ctor.New({info[0], info[1]});
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
  BlockRef b = block_arg(info, 0, "s");
  Buf s = b->buf();
  if (static_cast<int64_t>(n) != s.length * item_size(s.dtype)) throw Napi::Error::New(info.Env(), "native backend: writeBytes: byte length mismatch");
  settled(info, b, false);
  if (n) std::memcpy(s.data, src, n);
  b->error.clear();  // fully overwritten
  return Undefined(info);
}

Napi::Value ReadBytes(const Napi::CallbackInfo& info) {
  Buf s = settled(info, block_arg(info, 0, "s"), true)->buf();
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
  BlockRef b = block_arg(info, 0, "s");
  Buf s = b->buf();
  if (static_cast<int64_t>(data.size()) != s.length) throw Napi::Error::New(info.Env(), "native backend: writeNumbers: length mismatch");
  settled(info, b, false);
  b->error.clear();  // fully overwritten
  if (s.dtype == DType::F64) {
    if (!data.empty()) std::memcpy(s.data, data.data(), data.size() * 8);
  } else {
    float* d = s.as<float>();
    for (size_t j = 0; j < data.size(); j++) d[j] = static_cast<float>(data[j]);
  }
  return Undefined(info);
}

Napi::Value ReadNumbers(const Napi::CallbackInfo& info) {
  Buf s = settled(info, block_arg(info, 0, "s"), true)->buf();
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
  BlockRef o = block_arg(info, 0, "out");
  submit(info, fill(o->buf(), value), {}, {&o});
  return Undefined(info);
}

Napi::Value Arange(const Napi::CallbackInfo& info) {
  double start = arg_number(info, 1, "start"), step = arg_number(info, 2, "step");
  BlockRef o = block_arg(info, 0, "out");
  submit(info, arange(o->buf(), start, step), {}, {&o});
  return Undefined(info);
}

Napi::Value Eye(const Napi::CallbackInfo& info) {
  int64_t rows = arg_int(info, 1, "rows", 0, kMaxIndex), cols = arg_int(info, 2, "cols", 0, kMaxIndex);
  int64_t k = arg_int(info, 3, "k", -kMaxIndex, kMaxIndex);
  BlockRef o = block_arg(info, 0, "out");
  submit(info, eye(o->buf(), rows, cols, k), {}, {&o});
  return Undefined(info);
}

Napi::Value RandomUniform(const Napi::CallbackInfo& info) {
  double seed = arg_number(info, 1, "seed"), counter = arg_number(info, 2, "counter");
  double low = arg_number(info, 3, "low"), high = arg_number(info, 4, "high");
  BlockRef o = block_arg(info, 0, "out");
  submit(info, random_uniform(o->buf(), seed, counter, low, high), {}, {&o});
  return Undefined(info);
}

Napi::Value RandomNormal(const Napi::CallbackInfo& info) {
  double seed = arg_number(info, 1, "seed"), counter = arg_number(info, 2, "counter");
  double loc = arg_number(info, 3, "loc"), scale = arg_number(info, 4, "scale");
  BlockRef o = block_arg(info, 0, "out");
  submit(info, random_normal(o->buf(), seed, counter, loc, scale), {}, {&o});
  return Undefined(info);
}

// ---- elementwise ---------------------------------------------------------------------------

Napi::Value UnaryFn(const Napi::CallbackInfo& info) {
  Unary op = op_arg<Unary>(info, 0, "unary");
  BlockRef x = block_arg(info, 1, "x"), o = block_arg(info, 2, "out");
  submit(info, unary(op, x->buf(), o->buf()), {&x}, {&o});
  return Undefined(info);
}

Napi::Value BinaryFn(const Napi::CallbackInfo& info) {
  Binary op = op_arg<Binary>(info, 0, "binary");
  View av = arg_view(info, 2, "av"), bv = arg_view(info, 4, "bv");
  BlockRef a = block_arg(info, 1, "a"), b = block_arg(info, 3, "b"), o = block_arg(info, 5, "out");
  submit(info, binary(op, a->buf(), av, b->buf(), bv, o->buf()), {&a, &b}, {&o});
  return Undefined(info);
}

Napi::Value BinaryScalar(const Napi::CallbackInfo& info) {
  Binary op = op_arg<Binary>(info, 0, "binary");
  double scalar = arg_number(info, 2, "scalar");
  bool first = arg_bool(info, 3, "scalarFirst");
  BlockRef x = block_arg(info, 1, "x"), o = block_arg(info, 4, "out");
  submit(info, binary_scalar(op, x->buf(), scalar, first, o->buf()), {&x}, {&o});
  return Undefined(info);
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  View cv = arg_view(info, 1, "cv"), av = arg_view(info, 3, "av"), bv = arg_view(info, 5, "bv");
  BlockRef c = block_arg(info, 0, "cond"), a = block_arg(info, 2, "a"), b = block_arg(info, 4, "b");
  BlockRef o = block_arg(info, 6, "out");
  submit(info, where(c->buf(), cv, a->buf(), av, b->buf(), bv, o->buf()), {&c, &a, &b}, {&o});
  return Undefined(info);
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  View xv = arg_view(info, 1, "xv");
  BlockRef x = block_arg(info, 0, "x"), o = block_arg(info, 2, "out");
  submit(info, copy_strided(x->buf(), xv, o->buf()), {&x}, {&o});
  return Undefined(info);
}

Napi::Value ScatterAddStrided(const Napi::CallbackInfo& info) {
  View ov = arg_view(info, 2, "ov");
  BlockRef x = block_arg(info, 0, "x"), o = block_arg(info, 1, "out");
  // out is read as well as written (it accumulates).
  submit(info, scatter_add_strided(x->buf(), o->buf(), ov), {&x, &o}, {&o});
  return Undefined(info);
}

// ---- reductions and products ---------------------------------------------------------------

Napi::Value ReduceFn(const Napi::CallbackInfo& info) {
  Reduce op = op_arg<Reduce>(info, 0, "reduce");
  std::vector<int64_t> shape = arg_int_array(info, 2, "shape", 0, kMaxIndex);
  std::vector<int64_t> axes = arg_int_array(info, 3, "axes", -kMaxIndex, kMaxIndex);
  BlockRef x = block_arg(info, 1, "x"), o = block_arg(info, 4, "out");
  submit(info,
         reduce(op, x->buf(), shape.data(), static_cast<int>(shape.size()), axes.data(), static_cast<int>(axes.size()),
                o->buf()),
         {&x}, {&o});
  return Undefined(info);
}

Napi::Value ArgReduce(const Napi::CallbackInfo& info) {
  std::string op = arg_string(info, 0, "op");
  if (op != "argmax" && op != "argmin") throw Napi::Error::New(info.Env(), "native backend: unknown argReduce kernel " + op);
  std::vector<int64_t> shape = arg_int_array(info, 2, "shape", 0, kMaxIndex);
  int64_t axis = arg_int(info, 3, "axis", -kMaxIndex, kMaxIndex);
  BlockRef x = block_arg(info, 1, "x"), o = block_arg(info, 4, "out");
  submit(info, arg_reduce(op == "argmax", x->buf(), shape.data(), static_cast<int>(shape.size()), axis, o->buf()),
         {&x}, {&o});
  return Undefined(info);
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  int64_t batch = arg_int(info, 3, "batch", 0, kMaxIndex), m = arg_int(info, 4, "m", 0, kMaxIndex);
  int64_t n = arg_int(info, 5, "n", 0, kMaxIndex), k = arg_int(info, 6, "k", 0, kMaxIndex);
  bool ta = arg_bool(info, 7, "transA"), tb = arg_bool(info, 8, "transB");
  int64_t sa = arg_int(info, 9, "strideA", 0, kMaxIndex), sb = arg_int(info, 10, "strideB", 0, kMaxIndex);
  BlockRef a = block_arg(info, 0, "a"), b = block_arg(info, 1, "b"), o = block_arg(info, 2, "out");
  submit(info, gemm(a->buf(), b->buf(), o->buf(), batch, m, n, k, ta, tb, sa, sb), {&a, &b}, {&o});
  return Undefined(info);
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  BlockRef x = block_arg(info, 0, "x"), o = block_arg(info, 1, "out");
  submit(info, cast(x->buf(), o->buf()), {&x}, {&o});
  return Undefined(info);
}

// ---- the stream ----------------------------------------------------------------------------

// flush() waits for every call queued so far; flush(tag) for those queued under that tag.
Napi::Value Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* d = data_of(env);
  int64_t seq;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    seq = d->stream->pending_seq(static_cast<int>(arg_int(info, 0, "stream", 0, INT32_MAX)));
  } else {
    seq = d->stream->pending_seq_all();
  }
  auto deferred = Napi::Promise::Deferred::New(env);
  if (seq == 0 || d->stream->request_wake(seq)) {
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  // The worker calls back once it reaches seq; hold the loop open only while someone waits.
  if (d->waiters.empty()) d->tsfn.Ref(env);
  d->waiters.emplace_back(seq, deferred);
  return deferred.Promise();
}

// Tags the calls that follow with a stream number (a session); returns the previous one.
Napi::Value SetStream(const Napi::CallbackInfo& info) {
  int tag = static_cast<int>(arg_int(info, 0, "stream", 0, INT32_MAX));
  return Napi::Number::New(info.Env(), stream_of(info.Env()).set_tag(tag));
}

// Blocks until all queued work has completed (tests and benchmarks).
Napi::Value Sync(const Napi::CallbackInfo& info) {
  stream_of(info.Env()).wait_all();
  return Undefined(info);
}

Napi::Value PendingWork(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(stream_of(info.Env()).queued()));
}

// Sets the cost at or above which calls are queued even when independent (0 queues every call);
// returns the previous limit.
Napi::Value SetInlineLimit(const Napi::CallbackInfo& info) {
  double c = arg_number(info, 0, "limit");
  if (!(c >= 0)) throw Napi::RangeError::New(info.Env(), "native backend: argument `limit` must be >= 0");
  Stream& s = stream_of(info.Env());
  double prev = s.inline_limit();
  s.set_inline_limit(c);
  return Napi::Number::New(info.Env(), prev);
}

// ---- diagnostics (not part of Backend) -----------------------------------------------------

// The kernel names in index order, for op arguments given as indices.
Napi::Value KernelNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto list = [&](std::initializer_list<const char*> names) {
    Napi::Array a = Napi::Array::New(env, names.size());
    uint32_t j = 0;
    for (const char* n : names) a.Set(j++, Napi::String::New(env, n));
    return a;
  };
#define X(name) #name,
  o.Set("unary", list({GS_UNARY_OPS(X)}));
  o.Set("binary", list({GS_BINARY_OPS(X)}));
  o.Set("reduce", list({GS_REDUCE_OPS(X)}));
#undef X
  return o;
}

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
  auto* d = new AddonData();
  d->storage_ctor = Napi::Persistent(storage);
  d->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "gradserve-flush", 0, 1);
  d->tsfn.Unref(env);
  d->stream = std::make_unique<Stream>([d] {
    d->tsfn.NonBlockingCall([d](Napi::Env e, Napi::Function) { d->progress(e); });
  });
  // Registered after the thread-safe function, so it runs before that one is torn down: the
  // worker is joined first and never calls into a closed function.
  env.AddCleanupHook([d] {
    d->stream.reset();
    d->tsfn.Abort();
  });
  env.SetInstanceData<AddonData>(d);
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
      {"flush", guarded<Flush>},
      {"setStream", guarded<SetStream>},
      {"sync", guarded<Sync>},
      {"pendingWork", guarded<PendingWork>},
      {"setInlineLimit", guarded<SetInlineLimit>},
      {"kernelNames", guarded<KernelNames>},
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
