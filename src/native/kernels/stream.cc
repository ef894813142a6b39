#include "kernels/stream.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "kernels/memory.h"
#include "kernels/threads.h"

namespace gs {

// About 30 µs of simple element operations: below this a thread hop costs more than the work.
constexpr double kDefaultInlineLimit = 1 << 15;

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
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
    dropped.swap(q_);
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Stream::submit(Work w, std::initializer_list<const BlockRef*> reads,
                    std::initializer_list<const BlockRef*> writes) {
  if (!w.run) return;
  bool busy = false;
  for (const BlockRef* b : reads) busy = busy || (*b)->busy();
  for (const BlockRef* b : writes) busy = busy || (*b)->busy();
  if (!busy && w.cost < inline_limit_) {
    for (const BlockRef* b : reads)
      if (!(*b)->error.empty()) throw KernelError((*b)->error);
    SerialScope serial;
    w.run();
    return;
  }
  Task t;
  t.run = std::move(w.run);
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
    last_by_tag_[tag_] = t.seq;
    q_.push_back(std::move(t));
  }
  work_cv_.notify_one();
}

void Stream::loop() {
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lk(m_);
      work_cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
      if (stop_) return;
      t = std::move(q_.front());
      q_.pop_front();
    }
    std::string err;
    for (const BlockRef& r : t.reads)
      if (!r->error.empty()) {
        err = r->error;
        break;
      }
    if (err.empty()) {
      try {
        t.run();
      } catch (const std::bad_alloc&) {
        err = "native backend: out of memory in a queued kernel";
      } catch (const std::exception& e) {
        err = e.what();
      } catch (...) {
        err = "native backend: a queued kernel failed";
      }
    }
    if (!err.empty())
      for (const BlockRef& b : t.writes) b->error = err;
    t.run = nullptr;
    for (const BlockRef& b : t.uses) b->pending_.fetch_sub(1, std::memory_order_release);
    // Drop the references before announcing completion: a buffer freed while this call used it
    // is released now, so a flush that resolves sees the memory returned.
    t.reads.clear();
    t.writes.clear();
    t.uses.clear();
    bool fire;
    {
      std::lock_guard<std::mutex> g(m_);
      completed_ = t.seq;
      fire = completed_ >= wake_at_;
      if (fire) wake_at_ = INT64_MAX;
    }
    done_cv_.notify_all();
    if (fire) on_progress_();
  }
}

void Stream::wait(const Block& b) {
  if (!b.busy()) return;
  std::unique_lock<std::mutex> lk(m_);
  done_cv_.wait(lk, [&] { return !b.busy(); });
}

void Stream::wait_all() {
  std::unique_lock<std::mutex> lk(m_);
  const int64_t target = enqueued_;
  done_cv_.wait(lk, [&] { return completed_ >= target; });
}

int Stream::set_tag(int tag) {
  std::lock_guard<std::mutex> g(m_);
  int prev = tag_;
  tag_ = tag;
  return prev;
}

int64_t Stream::pending_seq(int tag) {
  std::lock_guard<std::mutex> g(m_);
  auto it = last_by_tag_.find(tag);
  if (it == last_by_tag_.end()) return 0;
  if (it->second <= completed_) {
    last_by_tag_.erase(it);
    return 0;
  }
  return it->second;
}

int64_t Stream::pending_seq_all() {
  std::lock_guard<std::mutex> g(m_);
  return enqueued_ > completed_ ? enqueued_ : 0;
}

bool Stream::request_wake(int64_t seq) {
  std::lock_guard<std::mutex> g(m_);
  if (completed_ >= seq) return true;
  wake_at_ = std::min(wake_at_, seq);
  return false;
}

int64_t Stream::completed() {
  std::lock_guard<std::mutex> g(m_);
  return completed_;
}

int64_t Stream::queued() {
  std::lock_guard<std::mutex> g(m_);
  return enqueued_ - completed_;
}

}  // namespace gs
