// The stream: the kernel calls of every session, run by one worker thread so that large kernels
// never block the JS thread, shared fairly between sessions. Calls carry a tag (the session's
// stream number, set_tag); each tag has its own queue (a lane), kept in call order. The rules that
// keep it correct under any interleaving:
//   - every kernel call is checked when made (the kernels return Work only for valid arguments);
//   - a call runs inline (at once, serially, on the calling thread) only when it is small AND none
//     of its buffers is used by queued work; otherwise it is queued at the back of its tag's lane.
//     An inline call therefore shares no buffer with queued work;
//   - a lane runs in call order: a call starts only after every earlier call of its tag is done;
//   - across lanes, a call starts only when no earlier-queued call of any tag that uses one of its
//     buffers (reading or writing) is still pending: every buffer's users run in the order they
//     were queued. Together these make every read see exactly the writes made before it in call
//     order, whatever order the lanes are served in. (Sessions never share buffers; the rule costs
//     nothing then and keeps any sharing correct.) The oldest pending call is always free to
//     start, so the worker never stalls;
//   - a buffer's memory lives while any queued call uses it (Blocks are shared), so freeing one
//     with pending users only drops the owner's reference;
//   - synchronous reads and writes of a buffer wait for the queued calls that use it (the lanes of
//     those calls go first meanwhile: the JS thread, and so every session, is stalled until then);
//   - a queued call that fails (out of memory), that reads a buffer whose writer failed, or that
//     its tag's deadline stops, marks every buffer it writes with the failure: reading one fails.
//     A call that failed after it had started writing also marks them clobbered; one stopped or
//     skipped before it ran leaves their bytes as they were (Block::clobbered).
// Fairness: the worker serves, among the lanes whose next call may start, the one that has had the
// least worker time. A lane waking from idle is credited with no more than kIdleCredit (50 ms) of
// worker time less than the least-served active lane, so a session that sends a little work now and
// then runs it at once, while sessions that keep the worker busy get even shares. Large kernels
// come in steps (Work::step: 2^28 multiply-adds of a product, 4M elements of a unary kernel, a few
// milliseconds), and the worker picks a lane again after every step, so another session's call
// waits for about one step of a large product, not the whole of it.
// Deadlines: set_deadline gives a tag a time budget. Once it has passed, the lane's pending calls
// are stopped between calls or steps without running (their outputs marked as failed, as above)
// and clear_deadline reports it, so the caller can answer "time limit" and drop what they wrote.
// Nothing here knows about N-API: the addon turns `on_progress` into a promise resolution.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/common.h"

namespace gs {

// What a buffer written by a call its deadline stopped reads as.
extern const char* const kTimeLimitError;

// A buffer's memory, shared by its JS owner and the queued calls that use it.
class Block {
 public:
  Block(DType dtype, int64_t length);  // reads as zeros; throws std::bad_alloc
  ~Block();
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // The memory, zeroed first if it still holds the bytes of a buffer freed before (a reused
  // mapping): every read and partial write goes through here, so no session sees another's data.
  Buf buf() const {
    if (stale_) clean();
    return Buf{data_, length_, dtype_};
  }
  // For a kernel that writes every element before anything reads one: the zeroing is skipped
  // once the caller, the kernel accepted, calls overwritten() (on the JS thread, before the
  // kernel is submitted; stale() again if the submission fails).
  Buf buf_to_overwrite() const { return Buf{data_, length_, dtype_}; }
  void overwritten() {
    unwritten_ = stale_;
    stale_ = false;
  }
  void stale() {
    stale_ = true;
    unwritten_ = false;
  }
  int64_t bytes() const { return length_ * item_size(dtype_); }
  bool busy() const { return pending_.load(std::memory_order_acquire) != 0; }
  // Set when a queued call writing this block failed (out of memory, or stopped by its deadline):
  // reading it must fail too. Only touched by the JS thread while the block is not busy, or by the
  // worker while it is (as is clobbered_).
  std::string error;
  // Whether a failed call had started writing the block when it failed: otherwise its bytes are
  // those the last completed write left (the failure only says a write did not happen).
  // A stale block whose overwriting kernel failed before it started is zeroed by the worker (it
  // keeps the value it had); one that failed after it started counts as clobbered.
  bool clobbered() const { return clobbered_ || unwritten_; }
  // The block is whole again: fully overwritten, or its failure found harmless by the caller.
  void clear_failure() {
    error.clear();
    clobbered_ = false;
    unwritten_ = false;
  }

 private:
  friend class Stream;
  void clean() const;
  // Set by the constructor only (declared before data_, whose initializer sets it), and cleared
  // on the JS thread before any kernel is queued on the block, so the worker never sees it change.
  mutable bool stale_ = false;
  // Set with overwritten() on a stale block until a kernel writing it completes (the worker's, as
  // clobbered_).
  bool unwritten_ = false;
  bool clobbered_ = false;
  void* data_;
  int64_t length_;
  DType dtype_;
  std::atomic<int> pending_{0};  // queued calls using this block
  // Their numbers and tags, oldest first (guarded by the stream's mutex). A vector read from a
  // head index, not a std::deque: a deque allocates a map and a 512-byte node when constructed,
  // two allocations for every buffer, where most buffers never meet a queued call.
  struct Users {
    std::vector<std::pair<int64_t, int>> v;
    size_t head = 0;
    void emplace_back(int64_t seq, int tag) { v.emplace_back(seq, tag); }
    const std::pair<int64_t, int>& front() const { return v[head]; }
    void pop_front() {
      if (++head == v.size()) {
        v.clear();
        head = 0;
      } else if (head >= 64 && head * 2 >= v.size()) {
        // A block that is never idle (always some queued user) keeps only its pending users.
        v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head));
        head = 0;
      }
    }
    auto begin() const { return v.begin() + static_cast<std::ptrdiff_t>(head); }
    auto end() const { return v.end(); }
  } users_;
};
using BlockRef = std::shared_ptr<Block>;

class Stream {
 public:
  // on_progress runs on the worker thread after a call that a request_wake waits for has completed.
  explicit Stream(std::function<void()> on_progress);
  ~Stream();  // finishes the step running, drops queued calls and joins the worker

  // Runs the work inline or queues it (see the rules above). Inline failures throw; a read of a
  // block whose writer failed throws that failure.
  void submit(Work w, std::initializer_list<const BlockRef*> reads, std::initializer_list<const BlockRef*> writes);
  // Blocks the caller until no queued call uses b.
  void wait(const Block& b);
  void wait_all();

  // Calls are tagged with the current tag (a session), so a flush can wait for its own only.
  int set_tag(int tag);
  // The number of the last call queued under tag that has not completed yet, or 0.
  int64_t pending_seq(int tag);
  // The number of the last call queued so far (0 when none is pending).
  int64_t pending_seq_all();
  // True when every call of `tag` (of any tag, when tag < 0) numbered up to seq has completed;
  // otherwise on_progress will run once they have.
  bool request_wake(int tag, int64_t seq);
  // The same test, without asking to be woken.
  bool done(int tag, int64_t seq);
  int64_t queued();  // calls not yet completed

  // From now on, calls of `tag` still pending once budget_ms has passed are stopped (a negative
  // budget clears the deadline). Stopping is reported by clear_deadline.
  void set_deadline(int tag, double budget_ms);
  // Clears the deadline of `tag` and says whether it stopped a call since it was set.
  bool clear_deadline(int tag);

  // Calls whose cost is at least this go to the worker even when nothing is pending.
  double inline_limit() const { return inline_limit_; }
  void set_inline_limit(double c) { inline_limit_ = c; }

  // Diagnostics (tests): steps and whole calls the worker has run, calls stopped by deadlines.
  struct Stats {
    int64_t runs = 0, steps = 0, stopped = 0;
  };
  Stats stats();

 private:
  using Clock = std::chrono::steady_clock;
  struct Task {
    Work work;
    std::vector<BlockRef> reads, writes, uses;  // uses: distinct blocks of reads and writes
    int64_t seq = 0;
    int64_t next_step = 0;  // steps already run
  };
  // One tag's queue and its share of the worker.
  struct Lane {
    int tag = 0;
    std::deque<Task> q;
    int64_t served_ns = 0;  // worker time used (comparable across lanes: see kIdleCredit)
    int64_t last_seq = 0;   // the last call queued
    int64_t done_seq = 0;   // the last call completed (calls of a lane complete in order)
    Clock::time_point deadline = Clock::time_point::max();
    bool timed_out = false;
    bool active = false;    // in active_ (q is not empty)
  };
  void loop();
  Lane& lane(int tag);        // m_ held
  Lane* pick(Clock::time_point now);  // m_ held: the lane to serve next, or null
  bool ready(const Task& t) const;    // m_ held
  bool done_locked(int tag, int64_t seq) const;
  void forget_idle();         // m_ held: drops lanes that carry nothing worth keeping

  std::function<void()> on_progress_;
  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::unordered_map<int, Lane> lanes_;  // node-based: a Lane's address is stable
  std::vector<Lane*> active_;            // lanes with queued calls
  std::vector<std::pair<int, int64_t>> wakes_;  // (tag, seq) that on_progress is awaited for
  std::vector<int> urgent_;  // tags whose calls a synchronous wait (the JS thread, stalled) needs
  int64_t enqueued_ = 0, pending_ = 0;
  // enqueued_, readable without m_: the worker watches it for a while before it sleeps
  // (kHandoffSpin in stream.cc).
  std::atomic<int64_t> submitted_{0};
  int64_t vtime_ = 0;  // the least worker time of an active lane, never decreasing
  size_t forget_at_ = 64;
  bool stop_ = false;
  int tag_ = 0;
  Stats stats_;
  double inline_limit_;
  std::thread worker_;
};

}  // namespace gs
