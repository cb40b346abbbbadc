// BufRing: the shard's buffers. Two kinds share one id space and one size:
//  - ring buffers (ids [0, ring_count)) are registered as a provided-buffer ring (kernel 5.19,
//    registered by hand because liburing 2.3 lacks io_uring_setup_buf_ring). Multishot recv picks
//    them; a buffer returns to the ring when the last segment referencing it has been sent.
//  - spare buffers (ids [ring_count, ring_count + spare_count)) are the proxy's own: rewritten
//    request heads, error responses. They come from a free list, never from the kernel.
// Each buffer carries a reference count so one received buffer can be split between the request
// being forwarded and the start of the next pipelined request.
//
// Invariant: a buffer is either owned by the kernel (in the ring / free list, refs == 0) or by
// the proxy (refs > 0). Returned ring buffers are published in one batch per loop turn (flush()).
// All memory is allocated once in init(); nothing grows afterwards. Spare buffers are handed
// out lowest id first, so after a burst the touched ones above the highest in use can be given
// back to the kernel in one madvise (trim_spares), and RSS returns to what the load needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokentap/loop/compat_uring.h"

namespace tokentap {

constexpr std::uint32_t buf_bytes = 16 * 1024;
constexpr std::uint32_t buf_ring_count = 1024;  // power of two (kernel requirement)
// Spare buffers hold rewritten request heads while their upstream connects, so there must be
// about one per concurrently starting request. Their pages are committed only when first used.
constexpr std::uint32_t buf_spare_count = 4096;
constexpr std::uint32_t buf_spare_reserve = 32;  // kept for error responses under exhaustion
constexpr std::uint16_t buf_group_id = 0;
static_assert((buf_ring_count & (buf_ring_count - 1)) == 0, "ring entries must be a power of 2");
static_assert(32768 + buf_spare_count <= 65535, "buffer ids are 16 bits, --buffers included");

// The ring buffer a multishot recv completion filled (valid when IORING_CQE_F_BUFFER is set).
[[nodiscard]] inline std::uint16_t buffer_id(std::uint32_t cqe_flags) {
  return static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
}

class BufRing {
 public:
  BufRing() = default;
  BufRing(const BufRing&) = delete;
  BufRing& operator=(const BufRing&) = delete;
  ~BufRing();

  [[nodiscard]] bool init(io_uring* ring, std::uint32_t ring_count, std::uint32_t spare_count,
                          std::string* error);

  char* data(std::uint16_t id) { return base_ + std::size_t{id} * buf_bytes; }
  bool is_ring(std::uint16_t id) const { return id < ring_count_; }

  // Called once per received ring buffer: the proxy now owns it with one reference.
  void on_received(std::uint16_t id);
  void ref(std::uint16_t id) { ++refs_[id]; }
  // Drops a reference; the last one returns the buffer to the ring or the spare list.
  void unref(std::uint16_t id);

  // A spare buffer with one reference, or -1 when none is free (callers treat it as overload).
  // Only `urgent` requests (error responses) may take the last buf_spare_reserve buffers, so
  // an overloaded shard can still tell a client why it refuses.
  [[nodiscard]] int alloc_spare(bool urgent = false);

  // Returns the pages of free spare buffers above the highest one in use to the kernel, when
  // that is at least min_bytes. Returns the bytes given back.
  std::size_t trim_spares(std::size_t min_bytes);

  // Publishes ring buffers returned since the last flush to the kernel.
  void flush();

  std::uint32_t ring_free() const { return ring_free_; }
  std::uint32_t ring_count() const { return ring_count_; }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t br_bytes_ = 0;
  char* base_ = nullptr;
  std::size_t base_bytes_ = 0;
  std::uint32_t ring_count_ = 0;
  std::uint32_t spare_count_ = 0;
  std::uint32_t ring_free_ = 0;  // buffers the kernel can pick from
  std::uint32_t pending_ = 0;    // returned but not yet published
  std::vector<std::uint8_t> refs_;
  // Bit i set: spare buffer ring_count_ + i is free. Words below spare_hint_ have no free bit.
  std::vector<std::uint64_t> spare_free_bits_;
  std::uint32_t spare_hint_ = 0;
  std::uint32_t spare_free_count_ = 0;
  std::uint32_t spare_touched_end_ = 0;  // spares [0, end) may be resident
  bool registered_ = false;
};

}  // namespace tokentap
