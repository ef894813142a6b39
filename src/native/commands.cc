#include "commands.h"

#include <cmath>
#include <exception>
#include <new>

#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/indexed.h"
#include "kernels/ops.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "kernels/strided.h"

namespace gs {
namespace {

// Reads the fields of one command; any field out of its command's frame or range is an error.
class Fields {
 public:
  Fields(const double* p, size_t n, const HandleTable& table) : p_(p), n_(n), table_(table) {}

  double number(const char* name) {
    if (i_ >= n_) fail(std::string("command is missing `") + name + "`");
    return p_[i_++];
  }
  int64_t integer(const char* name, int64_t lo, int64_t hi) {
    const double d = number(name);
    if (!std::isfinite(d) || d != std::floor(d)) fail(std::string("argument `") + name + "` must be an integer");
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) fail(std::string("argument `") + name + "` is out of range");
    return static_cast<int64_t>(d);
  }
  bool flag(const char* name) { return integer(name, 0, 1) == 1; }
  template <class Op> Op op(int count) { return static_cast<Op>(integer("op", 0, count - 1)); }
  BlockRef block(const char* name) { return table_.get(integer(name, 1, HandleTable::kMaxHandles - 1), name); }

  View view(const char* name) {
    View v;
    v.rank = static_cast<int>(integer(name, 0, kMaxRank));
    v.offset = integer(name, -kMaxIndex, kMaxIndex);
    for (int d = 0; d < v.rank; d++) v.shape[d] = integer(name, 0, kMaxIndex);
    for (int d = 0; d < v.rank; d++) v.strides[d] = integer(name, -kMaxIndex, kMaxIndex);
    return v;
  }
  // A buffer read through a strided view: what broadcasting commands take for each operand.
  struct Viewed {
    BlockRef block;
    View view;
  };
  Viewed viewed(const char* block_name, const char* view_name) {
    BlockRef b = block(block_name);
    return {b, view(view_name)};
  }
  // A count-prefixed list of at most kMaxRank integers.
  int list(const char* name, int64_t* out, int64_t lo, int64_t hi) {
    const int len = static_cast<int>(integer(name, 0, kMaxRank));
    for (int j = 0; j < len; j++) out[j] = integer(name, lo, hi);
    return len;
  }
  void end() const {
    if (i_ != n_) fail("command has trailing fields");
  }

 private:
  const double* p_;
  size_t n_;
  size_t i_ = 0;
  const HandleTable& table_;
};

DType dtype_field(Fields& f) { return static_cast<DType>(f.integer("dtype", 0, kDTypeCount - 1)); }

// Submits a kernel the elementwise checks accepted as writing all of `o` (its length is the
// output's), so a reused buffer need not be zeroed first. The kernel was built with
// o->buf_to_overwrite(); a failed submission leaves `o` to be zeroed when next used.
void overwrite(Stream& s, const BlockRef& o, Work w, std::initializer_list<const BlockRef*> reads) {
  o->overwritten();
  try {
    s.submit(std::move(w), reads, {&o});
  } catch (...) {
    o->stale();
    throw;
  }
}

void run_one(Stream& s, HandleTable& table, Cmd cmd, Fields& f) {
  switch (cmd) {
    case Cmd::Alloc: {
      const int64_t h = f.integer("h", 1, HandleTable::kMaxHandles - 1);
      const DType dt = dtype_field(f);
      const int64_t length = f.integer("length", 0, kMaxIndex / 8);
      f.end();
      BlockRef b;
      try {
        b = std::make_shared<Block>(dt, length);
      } catch (const std::bad_alloc&) {
        fail("out of memory allocating " + std::to_string(length) + " elements");
      }
      table.put(h, std::move(b));
      return;
    }
    case Cmd::Free: {
      const int64_t h = f.integer("h", 1, HandleTable::kMaxHandles - 1);
      f.end();
      table.drop(h);
      return;
    }
    case Cmd::Fill: {
      BlockRef o = f.block("out");
      const double v = f.number("value");
      f.end();
      s.submit(fill(o->buf(), v), {}, {&o});
      return;
    }
    case Cmd::Arange: {
      BlockRef o = f.block("out");
      const double start = f.number("start"), step = f.number("step");
      f.end();
      s.submit(arange(o->buf(), start, step), {}, {&o});
      return;
    }
    case Cmd::Eye: {
      BlockRef o = f.block("out");
      const int64_t rows = f.integer("rows", 0, kMaxIndex), cols = f.integer("cols", 0, kMaxIndex);
      const int64_t k = f.integer("k", -kMaxIndex, kMaxIndex);
      f.end();
      s.submit(eye(o->buf(), rows, cols, k), {}, {&o});
      return;
    }
    case Cmd::Uniform:
    case Cmd::Normal: {
      BlockRef o = f.block("out");
      const double seed = f.number("seed"), counter = f.number("counter"), a = f.number("low"), b = f.number("high");
      f.end();
      s.submit(cmd == Cmd::Uniform ? random_uniform(o->buf(), seed, counter, a, b) : random_normal(o->buf(), seed, counter, a, b),
               {}, {&o});
      return;
    }
    case Cmd::Unary: {
      const Unary op = f.op<Unary>(kUnaryCount);
      BlockRef x = f.block("x"), o = f.block("out");
      f.end();
      overwrite(s, o, unary(op, x->buf(), o->buf_to_overwrite()), {&x});
      return;
    }
    case Cmd::Binary: {
      const Binary op = f.op<Binary>(kBinaryCount);
      const auto a = f.viewed("a", "av");
      const auto b = f.viewed("b", "bv");
      BlockRef o = f.block("out");
      f.end();
      overwrite(s, o, binary(op, a.block->buf(), a.view, b.block->buf(), b.view, o->buf_to_overwrite()), {&a.block, &b.block});
      return;
    }
    case Cmd::BinaryScalar: {
      const Binary op = f.op<Binary>(kBinaryCount);
      BlockRef x = f.block("x");
      const double scalar = f.number("scalar");
      const bool first = f.flag("scalarFirst");
      BlockRef o = f.block("out");
      f.end();
      overwrite(s, o, binary_scalar(op, x->buf(), scalar, first, o->buf_to_overwrite()), {&x});
      return;
    }
    case Cmd::Where: {
      const auto c = f.viewed("cond", "cv");
      const auto a = f.viewed("a", "av");
      const auto b = f.viewed("b", "bv");
      BlockRef o = f.block("out");
      f.end();
      s.submit(where(c.block->buf(), c.view, a.block->buf(), a.view, b.block->buf(), b.view, o->buf()), {&c.block, &a.block, &b.block}, {&o});
      return;
    }
    case Cmd::CopyStrided: {
      BlockRef x = f.block("x");
      const View xv = f.view("xv");
      BlockRef o = f.block("out");
      f.end();
      // Writes every element of out (view_plan checks out's length is the view's).
      overwrite(s, o, copy_strided(x->buf(), xv, o->buf_to_overwrite()), {&x});
      return;
    }
    case Cmd::ScatterAdd: {
      // Laid out as CopyStrided is (x, a view, out); here the view is out's.
      BlockRef x = f.block("x");
      const View ov = f.view("ov");
      BlockRef o = f.block("out");
      f.end();
      // out is read as well as written (it accumulates).
      s.submit(scatter_add_strided(x->buf(), o->buf(), ov), {&x, &o}, {&o});
      return;
    }
    case Cmd::Reduce: {
      const Reduce op = f.op<Reduce>(kReduceCount);
      BlockRef x = f.block("x");
      int64_t shape[kMaxRank], axes[kMaxRank];
      const int rank = f.list("shape", shape, 0, kMaxIndex);
      const int naxes = f.list("axes", axes, -kMaxIndex, kMaxIndex);
      BlockRef o = f.block("out");
      f.end();
      s.submit(reduce(op, x->buf(), shape, rank, axes, naxes, o->buf()), {&x}, {&o});
      return;
    }
    case Cmd::ArgReduce: {
      const bool is_max = f.flag("isMax");
      BlockRef x = f.block("x");
      int64_t shape[kMaxRank];
      const int rank = f.list("shape", shape, 0, kMaxIndex);
      const int64_t axis = f.integer("axis", -kMaxIndex, kMaxIndex);
      BlockRef o = f.block("out");
      f.end();
      s.submit(arg_reduce(is_max, x->buf(), shape, rank, axis, o->buf()), {&x}, {&o});
      return;
    }
    case Cmd::Gemm: {
      BlockRef a = f.block("a"), b = f.block("b"), o = f.block("out");
      const int64_t batch = f.integer("batch", 0, kMaxIndex), m = f.integer("m", 0, kMaxIndex);
      const int64_t n = f.integer("n", 0, kMaxIndex), k = f.integer("k", 0, kMaxIndex);
      const bool ta = f.flag("transA"), tb = f.flag("transB");
      const int64_t sa = f.integer("strideA", 0, kMaxIndex), sb = f.integer("strideB", 0, kMaxIndex);
      f.end();
      // Writes every element of out: its length is checked to be batch * m * n.
      overwrite(s, o, gemm(a->buf(), b->buf(), o->buf_to_overwrite(), batch, m, n, k, ta, tb, sa, sb), {&a, &b});
      return;
    }
    case Cmd::Cast: {
      BlockRef x = f.block("x"), o = f.block("out");
      f.end();
      overwrite(s, o, cast(x->buf(), o->buf_to_overwrite()), {&x});
      return;
    }
    case Cmd::WindowMax: {
      const auto x = f.viewed("x", "xv");
      const int64_t kdims = f.integer("kdims", 0, kMaxRank);
      BlockRef o = f.block("out"), id = f.block("idx");
      f.end();
      s.submit(window_max(x.block->buf(), x.view, static_cast<int>(kdims), o->buf(), id->buf()), {&x.block}, {&o, &id});
      return;
    }
    case Cmd::IndexTake: {
      BlockRef x = f.block("x"), id = f.block("idx"), o = f.block("out");
      f.end();
      overwrite(s, o, index_take(x->buf(), id->buf(), o->buf_to_overwrite()), {&x, &id});
      return;
    }
    case Cmd::IndexScatterAdd: {
      BlockRef x = f.block("x"), id = f.block("idx"), o = f.block("out");
      f.end();
      // out accumulates: it is read as well as written.
      s.submit(index_scatter_add(x->buf(), id->buf(), o->buf()), {&x, &id, &o}, {&o});
      return;
    }
    case Cmd::SetStream: {
      const int64_t tag = f.integer("stream", 0, INT32_MAX);
      f.end();
      s.set_tag(static_cast<int>(tag));
      return;
    }
    case Cmd::Count:
      break;
  }
  fail("unknown command");
}

}  // namespace

std::string run_commands(Stream& stream, HandleTable& table, const double* p, size_t n) {
  std::string first;
  size_t i = 0;
  while (i < n) {
    // The frame itself must be sound, or nothing after it can be trusted: stop there.
    if (n - i < 2) return first.empty() ? "native backend: truncated command" : first;
    const double op = p[i], len = p[i + 1];
    if (!(op >= 0 && op < static_cast<double>(Cmd::Count) && op == std::floor(op)) ||
        !(len >= 2 && len <= static_cast<double>(n - i) && len == std::floor(len))) {
      return first.empty() ? "native backend: malformed command frame" : first;
    }
    Fields f(p + i + 2, static_cast<size_t>(len) - 2, table);
    try {
      run_one(stream, table, static_cast<Cmd>(static_cast<int>(op)), f);
    } catch (const std::bad_alloc&) {
      if (first.empty()) first = "native backend: out of memory";
    } catch (const std::exception& e) {
      if (first.empty()) first = e.what();
    }
    i += static_cast<size_t>(len);
  }
  return first;
}

}  // namespace gs
