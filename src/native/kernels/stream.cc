#include "kernels/stream.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "kernels/memory.h"
#include "kernels/threads.h"

namespace gs {

const char* const kTimeLimitError = "native backend: the request's time budget ran out before this array was computed";

// Kernels cheaper than this (in the cost units of kernels/common.h: about an element of a simple
// op, 16 multiply-adds of a product) run at once on the calling thread when nothing they touch
// is queued: up to about 0.1 ms, which keeps the event loop responsive. A narrow product of a
// training batch (256x784 by 784x10, 2M multiply-adds) is below it: queued, it and every op after
// it in its program went through the worker, each a wake of it (7% of a softmax epoch).
constexpr double kDefaultInlineLimit = 1 << 18;

// A call handed to a sleeping worker costs a futex wake and, on a VM whose other vCPU is idle, an
// interrupt to it: tens of microseconds, a sixth of a 256^3 product. The worker watches for the
// next call this long before it sleeps, so calls that follow each other find it awake (a 256^3
// float32 product in a loop: 198 -> 214 GFLOP/s here). The caller does not spin while it waits
// for a result: it would take a core from the kernel's own threads (168 GFLOP/s).
constexpr auto kHandoffSpin = std::chrono::microseconds(50);

template <class Done>
bool spin_for(Done done) {
  const auto until = std::chrono::steady_clock::now() + kHandoffSpin;
  for (int polls = 1;; polls++) {
    if (done()) return true;
    if ((polls & 63) == 0 && std::chrono::steady_clock::now() >= until) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}
// How far behind the least-served active lane a lane that wakes from idle may start: it runs this
// much work before the others get their turn again (a witness session's 1024^3 product, ~10 ms,
// fits), and no more, so a session that wakes often cannot starve a busy one.
constexpr int64_t kIdleCredit = 50'000'000;  // ns

Block::Block(DType dtype, int64_t length)
    : data_(buffer_alloc(length * item_size(dtype), &stale_)), length_(length), dtype_(dtype) {}

void Block::clean() const {
  std::memset(data_, 0, static_cast<size_t>(bytes()));
  stale_ = false;
}

Block::~Block() { buffer_free(data_, bytes()); }

Stream::Stream(std::function<void()> on_progress)
    : on_progress_(std::move(on_progress)), inline_limit_(kDefaultInlineLimit), worker_([this] { loop(); }) {}

Stream::~Stream() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // The worker is gone: what is still queued is dropped (its references go with it).
  lanes_.clear();
  active_.clear();
}

Stream::Lane& Stream::lane(int tag) {
  Lane& l = lanes_[tag];
  l.tag = tag;
  return l;
}

void Stream::submit(Work w, std::initializer_list<const BlockRef*> reads,
                    std::initializer_list<const BlockRef*> writes) {
  if (!w.run && !(w.steps > 0 && w.step)) return;
  bool busy = false;
  for (const BlockRef* b : reads) busy = busy || (*b)->busy();
  for (const BlockRef* b : writes) busy = busy || (*b)->busy();
  if (!busy && w.cost < inline_limit_) {
    for (const BlockRef* b : reads)
      if (!(*b)->error.empty()) throw KernelError((*b)->error);
    SerialScope serial;
    if (w.steps > 0 && w.step) {
      for (int64_t s = 0; s < w.steps; s++) w.step(s);
    } else {
      w.run();
    }
    for (const BlockRef* b : writes) (*b)->unwritten_ = false;
    return;
  }
  Task t;
  t.work = std::move(w);
  auto add_use = [&](const BlockRef& b) {
    if (std::find(t.uses.begin(), t.uses.end(), b) == t.uses.end()) t.uses.push_back(b);
  };
  for (const BlockRef* b : reads) {
    t.reads.push_back(*b);
    add_use(*b);
  }
  for (const BlockRef* b : writes) {
    t.writes.push_back(*b);
    add_use(*b);
  }
  // Counted before the task is visible to the worker, so the block reads busy from now on.
  for (const BlockRef& b : t.uses) b->pending_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> g(m_);
    t.seq = ++enqueued_;
    for (const BlockRef& b : t.uses) b->users_.emplace_back(t.seq, tag_);
    Lane& l = lane(tag_);
    if (!l.active) {
      // Waking from idle: no credit for the time spent idle beyond kIdleCredit.
      l.served_ns = std::max(l.served_ns, vtime_ - kIdleCredit);
      l.active = true;
      active_.push_back(&l);
    }
    l.last_seq = t.seq;
    l.q.push_back(std::move(t));
    pending_++;
    submitted_.store(enqueued_, std::memory_order_release);
  }
  work_cv_.notify_one();
}

bool Stream::ready(const Task& t) const {
  // Every block's users run in queue order: t may start once it is the oldest user of each.
  for (const BlockRef& b : t.uses)
    if (b->users_.front().first != t.seq) return false;
  return true;
}

Stream::Lane* Stream::pick(Clock::time_point now) {
  // The order of precedence: a lane past its deadline (it only has calls to stop, which costs
  // nothing, so its flush resolves at once), then a lane a synchronous wait needs, then the lane
  // with the least worker time.
  Lane* best = nullptr;
  int best_rank = -1;
  int64_t least = INT64_MAX;
  for (Lane* l : active_) {
    least = std::min(least, l->served_ns);
    if (!ready(l->q.front())) continue;
    int rank = 0;
    if (l->deadline <= now) {
      rank = 2;
    } else if (!urgent_.empty()) {
      for (int tag : urgent_)
        if (l->tag == tag) rank = 1;
    }
    if (rank > best_rank || (rank == best_rank && l->served_ns < best->served_ns)) {
      best = l;
      best_rank = rank;
    }
  }
  if (least != INT64_MAX) vtime_ = std::max(vtime_, least);
  return best;
}

void Stream::loop() {
  std::unique_lock<std::mutex> lk(m_);
  for (;;) {
    Lane* l = nullptr;
    Clock::time_point start;
    if (!stop_ && active_.empty()) {
      const int64_t seen = submitted_.load(std::memory_order_acquire);
      lk.unlock();
      spin_for([&] { return submitted_.load(std::memory_order_acquire) != seen; });
      lk.lock();
    }
    work_cv_.wait(lk, [&] {
      if (stop_) return true;
      start = Clock::now();
      l = pick(start);
      return l != nullptr;
    });
    if (stop_) return;
    Task& t = l->q.front();
    const bool stopped = l->deadline <= start;
    const bool stepped = t.work.steps > 0 && t.work.step;
    const int64_t step = t.next_step;
    if (stopped) {
      l->timed_out = true;
      stats_.stopped++;
    } else if (stepped) {
      stats_.steps++;
    } else {
      stats_.runs++;
    }
    lk.unlock();

    // Only this thread touches t's work and its blocks' errors while t is pending (the JS thread
    // only appends to the lane, which leaves the front element where it is).
    std::string err;
    // Whether the call had written anything when it failed: it started and did not finish.
    bool partial = false;
    if (stopped) {
      err = kTimeLimitError;
      partial = stepped && step > 0;
    } else {
      if (step == 0)
        for (const BlockRef& r : t.reads)
          if (!r->error.empty()) {
            err = r->error;
            break;
          }
      if (err.empty()) {
        try {
          if (stepped) {
            t.work.step(step);
          } else {
            t.work.run();
          }
        } catch (const std::bad_alloc&) {
          err = "native backend: out of memory in a queued kernel";
        } catch (const std::exception& e) {
          err = e.what();
        } catch (...) {
          err = "native backend: a queued kernel failed";
        }
        partial = !err.empty();
      }
    }
    const int64_t used = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    const bool finished = !err.empty() || !stepped || step + 1 >= t.work.steps;
    if (!err.empty())
      for (const BlockRef& b : t.writes) {
        b->error = err;
        if (partial) {
          b->clobbered_ = true;
        } else if (b->unwritten_) {
          // A kernel that was to overwrite a reused buffer did not start: the buffer gets the
          // zeros it held (lazily) before, so it keeps its value (kept, not lost). Zeroed here, as
          // a later call on the block may already be queued to overwrite it.
          std::memset(b->data_, 0, static_cast<size_t>(b->bytes()));
          b->unwritten_ = false;
        }
      }
    else if (finished)
      for (const BlockRef& b : t.writes) b->unwritten_ = false;

    if (!finished) {
      lk.lock();
      l->served_ns += used;
      t.next_step = step + 1;
      continue;
    }
    // Done: the closures (and any scratch they keep) and the references go before completion is
    // announced, so a buffer freed while this call used it is released by the time a flush resolves.
    Work spent = std::move(t.work);
    std::vector<BlockRef> uses = std::move(t.uses);
    t.reads.clear();
    t.writes.clear();
    spent = Work{};
    lk.lock();
    l->served_ns += used;
    for (const BlockRef& b : uses) b->users_.pop_front();
    lk.unlock();
    for (const BlockRef& b : uses) b->pending_.fetch_sub(1, std::memory_order_release);
    uses.clear();
    lk.lock();
    const int64_t seq = t.seq;
    l->q.pop_front();
    l->done_seq = seq;
    pending_--;
    if (l->q.empty()) {
      l->active = false;
      active_.erase(std::find(active_.begin(), active_.end(), l));
      if (lanes_.size() > forget_at_) forget_idle();
    }
    bool fire = false;
    for (size_t i = 0; i < wakes_.size();) {
      if (done_locked(wakes_[i].first, wakes_[i].second)) {
        fire = true;
        wakes_[i] = wakes_.back();
        wakes_.pop_back();
      } else {
        i++;
      }
    }
    done_cv_.notify_all();
    if (fire) {
      lk.unlock();
      on_progress_();
      lk.lock();
    }
  }
}

void Stream::forget_idle() {
  // A lane is worth keeping while it has work, a deadline or a report to give, or served time
  // that a fresh lane would not start with.
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    const Lane& l = it->second;
    if (!l.active && !l.timed_out && l.deadline == Clock::time_point::max() && l.served_ns <= vtime_ - kIdleCredit) {
      it = lanes_.erase(it);
    } else {
      ++it;
    }
  }
  forget_at_ = std::max<size_t>(64, lanes_.size() * 2);
}

void Stream::wait(const Block& b) {
  if (!b.busy()) return;
  std::unique_lock<std::mutex> lk(m_);
  const size_t mark = urgent_.size();
  for (const auto& u : b.users_) urgent_.push_back(u.second);
  done_cv_.wait(lk, [&] { return !b.busy(); });
  urgent_.resize(mark);
}

void Stream::wait_all() {
  std::unique_lock<std::mutex> lk(m_);
  const int64_t target = enqueued_;
  done_cv_.wait(lk, [&] { return done_locked(-1, target); });
}

int Stream::set_tag(int tag) {
  std::lock_guard<std::mutex> g(m_);
  int prev = tag_;
  tag_ = tag;
  return prev;
}

int64_t Stream::pending_seq(int tag) {
  std::lock_guard<std::mutex> g(m_);
  auto it = lanes_.find(tag);
  if (it == lanes_.end() || it->second.last_seq <= it->second.done_seq) return 0;
  return it->second.last_seq;
}

int64_t Stream::pending_seq_all() {
  std::lock_guard<std::mutex> g(m_);
  return pending_ > 0 ? enqueued_ : 0;
}

bool Stream::done_locked(int tag, int64_t seq) const {
  if (tag >= 0) {
    auto it = lanes_.find(tag);
    // A lane is only forgotten once it has no pending call.
    return it == lanes_.end() || it->second.done_seq >= seq || it->second.last_seq <= it->second.done_seq;
  }
  for (const Lane* l : active_)
    if (l->q.front().seq <= seq) return false;
  return true;
}

bool Stream::done(int tag, int64_t seq) {
  std::lock_guard<std::mutex> g(m_);
  return done_locked(tag, seq);
}

bool Stream::request_wake(int tag, int64_t seq) {
  std::lock_guard<std::mutex> g(m_);
  if (done_locked(tag, seq)) return true;
  for (const auto& w : wakes_)
    if (w.first == tag && w.second == seq) return false;
  wakes_.emplace_back(tag, seq);
  return false;
}

int64_t Stream::queued() {
  std::lock_guard<std::mutex> g(m_);
  return pending_;
}

void Stream::set_deadline(int tag, double budget_ms) {
  std::lock_guard<std::mutex> g(m_);
  Lane& l = lane(tag);
  if (!(budget_ms >= 0)) {
    l.deadline = Clock::time_point::max();
    return;
  }
  // Budgets past a day are no budget (and keep the sum far from overflowing).
  const double capped = std::min(budget_ms, 86'400'000.0);
  l.deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(capped * 1000));
}

bool Stream::clear_deadline(int tag) {
  std::lock_guard<std::mutex> g(m_);
  auto it = lanes_.find(tag);
  if (it == lanes_.end()) return false;
  const bool t = it->second.timed_out;
  it->second.timed_out = false;
  it->second.deadline = Clock::time_point::max();
  return t;
}

Stream::Stats Stream::stats() {
  std::lock_guard<std::mutex> g(m_);
  return stats_;
}

}  // namespace gs
