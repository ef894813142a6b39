// A small fixed thread pool. Kernels split work into tasks that write disjoint outputs, so the
// result never depends on the thread count (random streams are counter-based for the same reason).
#pragma once
#include <cstdint>
#include <functional>

namespace gs {

int num_threads();
// Clamped to [1, 64]; later calls resize the pool lazily.
void set_num_threads(int n);

// Runs fn(t) for t in [0, ntasks) on the pool plus the calling thread; returns when all are done
// and rethrows the first exception. Runs serially when nested or when ntasks <= 1.
void run_tasks(int ntasks, const std::function<void(int)>& fn);

// Splits [0, n) into at most num_threads() contiguous ranges of at least `grain` items.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// While alive, kernels on this thread run serially (the addon runs small kernels inline on the JS
// thread this way, so they never wait for the pool while the stream's worker is using it).
class SerialScope {
 public:
  SerialScope();
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  bool prev_;
};

// Elementwise kernels go parallel above this many elements.
constexpr int64_t kGrain = int64_t(1) << 16;

}  // namespace gs
