// SendQueue: bytes waiting to be sent to one peer, as a list of segments of shard buffers.
//
// A segment references a slice of a BufRing buffer (a received buffer forwarded as is, or a spare
// buffer the proxy wrote). Forwarding never copies payload: the received buffer itself is handed
// to sendmsg, and returns to the ring when the last segment that references it is sent.
// Segments live in a per-shard SegmentPool sized at start-up; queues link them by index.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "tokentap/loop/buf_ring.h"

namespace tokentap {

// A buffer is referenced by at most a few segments at once (the request part being forwarded,
// the pipelined remainder, a split for an edit), so four per buffer never run out.
constexpr std::uint32_t segments_per_buffer = 4;
constexpr std::uint32_t send_iov_max = 8;  // segments gathered into one sendmsg

struct Segment {
  std::uint16_t buf;
  std::uint32_t off;
  std::uint32_t len;
  std::int32_t next;
};

class SegmentPool {
 public:
  void init(std::uint32_t count);
  // -1 when exhausted; callers fail the connection (the pool is sized so this cannot happen
  // unless an invariant is broken, see segments_per_buffer).
  [[nodiscard]] std::int32_t alloc(std::uint16_t buf, std::uint32_t off, std::uint32_t len);
  void release(std::int32_t id);
  Segment& at(std::int32_t id) { return segs_[static_cast<std::size_t>(id)]; }
  std::uint32_t free_count() const { return static_cast<std::uint32_t>(free_.size()); }

 private:
  std::vector<Segment> segs_;
  std::vector<std::int32_t> free_;
};

class SendQueue {
 public:
  bool empty() const { return head_ < 0; }
  std::uint64_t bytes() const { return bytes_; }

  // Appends a slice of buffer `buf`, taking one reference on it. False if no segment was free.
  [[nodiscard]] bool push(SegmentPool& pool, BufRing& bufs, std::uint16_t buf, std::uint32_t off,
                          std::uint32_t len);
  // Puts a slice of buffer `buf` in front of everything queued (a head held back while its
  // body was inspected). False if no segment was free.
  [[nodiscard]] bool push_front(SegmentPool& pool, BufRing& bufs, std::uint16_t buf,
                                std::uint32_t off, std::uint32_t len);
  // Replaces `remove` bytes at byte offset `at` of the queue with a slice of buffer `buf`
  // (the body edit of include_usage injection). False if a segment was missing or the range
  // lies outside the queue; the queue is then unchanged or only split, never corrupted.
  [[nodiscard]] bool edit(SegmentPool& pool, BufRing& bufs, std::uint64_t at, std::uint64_t remove,
                          std::uint16_t buf, std::uint32_t off, std::uint32_t len);
  // Appends a copy of every byte queued in `src` to this queue, in spare buffers of its own
  // (src's buffers are not referenced, so received buffers go back to the ring as usual).
  // False when a spare buffer or segment ran out; this queue is then cleared.
  [[nodiscard]] bool copy_from(SegmentPool& pool, BufRing& bufs, SendQueue& src);
  // Fills iov with up to max leading segments; returns how many.
  std::uint32_t gather(SegmentPool& pool, BufRing& bufs, iovec* iov, std::uint32_t max);
  // Drops the first n bytes (sent or consumed), releasing finished segments and buffer refs.
  void consume(SegmentPool& pool, BufRing& bufs, std::uint64_t n);
  // Drops everything (connection teardown).
  void clear(SegmentPool& pool, BufRing& bufs) { consume(pool, bufs, bytes_); }

  std::int32_t head() const { return head_; }

 private:
  // Drops n bytes starting at segment `cur` (whose predecessor is `prev`, -1 for the head),
  // releasing whole segments; returns the segment now following `prev`.
  std::int32_t drop(SegmentPool& pool, BufRing& bufs, std::int32_t prev, std::int32_t cur,
                    std::uint64_t n);

  std::int32_t head_ = -1;
  std::int32_t tail_ = -1;
  std::uint64_t bytes_ = 0;
};

}  // namespace tokentap
