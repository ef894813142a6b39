#include "kernels/memory.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gs {

static std::atomic<int64_t> g_live{0};
static std::atomic<int64_t> g_freed_since_trim{0};

// Buffers of this size or more get their own pages from the kernel, and freeing one returns its
// memory, so the process's resident memory follows what the sessions hold instead of what the
// heap once held (glibc maps large blocks too, but raises its threshold as a program frees them).
constexpr int64_t kMapBytes = int64_t(256) << 10;

// Fresh pages cost a fault each on first touch, several times a memset of a resident page; a
// training step allocates the same sizes as the last one, so up to this many bytes of freed
// mappings are kept for reuse (by exact size) instead of being returned at once.
constexpr size_t kKeepMapped = size_t(32) << 20;

// Smaller buffers live in the heap; glibc keeps freed heap memory mapped for reuse, so after
// every so many freed bytes the heap is trimmed.
constexpr int64_t kTrimEvery = int64_t(64) << 20;

// Mappings this large ask for transparent huge pages (where THP is in madvise mode, as on most
// distributions): a fresh 40 MB buffer then costs 20 page faults instead of 10,000, which at 1e7
// float32 elements was most of an elementwise op's time through the server.
constexpr size_t kHugeBytes = size_t(4) << 20;

namespace {

void* map_fresh(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();  // fresh pages are zero
#if defined(MADV_HUGEPAGE)
  if (size >= kHugeBytes) madvise(p, size, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  return p;
}

size_t padded(int64_t bytes) { return (static_cast<size_t>(bytes) + 63) & ~size_t(63); }
size_t page_rounded(int64_t bytes) { return (static_cast<size_t>(bytes) + 4095) & ~size_t(4095); }

// Freed mappings kept for reuse; buffers may be freed on the stream's worker thread.
struct MapCache {
  std::mutex m;
  std::unordered_multimap<size_t, void*> by_size;
  size_t bytes = 0;

  void* take(size_t size) {
    std::lock_guard<std::mutex> g(m);
    auto it = by_size.find(size);
    if (it == by_size.end()) return nullptr;
    void* p = it->second;
    by_size.erase(it);
    bytes -= size;
    return p;
  }
  bool keep(void* p, size_t size) {
    std::lock_guard<std::mutex> g(m);
    if (bytes + size > kKeepMapped) return false;
    by_size.emplace(size, p);
    bytes += size;
    return true;
  }
};

MapCache& map_cache() {
  static MapCache* c = new MapCache();  // never destroyed: frees may run during exit
  return *c;
}

}  // namespace

void* buffer_alloc(int64_t bytes) {
  if (bytes <= 0) return nullptr;
  void* p;
  if (bytes >= kMapBytes) {
    const size_t size = page_rounded(bytes);
    p = map_cache().take(size);
    if (p) {
      std::memset(p, 0, size);
    } else {
      p = map_fresh(size);
    }
  } else {
    // aligned_alloc wants a multiple of the alignment.
    p = std::aligned_alloc(64, padded(bytes));
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, padded(bytes));
  }
  g_live.fetch_add(bytes);
  return p;
}

void buffer_free(void* p, int64_t bytes) {
  if (!p) return;
  g_live.fetch_sub(bytes);
  if (bytes >= kMapBytes) {
    const size_t size = page_rounded(bytes);
    if (!map_cache().keep(p, size)) munmap(p, size);
    return;
  }
  std::free(p);
#if defined(__GLIBC__)
  if (g_freed_since_trim.fetch_add(bytes) + bytes >= kTrimEvery) {
    g_freed_since_trim.store(0);
    malloc_trim(0);
  }
#endif
}

void* scratch_alloc(int64_t bytes) {
  const size_t size = page_rounded(bytes > 0 ? bytes : 1);
  if (static_cast<int64_t>(size) < kMapBytes) {
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void* p = map_cache().take(size);
  if (p) return p;
  return map_fresh(size);
}

void scratch_free(void* p, int64_t bytes) {
  if (!p) return;
  const size_t size = page_rounded(bytes > 0 ? bytes : 1);
  if (static_cast<int64_t>(size) < kMapBytes) {
    std::free(p);
    return;
  }
  if (!map_cache().keep(p, size)) munmap(p, size);
}

int64_t bytes_live() { return g_live.load(); }

}  // namespace gs
