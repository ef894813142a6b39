// Buffer memory: 64-byte aligned (one cache line, one AVX-512 register) and counted, so leak
// tests can ask how many bytes the addon still holds. Large buffers come from a caching
// allocator of memory mappings in size classes (memory.cc), bounded and trimmed when idle.
#pragma once
#include <cstdint>

namespace gs {
// Zero-filled; throws std::bad_alloc on failure. bytes may be 0 (returns nullptr). With `stale`,
// a large buffer served from a reused mapping is not zeroed and *stale says so: the caller zeroes
// it before anything reads it (Block does, unless a kernel overwrites all of it first).
void* buffer_alloc(int64_t bytes, bool* stale = nullptr);
void buffer_free(void* p, int64_t bytes);
int64_t bytes_live();
// Kernel working memory (GEMM packing): 64-byte aligned, not zeroed, not counted in bytes_live,
// large blocks shared with the buffers' cache of mappings. Free with the same byte count.
void* scratch_alloc(int64_t bytes);
void scratch_free(void* p, int64_t bytes);

// The cache of freed mappings, for /metrics and tests. Counters only grow.
struct CacheStats {
  int64_t cached_bytes;    // freed mappings kept for reuse
  int64_t cached_blocks;
  int64_t limit_bytes;     // most it keeps
  int64_t budget_bytes;    // most live buffers and the cache hold together (-1: unbounded)
  int64_t hits;            // large allocations served from the cache (no new pages)
  int64_t misses;          // large allocations that mapped fresh pages
  int64_t trims;           // times the cache was emptied (idle, pressure, or asked)
  int64_t trimmed_bytes;   // bytes given back to the system by those
  int64_t small_cached_bytes;  // freed buffers under 256 KiB kept in their free lists (at most 4 MiB)
};
CacheStats cache_stats();
// Returns every cached mapping to the system; answers the bytes released.
int64_t cache_trim();
// Trims when no large allocation happened since the previous call (a timer calls it); answers
// the bytes released.
int64_t cache_trim_if_idle();
// Sets the cache's bound and the budget of live buffers plus cache (bytes); trims to both.
void cache_set_limit(int64_t bytes, int64_t budget);
}  // namespace gs
