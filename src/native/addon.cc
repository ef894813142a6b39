// The whole native surface of gradserve, in one place. Buffers are named by integer handles
// (handles.h); kernels arrive as commands in a buffer native.ts fills (commands.h), so a long
// program of tiny ops costs one N-API call per batch. The few direct functions here read or write
// buffer contents, wait for the stream, or report diagnostics. The kernels (src/native/kernels)
// re-check every length, stride and bound before touching memory, and any inconsistency becomes a
// JS Error.
//
// Kernels run on the stream (kernels/stream.h): small ones inline, large ones (and anything that
// touches a buffer queued work uses) on its worker thread, each session's in call order, sessions
// served fairly. `flush` returns a promise that a thread-safe function resolves when the caller's
// queued work has completed; `setDeadline` bounds how long a session's queued work may run.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "handles.h"
#include "kernels/common.h"
#include "kernels/convert.h"
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

// Per-environment state: the buffers by handle, the stream, the command buffer and the pending
// flushes.
struct AddonData {
  HandleTable table;
  Napi::ThreadSafeFunction tsfn;
  std::unique_ptr<Stream> stream;
  // The Float64Array native.ts writes commands into (setCommandBuffer); held so it stays alive.
  Napi::Reference<Napi::ArrayBuffer> commands_ref;
  const double* commands = nullptr;
  size_t commands_len = 0;
  // Flush promises waiting for the calls of a tag (-1: of every tag) up to a call number; only
  // touched on the JS thread.
  struct Waiter {
    int tag;
    int64_t seq;
    Napi::Promise::Deferred deferred;
  };
  std::vector<Waiter> waiters;

  // On the JS thread, when the worker has completed calls some waiter waits for.
  void progress(Napi::Env env) {
    for (;;) {
      std::vector<Napi::Promise::Deferred> ready;
      for (size_t i = 0; i < waiters.size();) {
        if (stream->done(waiters[i].tag, waiters[i].seq)) {
          ready.push_back(waiters[i].deferred);
          waiters[i] = waiters.back();
          waiters.pop_back();
        } else {
          i++;
        }
      }
      for (auto& d : ready) d.Resolve(env.Undefined());
      if (waiters.empty()) {
        tsfn.Unref(env);
        return;
      }
      // Ask to be woken for each one left; if one completed meanwhile, look again.
      bool again = false;
      for (const Waiter& w : waiters) again = stream->request_wake(w.tag, w.seq) || again;
      if (!again) return;
    }
  }
};

AddonData* data_of(const Napi::Env& env) { return env.GetInstanceData<AddonData>(); }
Stream& stream_of(const Napi::Env& env) { return *data_of(env)->stream; }

BlockRef block_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return data_of(info.Env())->table.get(arg_int(info, i, name, 1, HandleTable::kMaxHandles - 1), name);
}

// A block ready for synchronous access: queued work on it has completed and did not fail.
const BlockRef& settled(const Napi::CallbackInfo& info, const BlockRef& b, bool for_reading) {
  stream_of(info.Env()).wait(*b);
  if (for_reading && !b->error.empty()) throw Napi::Error::New(info.Env(), b->error);
  return b;
}

Napi::Value Undefined(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---- commands ------------------------------------------------------------------------------

// setCommandBuffer(f64): the array every later run(n) reads its commands from.
Napi::Value SetCommandBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(info.Env(), "native backend: argument `commands` must be a Float64Array");
  Napi::Float64Array f = info[0].As<Napi::Float64Array>();
  AddonData* d = data_of(info.Env());
  d->commands_ref = Napi::Persistent(f.ArrayBuffer());
  d->commands = f.Data();
  d->commands_len = f.ElementLength();
  return Undefined(info);
}

// run(n): runs the first n doubles of the command buffer; throws the first failure.
Napi::Value Run(const Napi::CallbackInfo& info) {
  AddonData* d = data_of(info.Env());
  const int64_t n = arg_int(info, 0, "n", 0, static_cast<int64_t>(d->commands_len));
  if (n == 0) return Undefined(info);
  const std::string err = run_commands(*d->stream, d->table, d->commands, static_cast<size_t>(n));
  if (!err.empty()) throw Napi::Error::New(info.Env(), err);
  return Undefined(info);
}

// ---- memory --------------------------------------------------------------------------------

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
  b->clear_failure();  // fully overwritten
  return Undefined(info);
}

// readBytes(s) copies the whole buffer; readBytes(s, offset, length) the bytes [offset,
// offset + length), so that a large read can be split between turns of the event loop.
Napi::Value ReadBytes(const Napi::CallbackInfo& info) {
  Buf s = settled(info, block_arg(info, 0, "s"), true)->buf();
  const int64_t total = s.length * item_size(s.dtype);
  int64_t offset = 0, n = total;
  if (info.Length() > 1) {
    offset = arg_int(info, 1, "offset", 0, total);
    n = arg_int(info, 2, "length", 0, total - offset);
  }
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), static_cast<size_t>(n));
  if (n) std::memcpy(ab.Data(), static_cast<const uint8_t*>(s.data) + offset, static_cast<size_t>(n));
  return Napi::Uint8Array::New(info.Env(), static_cast<size_t>(n), ab, 0);
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
  b->clear_failure();  // fully overwritten
  with_storable(s.dtype, [&](auto t) {
    using T = decltype(t);
    T* d = s.as<T>();
    for (size_t j = 0; j < data.size(); j++) d[j] = from_double<T>(data[j]);
  });
  return Undefined(info);
}

Napi::Value ReadNumbers(const Napi::CallbackInfo& info) {
  Buf s = settled(info, block_arg(info, 0, "s"), true)->buf();
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), static_cast<size_t>(s.length));
  double* d = out.Data();
  with_storable(s.dtype, [&](auto t) {
    using T = decltype(t);
    const T* p = s.as<T>();
    for (int64_t j = 0; j < s.length; j++) d[j] = to_double(p[j]);
  });
  return out;
}

// ---- the stream ----------------------------------------------------------------------------

// flush() waits for every call queued so far; flush(tag) for those queued under that tag.
Napi::Value Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* d = data_of(env);
  int64_t seq;
  int tag = -1;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    tag = static_cast<int>(arg_int(info, 0, "stream", 0, INT32_MAX));
    seq = d->stream->pending_seq(tag);
  } else {
    seq = d->stream->pending_seq_all();
  }
  auto deferred = Napi::Promise::Deferred::New(env);
  if (seq == 0 || d->stream->request_wake(tag, seq)) {
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  // The worker calls back once those calls are done; hold the loop open only while someone waits.
  if (d->waiters.empty()) d->tsfn.Ref(env);
  d->waiters.push_back({tag, seq, deferred});
  return deferred.Promise();
}

// Blocks until all queued work has completed (tests and benchmarks).
Napi::Value Sync(const Napi::CallbackInfo& info) {
  stream_of(info.Env()).wait_all();
  return Undefined(info);
}

// setDeadline(stream, budgetMs): calls of that stream still pending after budgetMs are stopped
// (kernels/stream.h); a negative budget clears it. clearDeadline(stream): clears it and says
// whether it stopped a call since it was set.
Napi::Value SetDeadline(const Napi::CallbackInfo& info) {
  const int tag = static_cast<int>(arg_int(info, 0, "stream", 0, INT32_MAX));
  const double budget = arg_number(info, 1, "budgetMs");
  if (std::isnan(budget)) throw Napi::RangeError::New(info.Env(), "native backend: argument `budgetMs` must be a number");
  stream_of(info.Env()).set_deadline(tag, budget);
  return Undefined(info);
}

Napi::Value ClearDeadline(const Napi::CallbackInfo& info) {
  const int tag = static_cast<int>(arg_int(info, 0, "stream", 0, INT32_MAX));
  return Napi::Boolean::New(info.Env(), stream_of(info.Env()).clear_deadline(tag));
}

// failed(h), after the queued work on the buffer: 0 when it is whole, 1 when a queued kernel that
// was to write it failed or was stopped before it had written anything (its bytes are what the
// last completed write left), 2 when one failed part way. Never throws for a failed buffer.
Napi::Value Failed(const Napi::CallbackInfo& info) {
  BlockRef b = block_arg(info, 0, "s");
  settled(info, b, false);
  return Napi::Number::New(info.Env(), b->error.empty() ? 0 : b->clobbered() ? 2 : 1);
}

// clearFailure(h): forgets a failure that wrote nothing (failed(h) == 1), so the buffer reads
// again; returns whether it did. A buffer written part way keeps its failure.
Napi::Value ClearFailure(const Napi::CallbackInfo& info) {
  BlockRef b = block_arg(info, 0, "s");
  settled(info, b, false);
  if (b->error.empty()) return Napi::Boolean::New(info.Env(), true);
  if (b->clobbered()) return Napi::Boolean::New(info.Env(), false);
  b->clear_failure();
  return Napi::Boolean::New(info.Env(), true);
}

// The stream's counters (tests): whole kernels and steps run on the worker, calls stopped.
Napi::Value StreamStats(const Napi::CallbackInfo& info) {
  const Stream::Stats st = stream_of(info.Env()).stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("runs", Napi::Number::New(info.Env(), double(st.runs)));
  o.Set("steps", Napi::Number::New(info.Env(), double(st.steps)));
  o.Set("stopped", Napi::Number::New(info.Env(), double(st.stopped)));
  return o;
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

// What native.ts must agree on with the addon, which it compares with its own tables at load:
// the commands in opcode order, the kernel names in index order (commands name kernels by
// index), the dtypes in code order, and the limits both sides enforce.
Napi::Value Abi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto list = [&](const std::vector<const char*>& names) {
    Napi::Array a = Napi::Array::New(env, names.size());
    for (uint32_t j = 0; j < names.size(); j++) a.Set(j, Napi::String::New(env, names[j]));
    return a;
  };
#define X(name) #name,
  o.Set("commands", list({GS_COMMANDS(X)}));
  o.Set("unary", list({GS_UNARY_OPS(X)}));
  o.Set("binary", list({GS_BINARY_OPS(X)}));
  o.Set("reduce", list({GS_REDUCE_OPS(X)}));
#undef X
  std::vector<const char*> dtypes;
  for (int d = 0; d < kDTypeCount; d++) dtypes.push_back(dtype_name(static_cast<DType>(d)));
  o.Set("dtypes", list(dtypes));
  o.Set("maxRank", Napi::Number::New(env, kMaxRank));
  o.Set("maxHandles", Napi::Number::New(env, static_cast<double>(HandleTable::kMaxHandles)));
  return o;
}

Napi::Value NativeBytesLive(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(bytes_live())); }
Napi::Value AllocatorStats(const Napi::CallbackInfo& info) {
  const CacheStats st = cache_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  const auto set = [&](const char* k, int64_t v) { o.Set(k, Napi::Number::New(info.Env(), double(v))); };
  set("cachedBytes", st.cached_bytes);
  set("cachedBlocks", st.cached_blocks);
  set("limitBytes", st.limit_bytes);
  set("budgetBytes", st.budget_bytes);
  set("hits", st.hits);
  set("misses", st.misses);
  set("trims", st.trims);
  set("trimmedBytes", st.trimmed_bytes);
  set("smallCachedBytes", st.small_cached_bytes);
  return o;
}
Napi::Value AllocatorTrim(const Napi::CallbackInfo& info) {
  const bool idle_only = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  return Napi::Number::New(info.Env(), double(idle_only ? cache_trim_if_idle() : cache_trim()));
}
Napi::Value AllocatorSetLimit(const Napi::CallbackInfo& info) {
  const int64_t unbounded = int64_t(1) << 53;
  const int64_t budget = info.Length() > 1 ? arg_int(info, 1, "budget", 0, unbounded) : unbounded;
  cache_set_limit(arg_int(info, 0, "bytes", 0, unbounded), budget >= unbounded ? INT64_MAX : budget);
  return info.Env().Undefined();
}
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
  auto* d = new AddonData();
  d->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "gradserve-flush", 0, 1);
  d->tsfn.Unref(env);
  d->stream = std::make_unique<Stream>([d] {
    d->tsfn.NonBlockingCall([d](Napi::Env e, Napi::Function) { d->progress(e); });
  });
  // Registered after the thread-safe function, so it runs before that one is torn down: the
  // worker is joined first and never calls into a closed function.
  env.AddCleanupHook([d] {
    d->table.clear();
    d->stream.reset();
    d->tsfn.Abort();
  });
  env.SetInstanceData<AddonData>(d);
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Entry entries[] = {
      {"setCommandBuffer", guarded<SetCommandBuffer>},
      {"run", guarded<Run>},
      {"writeBytes", guarded<WriteBytes>},
      {"readBytes", guarded<ReadBytes>},
      {"writeNumbers", guarded<WriteNumbers>},
      {"readNumbers", guarded<ReadNumbers>},
      {"flush", guarded<Flush>},
      {"sync", guarded<Sync>},
      {"pendingWork", guarded<PendingWork>},
      {"setDeadline", guarded<SetDeadline>},
      {"clearDeadline", guarded<ClearDeadline>},
      {"failed", guarded<Failed>},
      {"clearFailure", guarded<ClearFailure>},
      {"streamStats", guarded<StreamStats>},
      {"setInlineLimit", guarded<SetInlineLimit>},
      {"abi", guarded<Abi>},
      {"nativeBytesLive", guarded<NativeBytesLive>},
      {"allocatorStats", guarded<AllocatorStats>},
      {"allocatorTrim", guarded<AllocatorTrim>},
      {"allocatorSetLimit", guarded<AllocatorSetLimit>},
      {"getThreads", guarded<GetThreads>},
      {"setThreads", guarded<SetThreads>},
      {"simdLevel", guarded<SimdLevel>},
      {"setSimdCap", guarded<SetSimdCap>},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  return exports;
}

}  // namespace
}  // namespace gs

static Napi::Object InitGradserve(Napi::Env env, Napi::Object exports) { return gs::Init(env, exports); }
NODE_API_MODULE(gradserve, InitGradserve)
