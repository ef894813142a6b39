#include "kernels/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <sched.h>

namespace gs {
namespace {

struct Pool {
  std::mutex submit;  // one job at a time, even if several JS threads call in
  std::mutex m;
  std::condition_variable wake, done;
  const std::function<void(int)>* job = nullptr;
  int ntasks = 0;
  std::atomic<int> next{0};
  // Written under m; atomic so that a thread about to sleep can first watch them change.
  std::atomic<int> pending{0};        // tasks not yet finished
  std::atomic<uint64_t> generation{0};
  int workers = 0;
  std::atomic<int> acked{0};  // workers done with this generation; a job ends only when all have acked
  std::exception_ptr error;

  void grab_and_run() {
    for (;;) {
      int t = next.fetch_add(1);
      if (t >= ntasks) return;
      try {
        (*job)(t);
      } catch (...) {
        std::lock_guard<std::mutex> g(m);
        if (!error) error = std::current_exception();
      }
      std::lock_guard<std::mutex> g(m);
      if (--pending == 0) done.notify_all();
    }
  }
};

thread_local bool t_in_pool = false;
Pool* g_pool = nullptr;  // never destroyed: workers are detached and must outlive exit handlers
std::mutex g_pool_init;
std::atomic<int> g_threads{0};

int default_threads() {
  if (const char* env = std::getenv("GRADSERVE_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, 64);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(std::min(hw, 64u));
}

// A product's phases (pack a panel of B, multiply, pack the next) are jobs microseconds apart.
// A worker asleep between them cost a futex wake and two context switches a job, and the caller
// as many waiting for its ack: a quarter of a 256x784x256 product on a 2-vCPU VM. Each side
// watches for the other this long before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(40);
// Then it keeps watching for this long, giving up its CPU at each look (sched_yield), before it
// sleeps. A worker that spins with pause alone holds a vCPU the JS thread may need (a longer pause
// spin made the MLP step slower); one that yields leaves it to any runnable thread and still
// sees the next job within a scheduler pass. On a 2-vCPU AMD EPYC (AVX2), a 256^3 float32
// product in a loop beside numpy: 0.58-0.77 of OpenBLAS with a 40 us spin, 0.81-0.94 with this.
constexpr auto kYieldSpin = std::chrono::microseconds(1000);

template <class Done>
void spin_until(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int polls = 1; !done(); polls++) {
    // The clock is read one poll in 64: each read costs more than a pause.
    if ((polls & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  const auto yield_until = std::chrono::steady_clock::now() + kYieldSpin;
  while (!done() && std::chrono::steady_clock::now() < yield_until) sched_yield();
}

// Waiting for every worker to ack keeps a slow worker of job g from grabbing tasks of job g+1
// with stale bookkeeping.
void worker_loop(Pool* p, uint64_t seen) {
  t_in_pool = true;
  for (;;) {
    spin_until([&] { return p->generation.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lk(p->m);
      p->wake.wait(lk, [&] { return p->generation != seen; });
      seen = p->generation;
    }
    p->grab_and_run();
    std::lock_guard<std::mutex> g(p->m);
    p->acked++;
    p->done.notify_all();
  }
}

Pool* pool() {
  std::lock_guard<std::mutex> g(g_pool_init);
  if (!g_pool) g_pool = new Pool();
  return g_pool;
}

// Called with p->submit held, so no job is running. Workers only grow: idle ones sleep.
void grow(Pool* p, int want) {
  std::lock_guard<std::mutex> g(p->m);
  while (p->workers < want) {
    std::thread(worker_loop, p, p->generation.load()).detach();
    p->workers++;
  }
}

}  // namespace

SerialScope::SerialScope() : prev_(t_in_pool) { t_in_pool = true; }
SerialScope::~SerialScope() { t_in_pool = prev_; }

int num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(std::max(1, std::min(n, 64))); }

void run_tasks(int ntasks, const std::function<void(int)>& fn) {
  int threads = num_threads();
  if (ntasks <= 1 || threads <= 1 || t_in_pool) {
    for (int t = 0; t < ntasks; t++) fn(t);
    return;
  }
  Pool* p = pool();
  std::lock_guard<std::mutex> one_job(p->submit);
  grow(p, threads - 1);
  int expected = 0;
  {
    std::lock_guard<std::mutex> g(p->m);
    p->job = &fn;
    p->ntasks = ntasks;
    p->next.store(0);
    p->pending = ntasks;
    p->error = nullptr;
    p->acked = 0;
    expected = p->workers;
    p->generation++;
  }
  p->wake.notify_all();
  t_in_pool = true;  // the caller works too; nested calls inside fn run serially
  p->grab_and_run();
  t_in_pool = false;
  spin_until([&] { return p->pending.load(std::memory_order_acquire) == 0 && p->acked.load(std::memory_order_acquire) == expected; });
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lk(p->m);
    p->done.wait(lk, [&] { return p->pending == 0 && p->acked == expected; });
    p->job = nullptr;
    err = p->error;
    p->error = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int64_t chunks = std::min<int64_t>(num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1 || t_in_pool) {
    fn(0, n);
    return;
  }
  run_tasks(static_cast<int>(chunks), [&](int t) {
    int64_t lo = n * t / chunks, hi = n * (t + 1) / chunks;
    if (lo < hi) fn(lo, hi);
  });
}

}  // namespace gs
