// UsageQueue: one shard's bounded queue of finished requests for the ledger's writer thread.
//
// Single producer (the shard), single consumer (the writer): a ring of fixed 32-byte records with
// one index each side writes, so push is two loads, a copy and a release store — no lock, no
// system call, no allocation — and a full ring refuses (the caller counts a drop) instead of
// waiting. Memory is allocated once, at start. The producer caches the consumer's index and reads
// the shared one only when the cache says the ring is full, so the two sides touch each other's
// cache line about once per ring's worth of records.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "tokentap/base/assert.h"

namespace tokentap::ledger {

// One finished request, as the proxy knows it: ids, not names (the writer resolves names
// through LedgerLabels), so recording copies 32 bytes and never a string.
struct UsageRecord {
  std::uint64_t unix_s = 0;   // when it ended (wall clock, UTC)
  std::uint32_t key = 0;      // auth::KeyId (the anonymous id included)
  std::uint32_t model = 0;    // obs ModelId
  std::uint32_t backend = 0;  // index in Config::backends
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;
  std::uint32_t errors = 0;  // 1 when the request failed, else 0
};
static_assert(sizeof(UsageRecord) == 32, "two records per cache line");

class UsageQueue {
 public:
  // `capacity` records, a power of two.
  explicit UsageQueue(std::uint32_t capacity)
      : slots_(new UsageRecord[capacity]), mask_(capacity - 1) {
    TT_ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0);
  }

  // Producer only. False when the ring is full (nothing is written then).
  [[nodiscard]] bool push(const UsageRecord& r) {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = r;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer only. Calls f(record) for every record pushed so far, oldest first; returns how many.
  template <typename F>
  std::uint64_t drain(F&& f) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (std::uint64_t i = head; i != tail; ++i) f(slots_[i & mask_]);
    head_.store(tail, std::memory_order_release);
    return tail - head;
  }

  [[nodiscard]] std::uint32_t capacity() const { return static_cast<std::uint32_t>(mask_ + 1); }

 private:
  std::unique_ptr<UsageRecord[]> slots_;
  std::uint64_t mask_;
  alignas(64) std::atomic<std::uint64_t> head_{0};  // next record to read (consumer's)
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // next slot to write (producer's)
  std::uint64_t head_cache_ = 0;                    // producer's last view of head_
};

}  // namespace tokentap::ledger
