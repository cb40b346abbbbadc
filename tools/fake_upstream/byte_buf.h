// ByteBuf: a growable byte buffer with a read cursor, used for socket input, socket output and
// render scratch space in the fake upstream.
//
// Why not std::string: reads go straight into the spare tail (no zero-fill on resize), consumed
// bytes are dropped by moving a cursor, and the storage is kept across requests so a connection
// in steady state does not allocate. Capacity only grows (to the next power of two); the owner
// decides the limits.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace tokentap::fake {

class ByteBuf {
 public:
  [[nodiscard]] std::string_view view() const { return {data_.get() + begin_, end_ - begin_}; }
  [[nodiscard]] const char* data() const { return data_.get() + begin_; }
  [[nodiscard]] std::size_t size() const { return end_ - begin_; }
  [[nodiscard]] bool empty() const { return end_ == begin_; }
  [[nodiscard]] std::size_t capacity() const { return cap_; }

  // Returns a pointer to at least `n` writable bytes after the data; commit() what was written.
  [[nodiscard]] char* reserve_tail(std::size_t n) {
    if (cap_ - end_ >= n) return data_.get() + end_;
    if (begin_ > 0 && cap_ - size() >= n && size() <= cap_ / 2) {
      std::memmove(data_.get(), data_.get() + begin_, size());
      end_ -= begin_;
      begin_ = 0;
      return data_.get() + end_;
    }
    grow(size() + n);
    return data_.get() + end_;
  }
  [[nodiscard]] std::size_t tail_room() const { return cap_ - end_; }
  void commit(std::size_t n) { end_ += n; }

  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Drops bytes from the end (used to undo a partial render).
  void truncate(std::size_t new_size) { end_ = begin_ + new_size; }

  void append(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(reserve_tail(s.size()), s.data(), s.size());
    end_ += s.size();
  }
  void append(char c) {
    *reserve_tail(1) = c;
    ++end_;
  }
  void append_u64(std::uint64_t v) {
    char* p = reserve_tail(20);
    end_ += static_cast<std::size_t>(std::to_chars(p, p + 20, v).ptr - p);
  }
  void append_i64(std::int64_t v) {
    char* p = reserve_tail(21);
    end_ += static_cast<std::size_t>(std::to_chars(p, p + 21, v).ptr - p);
  }
  // Lowercase hex without padding, as Go writes chunk sizes.
  void append_hex(std::uint64_t v) {
    char* p = reserve_tail(16);
    end_ += static_cast<std::size_t>(std::to_chars(p, p + 16, v, 16).ptr - p);
  }

 private:
  void grow(std::size_t need) {
    std::size_t cap = cap_ == 0 ? initial_bytes : cap_;
    while (cap < need) cap *= 2;
    auto fresh = std::make_unique<char[]>(cap);
    if (size() > 0) std::memcpy(fresh.get(), data_.get() + begin_, size());
    end_ = size();
    begin_ = 0;
    data_ = std::move(fresh);
    cap_ = cap;
  }

  static constexpr std::size_t initial_bytes = 4096;

  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// FNV-1a 64: the checksum the fake reports for uploaded bodies (cheap, streamable, no tables).
constexpr std::uint64_t fnv1a64_init = 14695981039346656037ull;

[[nodiscard]] inline std::uint64_t fnv1a64(std::uint64_t h, std::string_view bytes) {
  constexpr std::uint64_t prime = 1099511628211ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= prime;
  }
  return h;
}

}  // namespace tokentap::fake
