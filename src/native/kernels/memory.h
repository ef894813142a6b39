// Buffer memory: 64-byte aligned (one cache line, one AVX-512 register) and counted, so leak
// tests can ask how many bytes the addon still holds.
#pragma once
#include <cstdint>

namespace gs {
// Zero-filled; throws std::bad_alloc on failure. bytes may be 0 (returns nullptr).
void* buffer_alloc(int64_t bytes);
void buffer_free(void* p, int64_t bytes);
int64_t bytes_live();
// Kernel working memory (GEMM packing): 64-byte aligned, not zeroed, not counted in bytes_live,
// large blocks shared with the buffers' cache of mappings. Free with the same byte count.
void* scratch_alloc(int64_t bytes);
void scratch_free(void* p, int64_t bytes);
}  // namespace gs
