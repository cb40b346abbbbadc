// BufRing: provided-buffer ring registration and buffer ownership; see buf_ring.h.
#include "tokentap/loop/buf_ring.h"

#include <bit>

#include <sys/mman.h>

#include <cstring>
#include <fmt/format.h>

#include "tokentap/base/assert.h"

namespace tokentap {

BufRing::~BufRing() {
  if (registered_) io_uring_unregister_buf_ring(ring_, buf_group_id);
  if (br_ != nullptr) munmap(br_, br_bytes_);
  if (base_ != nullptr) munmap(base_, base_bytes_);
}

bool BufRing::init(io_uring* ring, std::uint32_t ring_count, std::uint32_t spare_count,
                   std::string* error) {
  TT_ASSERT((ring_count & (ring_count - 1)) == 0 && ring_count > 0);
  ring_ = ring;
  ring_count_ = ring_count;
  spare_count_ = spare_count;
  br_bytes_ = std::size_t{ring_count} * sizeof(io_uring_buf);
  void* br = mmap(nullptr, br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  base_bytes_ = std::size_t{ring_count + spare_count} * buf_bytes;
  // NORESERVE: spare buffers past the busiest moment so far are never touched, never committed.
  void* base = mmap(nullptr, base_bytes_, PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
  if (br == MAP_FAILED || base == MAP_FAILED) {
    *error = "cannot map buffer memory";
    return false;
  }
  br_ = static_cast<io_uring_buf_ring*>(br);
  base_ = static_cast<char*>(base);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = ring_count;
  reg.bgid = buf_group_id;
  const int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    *error = fmt::format("cannot register provided buffer ring: {} (kernel 5.19+ required)",
                         std::strerror(-rc));
    return false;
  }
  registered_ = true;
  io_uring_buf_ring_init(br_);
  const int mask = io_uring_buf_ring_mask(ring_count);
  for (std::uint32_t i = 0; i < ring_count; ++i) {
    io_uring_buf_ring_add(br_, data(static_cast<std::uint16_t>(i)), buf_bytes,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(ring_count));
  ring_free_ = ring_count;
  refs_.assign(ring_count + spare_count, 0);
  spare_free_bits_.assign((spare_count + 63) / 64, 0);
  for (std::uint32_t i = 0; i < spare_count; ++i) spare_free_bits_[i / 64] |= 1ull << (i % 64);
  spare_free_count_ = spare_count;
  return true;
}

void BufRing::on_received(std::uint16_t id) {
  TT_ASSERT(is_ring(id));
  TT_ASSERT(refs_[id] == 0);
  refs_[id] = 1;
  TT_ASSERT(ring_free_ > 0);
  --ring_free_;
}

void BufRing::unref(std::uint16_t id) {
  TT_ASSERT(refs_[id] > 0);
  if (--refs_[id] != 0) return;
  if (is_ring(id)) {
    io_uring_buf_ring_add(br_, data(id), buf_bytes, id, io_uring_buf_ring_mask(ring_count_),
                          static_cast<int>(pending_));
    ++pending_;
  } else {
    const std::uint32_t i = id - ring_count_;
    spare_free_bits_[i / 64] |= 1ull << (i % 64);
    if (i / 64 < spare_hint_) spare_hint_ = i / 64;
    ++spare_free_count_;
  }
}

int BufRing::alloc_spare(bool urgent) {
  if (spare_free_count_ == 0 || (!urgent && spare_free_count_ <= buf_spare_reserve)) return -1;
  std::uint32_t w = spare_hint_;
  while (spare_free_bits_[w] == 0) ++w;  // a free bit exists: spare_free_count_ > 0
  spare_hint_ = w;
  const auto bit = static_cast<std::uint32_t>(std::countr_zero(spare_free_bits_[w]));
  spare_free_bits_[w] &= ~(1ull << bit);
  --spare_free_count_;
  const std::uint32_t i = w * 64 + bit;
  if (i + 1 > spare_touched_end_) spare_touched_end_ = i + 1;
  const auto id = static_cast<std::uint16_t>(ring_count_ + i);
  TT_ASSERT(refs_[id] == 0);
  refs_[id] = 1;
  return id;
}

std::size_t BufRing::trim_spares(std::size_t min_bytes) {
  // The highest spare in use: everything touched above it is free.
  std::uint32_t end = spare_touched_end_;
  while (end > 0 && (spare_free_bits_[(end - 1) / 64] >> ((end - 1) % 64) & 1) != 0) --end;
  if (std::size_t{spare_touched_end_ - end} * buf_bytes < min_bytes) return 0;
  const std::size_t bytes = std::size_t{spare_touched_end_ - end} * buf_bytes;
  // On private anonymous memory MADV_DONTNEED only drops pages; the next use faults in zeroes.
  (void)madvise(data(static_cast<std::uint16_t>(ring_count_ + end)), bytes, MADV_DONTNEED);
  spare_touched_end_ = end;
  return bytes;
}

void BufRing::flush() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(pending_));
  ring_free_ += pending_;
  pending_ = 0;
}

}  // namespace tokentap
