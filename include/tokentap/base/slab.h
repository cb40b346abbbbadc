// Slab: a fixed-capacity array of objects reserved once at start-up, handing out slot indices.
//
// Memory is reserved with mmap at start-up (no allocation in steady state, STYLE §4) but objects
// are constructed, and their pages committed by the kernel, only when a slot is first used, so a
// shard sized for 8192 connections costs resident memory only for the connections it has seen.
//
// The lowest free slot is handed out first, so live objects pack at the bottom of the slab and a
// burst (10,000 streams) leaves a free tail once it ends. trim() destroys the free objects at the
// top and gives their whole pages back to the kernel (MADV_DONTNEED), so resident memory returns
// to what the live objects need. A trimmed slot is constructed afresh when it is used again;
// callers free a slot only when no kernel operation refers to it any more, and valid() is false
// for a trimmed index, so a late completion can never reach a destroyed object.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "tokentap/base/assert.h"

namespace tokentap {

// The one "no slot" value of every slab (connections, upstream connections, metering state):
// a slot index of one slab is never compared with another slab's sentinel by mistake.
inline constexpr std::uint32_t slot_none = UINT32_MAX;

template <typename T>
class Slab {
 public:
  static constexpr std::uint32_t none = slot_none;

  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  ~Slab() {
    for (std::uint32_t i = 0; i < constructed_; ++i) items_[i].~T();
    if (items_ != nullptr) munmap(items_, bytes_);
  }

  [[nodiscard]] bool init(std::uint32_t capacity) {
    bytes_ = sizeof(T) * std::size_t{capacity};
    void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return false;
    items_ = static_cast<T*>(mem);
    capacity_ = capacity;
    free_bits_.assign((std::size_t{capacity} + bits_per_word - 1) / bits_per_word, 0);
    page_bytes_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return true;
  }

  // The lowest free slot index, or none when the slab is full (callers refuse and count).
  [[nodiscard]] std::uint32_t alloc() {
    std::uint32_t slot = lowest_free();
    if (slot != none) {
      free_bits_[slot / bits_per_word] &= ~bit(slot);
    } else if (constructed_ < capacity_) {
      slot = constructed_++;
      new (&items_[slot]) T();
      const std::size_t end = round_to_page(std::size_t{constructed_} * sizeof(T));
      if (end > committed_bytes_) committed_bytes_ = end;
    } else {
      return none;
    }
    ++used_;
    return slot;
  }

  void release(std::uint32_t slot) {
    TT_ASSERT(slot < constructed_);
    TT_ASSERT(used_ > 0);
    TT_DASSERT((free_bits_[slot / bits_per_word] & bit(slot)) == 0);
    --used_;
    free_bits_[slot / bits_per_word] |= bit(slot);
    if (slot / bits_per_word < first_free_word_) first_free_word_ = slot / bits_per_word;
  }

  // Destroys the free objects at the top of the slab and returns their pages to the kernel when
  // that frees at least min_bytes (fewer would cost a syscall per tick for nothing). Returns the
  // bytes given back.
  std::size_t trim(std::size_t min_bytes) {
    while (constructed_ > 0 && is_free(constructed_ - 1)) {
      const std::uint32_t slot = --constructed_;
      free_bits_[slot / bits_per_word] &= ~bit(slot);
      items_[slot].~T();
    }
    const std::size_t keep = round_to_page(std::size_t{constructed_} * sizeof(T));
    if (committed_bytes_ < keep + min_bytes || committed_bytes_ <= keep) return 0;
    const std::size_t give = committed_bytes_ - keep;
    // MADV_DONTNEED on private anonymous memory cannot fail for a mapped range; if it did, the
    // pages would merely stay resident.
    (void)madvise(reinterpret_cast<char*>(items_) + keep, give, MADV_DONTNEED);
    committed_bytes_ = keep;
    return give;
  }

  T& operator[](std::uint32_t slot) {
    TT_DASSERT(slot < constructed_);
    return items_[slot];
  }
  bool valid(std::uint32_t slot) const { return slot < constructed_; }
  std::uint32_t used() const { return used_; }
  std::uint32_t capacity() const { return capacity_; }
  std::uint32_t constructed() const { return constructed_; }
  // Bytes of the slab the kernel may hold resident: pages touched since the last trim.
  std::size_t committed_bytes() const { return committed_bytes_; }

 private:
  static constexpr std::uint32_t bits_per_word = 64;
  static std::uint64_t bit(std::uint32_t slot) {
    return std::uint64_t{1} << (slot % bits_per_word);
  }
  bool is_free(std::uint32_t slot) const {
    return (free_bits_[slot / bits_per_word] & bit(slot)) != 0;
  }
  std::size_t round_to_page(std::size_t bytes) const {
    return (bytes + page_bytes_ - 1) / page_bytes_ * page_bytes_;
  }

  // Words below first_free_word_ have no free bit, so the scan starts there; after a full scan
  // the hint moves to the end and stays until a release lowers it (amortised O(1) per alloc).
  std::uint32_t lowest_free() {
    const std::uint32_t words = (constructed_ + bits_per_word - 1) / bits_per_word;
    for (std::uint32_t w = first_free_word_; w < words; ++w) {
      if (free_bits_[w] != 0) {
        first_free_word_ = w;
        return w * bits_per_word + static_cast<std::uint32_t>(std::countr_zero(free_bits_[w]));
      }
    }
    first_free_word_ = words;
    return none;
  }

  T* items_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t page_bytes_ = 4096;
  std::size_t committed_bytes_ = 0;
  std::uint32_t capacity_ = 0;
  std::uint32_t constructed_ = 0;
  std::uint32_t used_ = 0;
  std::uint32_t first_free_word_ = 0;
  std::vector<std::uint64_t> free_bits_;  // bit set: slot < constructed_ and free
};

}  // namespace tokentap
