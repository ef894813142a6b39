// Types shared by every kernel. Kernels know buffers, shapes and strides only; the addon has
// already resolved JS handles into live Bufs before calling them.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

namespace gs {

// Thrown for any inconsistent argument; the addon turns it into a JS Error.
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] inline void fail(const std::string& msg) { throw KernelError("native backend: " + msg); }

// A dtype's code in commands is its value here.
// Code that branches on a dtype names every case and fails on any other (never "else = the other
// float"): adding a dtype then stops the build (-Wswitch) or fails closed at each place that must
// learn it, instead of reading its bytes as a float.
enum class DType : int { F32 = 0, F64 = 1, I32 = 2, I64 = 3, U8 = 4, F16 = 5 };
constexpr int kDTypeCount = 6;
inline int64_t item_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::F16: return 2;
  }
  fail("unknown dtype code " + std::to_string(static_cast<int>(d)));
}
inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::F16: return "float16";
  }
  return "unknown";  // only ever printed in a message about the bad code itself
}

// A live buffer: `length` elements of `dtype` at `data` (null when length is 0).
struct Buf {
  void* data;
  int64_t length;
  DType dtype;
  template <class T> T* as() const { return static_cast<T*>(data); }
};

// Largest element count or |stride| accepted: keeps every offset product inside int64 and
// every count exactly representable as a JS number.
constexpr int64_t kMaxIndex = (int64_t(1) << 53) - 1;
constexpr int kMaxRank = 32;

// A strided view, as in backend.ts: element idx sits at offset + sum idx[d] * strides[d].
struct View {
  int rank = 0;
  int64_t shape[kMaxRank];
  int64_t strides[kMaxRank];
  int64_t offset = 0;
};

inline void same_dtype(const Buf& a, const Buf& b, const char* what) {
  if (a.dtype != b.dtype) fail(std::string(what) + ": dtype mismatch (" + dtype_name(a.dtype) + " vs " + dtype_name(b.dtype) + ")");
}
inline void same_length(const Buf& a, const Buf& b, const char* what) {
  if (a.length != b.length) fail(std::string(what) + ": length mismatch (" + std::to_string(a.length) + " vs " + std::to_string(b.length) + ")");
}

// Kernels that compute refuse float16 (storage only) and, for float-only ones, integers, when
// called, before any work is queued.
inline void needs_numeric(const Buf& b, const char* what) {
  if (b.dtype == DType::F16) fail(std::string(what) + ": float16 is storage only");
}
inline void needs_float(const Buf& b, const char* what) {
  if (b.dtype != DType::F32 && b.dtype != DType::F64) fail(std::string(what) + ": does not take " + dtype_name(b.dtype));
}

// A validated kernel call. Kernels check every argument when called and return the work itself
// as a closure over plain values (pointers, lengths, views), so the addon can run it at once on
// the calling thread or later on the stream's worker. `cost` estimates the work in simple
// element operations (a flop or a byte moved is about one); `run` is empty when there is none.
//
// A large kernel may also come in `steps` pieces (steps > 1): step(0), step(1), ... run in that
// order, each once, do the same work as run(), and give the same result bit for bit, so the
// stream can run other work between two of them (kernels/stream.h). How a kernel is cut depends
// only on its arguments, never on timing. The closures may keep state between steps (packed
// panels); it lives until the Work is destroyed.
struct Work {
  Work() = default;
  Work(std::function<void()> r, double c) : run(std::move(r)), cost(c) {}
  std::function<void()> run;
  double cost = 0;
  int64_t steps = 0;
  std::function<void(int64_t)> step;
};

// float16 is storage only: a distinct type so no arithmetic template accepts it by accident.
struct Half {
  uint16_t bits;
};

// Calls f(T{}) with T the C++ type of d, for the float-only kernels (GEMM, random): any other
// dtype is refused here, whatever the layer above let through.
template <class F> inline void with_dtype(DType d, F&& f) {
  switch (d) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::I32: case DType::I64: case DType::U8: case DType::F16:
      fail(std::string("this kernel does not take ") + dtype_name(d));
  }
  fail("unknown dtype code " + std::to_string(static_cast<int>(d)));
}

// The same over every dtype with arithmetic (floats and integers; not float16).
template <class F> inline void with_numeric(DType d, F&& f) {
  switch (d) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I64: f(int64_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    case DType::F16: fail("float16 is storage only: this kernel does not take it");
  }
  fail("unknown dtype code " + std::to_string(static_cast<int>(d)));
}

// Every dtype, float16 as Half (fill, arange, cast, reading and writing numbers).
template <class F> inline void with_storable(DType d, F&& f) {
  if (d == DType::F16) {
    f(Half{});
    return;
  }
  with_numeric(d, std::forward<F>(f));
}

// By item size only: for kernels that move elements without looking at them (copies).
template <class F> inline void with_bits(DType d, F&& f) {
  switch (item_size(d)) {
    case 1: f(uint8_t{}); return;
    case 2: f(uint16_t{}); return;
    case 4: f(uint32_t{}); return;
    case 8: f(uint64_t{}); return;
  }
  fail("unknown item size");
}

}  // namespace gs
