// Buffers are named by small integer handles that TypeScript picks (src/engine/native.ts), so
// that allocating one needs no JS object from the addon and can travel in a command buffer.
// The table is the only way from a handle to memory: an unknown, freed or out-of-range handle is
// an error, never a dangling read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common.h"
#include "kernels/stream.h"

namespace gs {

class HandleTable {
 public:
  // Handles are 1..kMaxHandles-1; native.ts reuses freed ones, so this bounds live buffers only.
  static constexpr int64_t kMaxHandles = int64_t(1) << 24;

  void put(int64_t h, BlockRef b) {
    if (h < 1 || h >= kMaxHandles) fail("handle " + std::to_string(h) + " is out of range");
    if (static_cast<size_t>(h) >= slots_.size()) slots_.resize(static_cast<size_t>(h) + 1 + slots_.size() / 2);
    if (slots_[h]) fail("handle " + std::to_string(h) + " is already in use");
    slots_[h] = std::move(b);
  }

  // The block of a live handle; `name` is the argument, for the error.
  const BlockRef& get(int64_t h, const char* name) const {
    if (h < 1 || static_cast<size_t>(h) >= slots_.size() || !slots_[h])
      fail(std::string("argument `") + name + "` was freed or is not a native storage");
    return slots_[h];
  }

  // Drops the owner's reference: memory goes once queued work using it has completed. Dropping
  // an empty handle is a no-op (native.ts frees a handle whose allocation may have failed).
  void drop(int64_t h) {
    if (h < 1 || h >= kMaxHandles) fail("handle " + std::to_string(h) + " is out of range");
    if (static_cast<size_t>(h) < slots_.size()) slots_[h].reset();
  }

  void clear() { slots_.clear(); }

 private:
  std::vector<BlockRef> slots_;
};

}  // namespace gs
