// The stream: one in-order queue of kernel calls, run by one worker thread, so that large kernels
// never block the JS thread. The rules that keep it correct under any interleaving:
//   - every kernel call is checked when made (the kernels return Work only for valid arguments);
//   - a call runs inline (at once, serially, on the calling thread) only when it is small AND none
//     of its buffers is used by queued work; otherwise it is queued, behind everything queued
//     before it. An inline call therefore shares no buffer with queued work, and queued calls keep
//     their program order, so every read sees the writes made before it in program order;
//   - a buffer's memory lives while any queued call uses it (Blocks are shared), so freeing one
//     with pending users only drops the owner's reference;
//   - synchronous reads and writes of a buffer wait for the queued calls that use it.
// Nothing here knows about N-API: the addon turns `on_progress` into a promise resolution.
#pragma once
#include <atomic>
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
#include <vector>

#include "kernels/common.h"

namespace gs {

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
  void overwritten() { stale_ = false; }
  void stale() { stale_ = true; }
  int64_t bytes() const { return length_ * item_size(dtype_); }
  bool busy() const { return pending_.load(std::memory_order_acquire) != 0; }
  // Set when a queued call writing this block failed (out of memory): reading it must fail too.
  // Only touched by the JS thread while the block is not busy, or by the worker while it is.
  std::string error;

 private:
  friend class Stream;
  void clean() const;
  // Set by the constructor only (declared before data_, whose initializer sets it), and cleared
  // on the JS thread before any kernel is queued on the block, so the worker never sees it change.
  mutable bool stale_ = false;
  void* data_;
  int64_t length_;
  DType dtype_;
  std::atomic<int> pending_{0};  // queued calls using this block
};
using BlockRef = std::shared_ptr<Block>;

class Stream {
 public:
  // on_progress runs on the worker thread after the call whose number was asked for by
  // request_wake has completed.
  explicit Stream(std::function<void()> on_progress);
  ~Stream();  // drops queued calls and joins the worker

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
  // True when call `seq` has completed; otherwise on_progress will run once it has.
  bool request_wake(int64_t seq);
  int64_t completed();
  int64_t queued();  // calls not yet completed

  // Calls whose cost is at least this go to the worker even when nothing is pending.
  double inline_limit() const { return inline_limit_; }
  void set_inline_limit(double c) { inline_limit_ = c; }

 private:
  struct Task {
    std::function<void()> run;
    std::vector<BlockRef> reads, writes, uses;  // uses: distinct blocks of reads and writes
    int64_t seq = 0;
  };
  void loop();

  std::function<void()> on_progress_;
  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Task> q_;
  int64_t enqueued_ = 0, completed_ = 0, wake_at_ = INT64_MAX;
  bool stop_ = false;
  int tag_ = 0;
  std::unordered_map<int, int64_t> last_by_tag_;
  double inline_limit_;
  std::thread worker_;
};

}  // namespace gs
