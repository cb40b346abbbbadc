// BodyWriter: response body bytes that tokentap writes itself instead of forwarding the
// upstream's bytes by reference. Two users:
//  - include_usage stripping: the body that reaches the client is the upstream's minus the usage
//    output tokentap asked for, re-framed as chunks (framing `chunked`);
//  - an HTTP/1.0 client behind a chunked response: it cannot parse chunks (RFC 9112 §7), so it
//    gets the de-chunked bytes and the end of the body is the connection's close (`raw`).
// Bytes are collected into one spare buffer and queued when flush() is called — once per
// upstream piece, so a streamed line still leaves at once — or when the buffer is full.
// Layout of a chunked piece: [size line, right-aligned in chunk_prefix_bytes][data][CRLF].
#pragma once

#include <cstddef>
#include <cstdint>

#include "tokentap/loop/buf_ring.h"
#include "tokentap/loop/send_queue.h"

namespace tokentap {

constexpr std::uint32_t chunk_prefix_bytes = 10;  // up to 8 hex digits + CRLF
constexpr std::uint32_t chunk_suffix_bytes = 2;   // CRLF after the data
static_assert(buf_bytes - chunk_prefix_bytes - chunk_suffix_bytes < 0xffffffffu,
              "a chunk's size fits the 8 hex digits of its prefix");

class BodyWriter {
 public:
  enum class Framing : std::uint8_t { chunked, raw };

  void set_framing(Framing f) { framing_ = f; }
  // Appends body bytes; a full buffer is queued on `out`. False when no spare buffer or segment
  // was free: the caller fails the connection (the response can no longer be completed).
  [[nodiscard]] bool append(BufRing& bufs, SegmentPool& segs, SendQueue& out, const char* data,
                            std::size_t len);
  // Queues what was collected (nothing if empty).
  [[nodiscard]] bool flush(BufRing& bufs, SegmentPool& segs, SendQueue& out);
  // Queues what was collected and, for chunked framing, the last chunk `0\r\n\r\n`.
  [[nodiscard]] bool finish(BufRing& bufs, SegmentPool& segs, SendQueue& out);
  // Teardown: gives the buffer back unsent.
  void release(BufRing& bufs);
  [[nodiscard]] bool holds_buffer() const { return buf_ >= 0; }

 private:
  [[nodiscard]] std::uint32_t prefix() const {
    return framing_ == Framing::chunked ? chunk_prefix_bytes : 0;
  }
  [[nodiscard]] std::uint32_t suffix() const {
    return framing_ == Framing::chunked ? chunk_suffix_bytes : 0;
  }

  std::int32_t buf_ = -1;  // spare buffer being filled, -1 when none
  std::uint32_t len_ = 0;  // data bytes in it
  Framing framing_ = Framing::chunked;
};

}  // namespace tokentap
