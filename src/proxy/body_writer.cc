// BodyWriter: response bytes tokentap composes (re-framed or de-chunked); see body_writer.h.
#include "tokentap/proxy/body_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace tokentap {

bool BodyWriter::append(BufRing& bufs, SegmentPool& segs, SendQueue& out, const char* data,
                        std::size_t len) {
  while (len > 0) {
    if (buf_ < 0) {
      buf_ = bufs.alloc_spare();
      if (buf_ < 0) return false;
      len_ = 0;
    }
    const std::uint32_t room = buf_bytes - prefix() - suffix() - len_;
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(len, room));
    std::memcpy(bufs.data(static_cast<std::uint16_t>(buf_)) + prefix() + len_, data, n);
    len_ += n;
    data += n;
    len -= n;
    if (len > 0 && !flush(bufs, segs, out)) return false;
  }
  return true;
}

bool BodyWriter::flush(BufRing& bufs, SegmentPool& segs, SendQueue& out) {
  if (buf_ < 0) return true;
  const auto id = static_cast<std::uint16_t>(buf_);
  buf_ = -1;
  if (len_ == 0) {
    bufs.unref(id);
    return true;
  }
  char* base = bufs.data(id);
  std::uint32_t start = 0;
  std::uint32_t total = len_;
  if (framing_ == Framing::chunked) {
    char line[chunk_prefix_bytes + 1];
    const int n = std::snprintf(line, sizeof(line), "%x\r\n", len_);
    start = chunk_prefix_bytes - static_cast<std::uint32_t>(n);
    std::memcpy(base + start, line, static_cast<std::size_t>(n));
    std::memcpy(base + chunk_prefix_bytes + len_, "\r\n", chunk_suffix_bytes);
    total = static_cast<std::uint32_t>(n) + len_ + chunk_suffix_bytes;
  }
  const bool ok = out.push(segs, bufs, id, start, total);
  bufs.unref(id);
  return ok;
}

bool BodyWriter::finish(BufRing& bufs, SegmentPool& segs, SendQueue& out) {
  if (!flush(bufs, segs, out)) return false;
  if (framing_ != Framing::chunked) return true;  // a raw body ends with the connection
  constexpr char last_chunk[] = "0\r\n\r\n";
  const int b = bufs.alloc_spare();
  if (b < 0) return false;
  const auto id = static_cast<std::uint16_t>(b);
  std::memcpy(bufs.data(id), last_chunk, sizeof(last_chunk) - 1);
  const bool ok = out.push(segs, bufs, id, 0, sizeof(last_chunk) - 1);
  bufs.unref(id);
  return ok;
}

void BodyWriter::release(BufRing& bufs) {
  if (buf_ >= 0) bufs.unref(static_cast<std::uint16_t>(buf_));
  buf_ = -1;
  len_ = 0;
}

}  // namespace tokentap
