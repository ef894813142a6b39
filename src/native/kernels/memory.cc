#include "kernels/memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gs {

static std::atomic<int64_t> g_live{0};
static std::atomic<int64_t> g_freed_since_trim{0};

// glibc keeps freed heap memory mapped for reuse; a server that held a large session and let it
// go should give that memory back, so after every so many freed bytes the heap is trimmed.
constexpr int64_t kTrimEvery = int64_t(64) << 20;

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
#if defined(__GLIBC__)
  if (g_freed_since_trim.fetch_add(bytes) + bytes >= kTrimEvery) {
    g_freed_since_trim.store(0);
    malloc_trim(0);
  }
#endif
}

int64_t bytes_live() { return g_live.load(); }

}  // namespace gs
