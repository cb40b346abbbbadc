// SendQueue and SegmentPool; see send_queue.h.
#include "tokentap/loop/send_queue.h"

#include <algorithm>
#include <cstring>

#include "tokentap/base/assert.h"

namespace tokentap {

void SegmentPool::init(std::uint32_t count) {
  segs_.assign(count, Segment{0, 0, 0, -1});
  free_.clear();
  free_.reserve(count);
  for (std::uint32_t i = count; i > 0; --i) free_.push_back(static_cast<std::int32_t>(i - 1));
}

std::int32_t SegmentPool::alloc(std::uint16_t buf, std::uint32_t off, std::uint32_t len) {
  if (free_.empty()) return -1;
  const std::int32_t id = free_.back();
  free_.pop_back();
  segs_[static_cast<std::size_t>(id)] = Segment{buf, off, len, -1};
  return id;
}

void SegmentPool::release(std::int32_t id) { free_.push_back(id); }

bool SendQueue::push(SegmentPool& pool, BufRing& bufs, std::uint16_t buf, std::uint32_t off,
                     std::uint32_t len) {
  TT_DASSERT(len > 0);
  if (tail_ >= 0) {
    // The next bytes of the same buffer (a response head forwarded in place, then its body):
    // one longer segment, so the send stays one SEND of one iovec. A send in flight holds its
    // own iovec copy and consume() counts bytes, so growing the tail is safe.
    Segment& t = pool.at(tail_);
    if (t.buf == buf && t.off + t.len == off) {
      t.len += len;
      bytes_ += len;
      return true;
    }
  }
  const std::int32_t id = pool.alloc(buf, off, len);
  if (id < 0) return false;
  bufs.ref(buf);
  if (tail_ < 0) {
    head_ = tail_ = id;
  } else {
    pool.at(tail_).next = id;
    tail_ = id;
  }
  bytes_ += len;
  return true;
}

bool SendQueue::copy_from(SegmentPool& pool, BufRing& bufs, SendQueue& src) {
  std::int32_t out = -1;   // spare buffer being filled
  std::uint32_t used = 0;  // bytes in it
  bool ok = true;
  for (std::int32_t id = src.head_; id >= 0 && ok; id = pool.at(id).next) {
    const Segment s = pool.at(id);
    for (std::uint32_t at = 0; at < s.len && ok;) {
      if (out < 0) {
        out = bufs.alloc_spare();
        used = 0;
        if (out < 0) {
          ok = false;
          break;
        }
      }
      const std::uint32_t n = std::min(s.len - at, buf_bytes - used);
      char* dst = bufs.data(static_cast<std::uint16_t>(out)) + used;
      std::memcpy(dst, bufs.data(s.buf) + s.off + at, n);
      at += n;
      used += n;
      if (used == buf_bytes) {
        ok = push(pool, bufs, static_cast<std::uint16_t>(out), 0, used);
        bufs.unref(static_cast<std::uint16_t>(out));
        out = -1;
      }
    }
  }
  if (out >= 0) {
    ok = ok && push(pool, bufs, static_cast<std::uint16_t>(out), 0, used);
    bufs.unref(static_cast<std::uint16_t>(out));
  }
  if (!ok) clear(pool, bufs);
  return ok;
}

std::uint32_t SendQueue::gather(SegmentPool& pool, BufRing& bufs, iovec* iov, std::uint32_t max) {
  std::uint32_t n = 0;
  for (std::int32_t id = head_; id >= 0 && n < max; id = pool.at(id).next) {
    const Segment& s = pool.at(id);
    iov[n].iov_base = bufs.data(s.buf) + s.off;
    iov[n].iov_len = s.len;
    ++n;
  }
  return n;
}

std::int32_t SendQueue::drop(SegmentPool& pool, BufRing& bufs, std::int32_t prev,
                              std::int32_t cur, std::uint64_t n) {
  while (n > 0) {
    TT_ASSERT(cur >= 0);
    Segment& s = pool.at(cur);
    if (n < s.len) {
      s.off += static_cast<std::uint32_t>(n);
      s.len -= static_cast<std::uint32_t>(n);
      break;
    }
    n -= s.len;
    const std::int32_t next = s.next;
    bufs.unref(s.buf);
    pool.release(cur);
    cur = next;
    if (prev >= 0) {
      pool.at(prev).next = cur;
    } else {
      head_ = cur;
    }
    if (cur < 0) tail_ = prev;
  }
  return cur;
}

void SendQueue::consume(SegmentPool& pool, BufRing& bufs, std::uint64_t n) {
  TT_ASSERT(n <= bytes_);
  bytes_ -= n;
  drop(pool, bufs, -1, head_, n);
}

bool SendQueue::push_front(SegmentPool& pool, BufRing& bufs, std::uint16_t buf,
                           std::uint32_t off, std::uint32_t len) {
  const std::int32_t id = pool.alloc(buf, off, len);
  if (id < 0) return false;
  bufs.ref(buf);
  pool.at(id).next = head_;
  head_ = id;
  if (tail_ < 0) tail_ = id;
  bytes_ += len;
  return true;
}

bool SendQueue::edit(SegmentPool& pool, BufRing& bufs, std::uint64_t at, std::uint64_t remove,
                     std::uint16_t buf, std::uint32_t off, std::uint32_t len) {
  if (at + remove > bytes_) return false;
  // Find the segment holding byte `at`; split it so that a segment boundary falls on `at`.
  std::int32_t prev = -1;
  std::int32_t cur = head_;
  std::uint64_t pos = 0;
  while (cur >= 0 && pos + pool.at(cur).len <= at) {
    pos += pool.at(cur).len;
    prev = cur;
    cur = pool.at(cur).next;
  }
  if (cur >= 0 && pos < at) {
    Segment& s = pool.at(cur);
    const auto keep = static_cast<std::uint32_t>(at - pos);
    const std::int32_t rest = pool.alloc(s.buf, s.off + keep, s.len - keep);
    if (rest < 0) return false;
    Segment& first = pool.at(cur);  // alloc does not move segments, but re-read for clarity
    bufs.ref(first.buf);
    pool.at(rest).next = first.next;
    first.len = keep;
    first.next = rest;
    if (tail_ == cur) tail_ = rest;
    prev = cur;
    cur = rest;
  }
  cur = drop(pool, bufs, prev, cur, remove);
  bytes_ -= remove;
  if (len == 0) return true;
  const std::int32_t ins = pool.alloc(buf, off, len);
  if (ins < 0) return false;
  bufs.ref(buf);
  pool.at(ins).next = cur;
  if (prev >= 0) pool.at(prev).next = ins; else head_ = ins;
  if (cur < 0) tail_ = ins;
  bytes_ += len;
  return true;
}

}  // namespace tokentap
