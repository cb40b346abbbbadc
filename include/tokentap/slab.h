// Slab: a fixed-capacity array of objects reserved once at start-up, handing out slot indices.
//
// Memory is reserved with mmap at start-up (no allocation in steady state, STYLE §4) but objects
// are constructed, and their pages committed by the kernel, only when a slot is first used, so a
// shard sized for 8192 connections costs resident memory only for the connections it has seen.
// Freed slots are reused most-recently-freed first to keep the touched set small and hot.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <new>
#include <vector>

#include "tokentap/assert.h"

namespace tokentap {

template <typename T>
class Slab {
 public:
  static constexpr std::uint32_t none = UINT32_MAX;

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
    free_.reserve(capacity);
    return true;
  }

  // A free slot index, or none when the slab is full (callers refuse and count).
  [[nodiscard]] std::uint32_t alloc() {
    std::uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else if (constructed_ < capacity_) {
      slot = constructed_++;
      new (&items_[slot]) T();
    } else {
      return none;
    }
    ++used_;
    return slot;
  }

  void release(std::uint32_t slot) {
    TT_ASSERT(slot < constructed_);
    TT_ASSERT(used_ > 0);
    --used_;
    free_.push_back(slot);
  }

  T& operator[](std::uint32_t slot) {
    TT_DASSERT(slot < constructed_);
    return items_[slot];
  }
  bool valid(std::uint32_t slot) const { return slot < constructed_; }
  std::uint32_t used() const { return used_; }
  std::uint32_t capacity() const { return capacity_; }
  std::uint32_t constructed() const { return constructed_; }

 private:
  T* items_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint32_t capacity_ = 0;
  std::uint32_t constructed_ = 0;
  std::uint32_t used_ = 0;
  std::vector<std::uint32_t> free_;
};

}  // namespace tokentap
