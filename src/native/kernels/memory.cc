#include "kernels/memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gs {

static std::atomic<int64_t> g_live{0};

void* buffer_alloc(int64_t bytes) {
  if (bytes <= 0) return nullptr;
  // aligned_alloc wants a multiple of the alignment.
  size_t padded = (static_cast<size_t>(bytes) + 63) & ~size_t(63);
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, padded);
  g_live.fetch_add(bytes);
  return p;
}

void buffer_free(void* p, int64_t bytes) {
  if (!p) return;
  std::free(p);
  g_live.fetch_sub(bytes);
}

int64_t bytes_live() { return g_live.load(); }

}  // namespace gs
