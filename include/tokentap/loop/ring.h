// Ring: one shard's io_uring, created on the shard's own thread.
//
// Set-up flags (STYLE "Techniques" §1), each with the kernel that introduced it:
//  - SINGLE_ISSUER (6.0): only the owning thread submits, so the kernel skips submission locking.
//  - DEFER_TASKRUN (6.1): completions run only when we enter the kernel to wait, batching task
//    work at one point per loop turn instead of interrupting the thread.
//  - COOP_TASKRUN + TASKRUN_FLAG (5.19): no IPIs to signal task work.
//  - SUBMIT_ALL (5.18): one bad SQE does not stop the rest of a batch.
//  - CQSIZE: a completion queue larger than the submission queue, so a burst of multishot
//    completions never overflows it.
// The ring fd is registered (5.18) to save an fget per io_uring_enter. No SQPOLL: a polling
// kernel thread per shard would burn a core on an idle proxy.
//
// Required opcodes are probed at start-up; a missing one is reported by name and the shard
// refuses to start.
#pragma once

#include <cstdint>
#include <string>

#include "tokentap/loop/compat_uring.h"

namespace tokentap {

constexpr unsigned ring_sq_entries = 1024;
constexpr unsigned ring_cq_entries = 8192;
static_assert(ring_cq_entries >= 4 * ring_sq_entries, "multishot ops post many CQEs per SQE");

class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // Creates the ring and checks every opcode and feature the proxy relies on.
  [[nodiscard]] bool init(unsigned sq_entries, unsigned cq_entries, std::string* error);

  // An SQE to fill. When the submission queue is full, the pending batch is submitted first;
  // that is backpressure, never an error (SUBMIT_ALL makes the partial submit safe).
  [[nodiscard]] io_uring_sqe* sqe();
  // Makes room for n SQEs that must be submitted together (a linked chain): call before
  // taking the first SQE of the chain so no submit can cut it in two.
  void reserve(unsigned n);

  // Submits what is queued and waits for at least one completion or the timeout.
  // Returns the number submitted or a negative errno (-ETIME and -EINTR are normal).
  int submit_and_wait(unsigned timeout_ms);

  io_uring* raw() { return &ring_; }
  const char* features_text() const { return features_; }
  std::uint32_t sq_full_count() const { return sq_full_count_; }

 private:
  io_uring ring_{};
  bool live_ = false;
  std::uint32_t sq_full_count_ = 0;  // times the SQ filled up within one loop turn
  char features_[160] = {};
};

}  // namespace tokentap
