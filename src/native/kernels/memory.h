// Buffer memory: 64-byte aligned (one cache line, one AVX-512 register) and counted, so leak
// tests can ask how many bytes the addon still holds.
#pragma once
#include <cstdint>

namespace gs {
// Zero-filled; throws std::bad_alloc on failure. bytes may be 0 (returns nullptr).
void* buffer_alloc(int64_t bytes);
void buffer_free(void* p, int64_t bytes);
int64_t bytes_live();
}  // namespace gs
