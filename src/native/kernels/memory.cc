#include "kernels/memory.h"

#include <sys/mman.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gs {

static std::atomic<int64_t> g_live{0};
static std::atomic<int64_t> g_freed_since_trim{0};

// Buffers of this size or more get their own pages from the kernel, so the process's resident
// memory follows what the sessions hold instead of what the heap once held (glibc maps large
// blocks too, but raises its threshold as a program frees them).
constexpr int64_t kMapBytes = int64_t(256) << 10;

// Fresh pages cost a fault each on first touch, several times a memset of a resident page, and a
// training step allocates the sizes the last one freed. Freed mappings are therefore kept, by
// size class, up to this many bytes (GRADSERVE_ALLOC_CACHE_BYTES sets it), and given back when
// the process is idle, when a mapping fails, or when the bound is lowered.
constexpr int64_t kDefaultCacheBytes = int64_t(256) << 20;

// Smaller buffers live in the heap; glibc keeps freed heap memory mapped for reuse, so after
// every so many freed bytes the heap is trimmed.
constexpr int64_t kTrimEvery = int64_t(64) << 20;

// Mappings this large ask for transparent huge pages (where THP is in madvise mode, as on most
// distributions): a fresh 40 MB buffer then costs 20 page faults instead of 10,000, which at 1e7
// float32 elements was most of an elementwise op's time through the server.
constexpr size_t kHugeBytes = size_t(4) << 20;

namespace {

size_t padded(int64_t bytes) { return (static_cast<size_t>(bytes) + 63) & ~size_t(63); }
size_t page_rounded(int64_t bytes) { return (static_cast<size_t>(bytes) + 4095) & ~size_t(4095); }

// Four classes per doubling (1, 1.25, 1.5, 1.75 x 2^k): a buffer wastes under a quarter of its
// mapping, and arrays of nearby sizes (a last, smaller batch) share mappings. At 256 KiB and up
// the step is at least 64 KiB, a whole number of pages.
size_t class_size(int64_t bytes) {
  const size_t s = page_rounded(bytes);
  const size_t p = size_t(1) << (63 - __builtin_clzll(s));
  if (p == s) return s;
  const size_t step = p >> 2;
  return (s + step - 1) / step * step;
}

void* map_pages(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#if defined(MADV_HUGEPAGE)
  if (size >= kHugeBytes) madvise(p, size, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  return p;
}

// Freed mappings kept for reuse; buffers may be freed on the stream's worker thread.
struct MapCache {
  struct Bin {
    std::vector<void*> blocks;
    uint64_t last_use = 0;
  };
  std::mutex m;
  std::unordered_map<size_t, Bin> bins;
  int64_t bytes = 0;
  int64_t blocks = 0;
  int64_t limit = kDefaultCacheBytes;
  // What live buffers and the cache may hold together (GRADSERVE_MAX_TOTAL_BYTES): when live
  // memory grows towards it, the cache gives way, so caching never adds to the process's budget.
  int64_t budget = INT64_MAX;
  uint64_t clock = 0;
  int64_t hits = 0, misses = 0, trims = 0, trimmed_bytes = 0;
  // Large allocations so far, and their count at the last idle check.
  uint64_t epoch = 0, idle_mark = 0;

  void* take(size_t size) {
    std::lock_guard<std::mutex> g(m);
    epoch++;
    auto it = bins.find(size);
    if (it == bins.end() || it->second.blocks.empty()) {
      misses++;
      return nullptr;
    }
    void* p = it->second.blocks.back();
    it->second.blocks.pop_back();
    it->second.last_use = ++clock;
    bytes -= static_cast<int64_t>(size);
    blocks--;
    hits++;
    return p;
  }

  // Keeps a freed mapping, making room by unmapping the least recently used class's blocks;
  // false when it cannot be kept (larger than the bound), and the caller unmaps it.
  bool keep(void* p, size_t size) {
    std::vector<std::pair<void*, size_t>> evicted;
    bool kept = false;
    {
      std::lock_guard<std::mutex> g(m);
      const int64_t sz = static_cast<int64_t>(size);
      const int64_t live = g_live.load();
      if (sz <= limit && live + sz <= budget) {
        while ((bytes + sz > limit || live + bytes + sz > budget) && evict_one(size, evicted)) {
        }
        Bin& b = bins[size];
        b.blocks.push_back(p);
        b.last_use = ++clock;
        bytes += static_cast<int64_t>(size);
        blocks++;
        kept = true;
      }
    }
    // Unmapped outside the lock: munmap of a large block takes a while.
    for (auto& e : evicted) munmap(e.first, e.second);
    return kept;
  }

  // Under the lock: moves one block of the least recently used bin (another size first) out.
  bool evict_one(size_t incoming, std::vector<std::pair<void*, size_t>>& out) {
    auto victim = bins.end();
    for (auto it = bins.begin(); it != bins.end(); ++it) {
      if (it->second.blocks.empty()) continue;
      const bool better = victim == bins.end() || (victim->first == incoming && it->first != incoming) ||
                          ((it->first == incoming) == (victim->first == incoming) && it->second.last_use < victim->second.last_use);
      if (better) victim = it;
    }
    if (victim == bins.end()) return false;  // nothing cached (bytes is then 0)
    out.emplace_back(victim->second.blocks.back(), victim->first);
    victim->second.blocks.pop_back();
    bytes -= static_cast<int64_t>(victim->first);
    blocks--;
    trimmed_bytes += static_cast<int64_t>(victim->first);
    return true;
  }

  // Trims so that `live` bytes of buffers and the cache fit in the budget.
  void shrink_for(int64_t live) {
    int64_t target;
    {
      std::lock_guard<std::mutex> g(m);
      if (live + bytes <= budget) return;
      target = budget > live ? budget - live : 0;
    }
    trim_to(target);
  }

  int64_t trim_to(int64_t target) {
    std::vector<std::pair<void*, size_t>> evicted;
    int64_t released = 0;
    {
      std::lock_guard<std::mutex> g(m);
      const int64_t before = bytes;
      while (bytes > target && evict_one(0, evicted)) {
      }
      released = before - bytes;
      if (released > 0) trims++;
      if (bytes == 0) bins.clear();
    }
    for (auto& e : evicted) munmap(e.first, e.second);
    return released;
  }
};

MapCache& map_cache() {
  static MapCache* c = new MapCache();  // never destroyed: frees may run during exit
  return *c;
}

// A mapping of `size` bytes: from the cache, else fresh pages; when the system refuses those,
// the cache is given back and the mapping tried once more.
void* large_alloc(size_t size, bool* fresh) {
  MapCache& c = map_cache();
  void* p = c.take(size);
  *fresh = p == nullptr;
  if (p) return p;
  p = map_pages(size);
  if (!p && c.trim_to(0) > 0) p = map_pages(size);
  if (!p) throw std::bad_alloc();
  // Live memory grew: the cache shrinks to what the budget leaves beside it.
  c.shrink_for(g_live.load() + static_cast<int64_t>(size));
  return p;
}

void large_free(void* p, size_t size) {
  if (!map_cache().keep(p, size)) munmap(p, size);
}

// Small buffers (a scalar, a bias, a batch's labels) are most of a training step's allocations,
// each an aligned_alloc and a free: about a tenth of a 1000-op scalar chain went to glibc's
// memalign, free and consolidation. Freed ones are kept in power-of-two classes from 64 bytes up
// to kMapBytes, at most kSmallClassBytes of each class and kSmallCacheBytes in all, handed out
// again zeroed, and given back with the large cache (idle, or asked).
constexpr int kSmallClasses = 13;  // 64 B .. 256 KiB
constexpr int64_t kSmallClassBytes = int64_t(1) << 20;
constexpr int64_t kSmallCacheBytes = int64_t(4) << 20;

int small_class(size_t bytes) {
  const size_t s = bytes <= 64 ? 64 : bytes;
  return 63 - __builtin_clzll(s - 1) + 1 - 6;  // ceil(log2(s)) - 6
}

struct SmallCache {
  std::mutex m;
  std::vector<void*> free[kSmallClasses];
  int64_t bytes = 0;

  void* take(int c) {
    std::lock_guard<std::mutex> g(m);
    auto& f = free[c];
    if (f.empty()) return nullptr;
    void* p = f.back();
    f.pop_back();
    bytes -= int64_t(64) << c;
    return p;
  }
  bool keep(void* p, int c) {
    const int64_t size = int64_t(64) << c;
    std::lock_guard<std::mutex> g(m);
    auto& f = free[c];
    if (bytes + size > kSmallCacheBytes || static_cast<int64_t>(f.size() + 1) * size > std::max(kSmallClassBytes, size)) return false;
    f.push_back(p);
    bytes += size;
    return true;
  }
  void trim() {
    std::vector<void*> out;
    {
      std::lock_guard<std::mutex> g(m);
      for (auto& f : free) {
        out.insert(out.end(), f.begin(), f.end());
        f.clear();
      }
      bytes = 0;
    }
    for (void* p : out) std::free(p);
  }
};

SmallCache& small_cache() {
  static SmallCache* c = new SmallCache();  // never destroyed: frees may run during exit
  return *c;
}

void* small_alloc(int64_t bytes) {
  const int c = small_class(static_cast<size_t>(bytes));
  const size_t size = size_t(64) << c;
  void* p = small_cache().take(c);
  if (!p) {
    p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
  }
  std::memset(p, 0, padded(bytes));
  return p;
}

void small_free(void* p, int64_t bytes) {
  if (small_cache().keep(p, small_class(static_cast<size_t>(bytes)))) return;
  std::free(p);
#if defined(__GLIBC__)
  if (g_freed_since_trim.fetch_add(bytes) + bytes >= kTrimEvery) {
    g_freed_since_trim.store(0);
    malloc_trim(0);
  }
#endif
}

}  // namespace

void* buffer_alloc(int64_t bytes, bool* stale) {
  if (stale) *stale = false;
  if (bytes <= 0) return nullptr;
  void* p;
  if (bytes >= kMapBytes) {
    bool fresh;
    p = large_alloc(class_size(bytes), &fresh);
    // Fresh pages are zero; a reused mapping is zeroed where this buffer will use it, now or by
    // the caller that asked to know.
    if (!fresh && stale) *stale = true;
    else if (!fresh) std::memset(p, 0, static_cast<size_t>(bytes));
  } else {
    p = small_alloc(bytes);
  }
  g_live.fetch_add(bytes);
  return p;
}

void buffer_free(void* p, int64_t bytes) {
  if (!p) return;
  g_live.fetch_sub(bytes);
  if (bytes >= kMapBytes) {
    large_free(p, class_size(bytes));
    return;
  }
  small_free(p, bytes);
}

void* scratch_alloc(int64_t bytes) {
  const int64_t b = bytes > 0 ? bytes : 1;
  if (b < kMapBytes) {
    void* p = std::aligned_alloc(64, page_rounded(b));
    if (!p) throw std::bad_alloc();
    return p;
  }
  bool fresh;
  return large_alloc(class_size(b), &fresh);
}

void scratch_free(void* p, int64_t bytes) {
  if (!p) return;
  const int64_t b = bytes > 0 ? bytes : 1;
  if (b < kMapBytes) {
    std::free(p);
    return;
  }
  large_free(p, class_size(b));
}

int64_t bytes_live() { return g_live.load(); }

CacheStats cache_stats() {
  MapCache& c = map_cache();
  std::lock_guard<std::mutex> g(c.m);
  int64_t small;
  {
    SmallCache& sc = small_cache();
    std::lock_guard<std::mutex> gs(sc.m);
    small = sc.bytes;
  }
  return CacheStats{c.bytes, c.blocks, c.limit, c.budget == INT64_MAX ? -1 : c.budget, c.hits, c.misses, c.trims, c.trimmed_bytes, small};
}

int64_t cache_trim() {
  small_cache().trim();
  return map_cache().trim_to(0);
}

int64_t cache_trim_if_idle() {
  MapCache& c = map_cache();
  {
    std::lock_guard<std::mutex> g(c.m);
    const bool idle = c.epoch == c.idle_mark;
    c.idle_mark = c.epoch;
    if (!idle) return 0;
  }
  small_cache().trim();
  return c.trim_to(0);
}

void cache_set_limit(int64_t limit, int64_t budget) {
  MapCache& c = map_cache();
  {
    std::lock_guard<std::mutex> g(c.m);
    c.limit = limit < 0 ? 0 : limit;
    c.budget = budget < 0 ? 0 : budget;
  }
  c.trim_to(limit < 0 ? 0 : limit);
  c.shrink_for(g_live.load());
}

}  // namespace gs
