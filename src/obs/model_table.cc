// ModelTable: validation, hashing and the lock-free append-only intern table (see model_table.h).
#include "tokentap/obs/model_table.h"

#include <sched.h>

#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include "tokentap/base/assert.h"

namespace tokentap {

struct ModelTable::Slot {
  std::uint32_t len;  // 0 until published; accessed through std::atomic_ref
  char bytes[model_name_bytes_max];
};

namespace {

constexpr std::uint64_t entry_empty = 0;
constexpr std::uint64_t entry_pending = ~std::uint64_t{0};
// A lookup that meets a pending entry spins this many times, then yields the CPU so a preempted
// inserter can finish its copy.
constexpr int pending_spins_before_yield = 64;

std::atomic_ref<std::uint64_t> entry_ref(std::uint64_t* index, std::size_t i) {
  return std::atomic_ref<std::uint64_t>(index[i]);
}

// FNV-1a, then a final avalanche so the low bits (the probe start) depend on every byte.
std::uint64_t hash_name(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// Length of the UTF-8 sequence starting at s[i] if valid and not a control character, else 0.
std::size_t valid_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return (b0 < 0x20 || b0 == 0x7f) ? 0 : 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  std::uint32_t min_cp = 0;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2, cp = b0 & 0x1f, min_cp = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, cp = b0 & 0x0f, min_cp = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    return 0;  // continuation byte or 0xf8..0xff as a lead
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min_cp || cp > 0x10ffff) return 0;  // overlong or beyond Unicode
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;  // UTF-16 surrogate
  if (cp >= 0x80 && cp <= 0x9f) return 0;      // C1 control
  return len;
}

}  // namespace

bool is_valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > model_name_bytes_max) return false;
  for (std::size_t i = 0; i < name.size();) {
    const std::size_t n = valid_sequence(name, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

ModelTable::ModelTable(std::uint32_t max_models) : max_models_(max_models) {
  TT_ASSERT(max_models >= 1 && max_models <= max_models_limit);
  const std::size_t index_size = std::bit_ceil(std::size_t{max_models} * 2);
  index_mask_ = index_size - 1;
  // calloc: zero pages come from the kernel lazily, so a large --max-models costs address space,
  // not memory, until names arrive. uint64_t and Slot are implicit-lifetime types.
  index_ = static_cast<std::uint64_t*>(std::calloc(index_size, sizeof(std::uint64_t)));
  slots_ = static_cast<Slot*>(std::calloc(max_models, sizeof(Slot)));
  if (index_ == nullptr || slots_ == nullptr) throw std::bad_alloc();
}

ModelTable::~ModelTable() {
  std::free(index_);
  std::free(slots_);
}

std::uint32_t ModelTable::id_count() const {
  const auto count =
      std::atomic_ref<const std::uint32_t>(named_count_).load(std::memory_order_acquire);
  return model_first_named + (count < max_models_ ? count : max_models_);
}

std::string_view ModelTable::name(ModelId id) const {
  if (id == model_unknown) return model_unknown_name;
  if (id == model_overflow) return model_overflow_name;
  TT_ASSERT(id - model_first_named < max_models_);
  const Slot& slot = slots_[id - model_first_named];
  const std::uint32_t len =
      std::atomic_ref<const std::uint32_t>(slot.len).load(std::memory_order_acquire);
  // 0 while the inserter is still copying: only an id read from id_count() rather than from a
  // published series can be in that state, and it reads as "" (prom_text never emits such ids).
  return {slot.bytes, len};
}

bool ModelTable::slot_equals(ModelId id, std::string_view name) const {
  const Slot& slot = slots_[id - model_first_named];
  return slot.len == name.size() && std::memcmp(slot.bytes, name.data(), name.size()) == 0;
}

ModelId ModelTable::intern(std::string_view name) {
  if (!is_valid_model_name(name) || name == model_unknown_name) return model_unknown;
  if (name == model_overflow_name) return model_overflow;
  const std::uint64_t h = hash_name(name);
  const auto tag = static_cast<std::uint32_t>(h >> 32);
  std::size_t i = h & index_mask_;
  for (std::size_t probes = 0; probes <= index_mask_;) {
    std::uint64_t e = entry_ref(index_, i).load(std::memory_order_acquire);
    for (int spins = 0; e == entry_pending; ++spins) {
      if (spins >= pending_spins_before_yield) sched_yield();
      e = entry_ref(index_, i).load(std::memory_order_acquire);
    }
    if (e == entry_empty) {
      const std::uint32_t count =
          std::atomic_ref<std::uint32_t>(named_count_).load(std::memory_order_relaxed);
      if (count >= max_models_) return model_overflow;
      if (!entry_ref(index_, i).compare_exchange_strong(e, entry_pending,
                                                        std::memory_order_acquire)) {
        continue;  // another thread took this entry first: look at what it holds now
      }
      return insert_at(i, tag, name);
    }
    const auto id = static_cast<ModelId>(e);
    // The acquire load of the entry makes the slot's bytes, written before it, visible here.
    if (static_cast<std::uint32_t>(e >> 32) == tag && slot_equals(id, name)) return id;
    i = (i + 1) & index_mask_;
    ++probes;
  }
  return model_overflow;  // unreachable: the index is twice the cap
}

// Called owning index entry `entry` (pending). Claims an id, copies the name, publishes.
ModelId ModelTable::insert_at(std::size_t entry, std::uint32_t tag, std::string_view name) {
  auto count_ref = std::atomic_ref<std::uint32_t>(named_count_);
  std::uint32_t count = count_ref.load(std::memory_order_relaxed);
  do {
    if (count >= max_models_) {
      // Lost the race for the last id: give the entry back so waiters re-probe, and overflow.
      entry_ref(index_, entry).store(entry_empty, std::memory_order_release);
      return model_overflow;
    }
  } while (!count_ref.compare_exchange_weak(count, count + 1, std::memory_order_acq_rel));
  Slot& slot = slots_[count];
  std::memcpy(slot.bytes, name.data(), name.size());
  std::atomic_ref<std::uint32_t>(slot.len).store(static_cast<std::uint32_t>(name.size()),
                                                 std::memory_order_release);
  const ModelId id = model_first_named + count;
  entry_ref(index_, entry).store((std::uint64_t{tag} << 32) | id, std::memory_order_release);
  return id;
}

}  // namespace tokentap
