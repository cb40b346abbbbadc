// ModelTable: the process-wide, bounded set of `model` label values (metrics.md, "Labels").
//
// Every shard interns the request body's `model` string into a small dense ModelId, and keys its
// series by that id; the scraper turns ids back into names. Invariants:
//  - ids are dense: 0 = `unknown`, 1 = `__overflow__`, then 2 .. max_models + 1 in the order
//    names were first seen. Once given, an id never changes and its name never changes.
//  - At most max_models names, per process, whatever the number of shards. Past that, every new
//    name maps to `__overflow__`; names interned before keep their ids.
//  - Validation lives here: an empty name, one over model_name_bytes_max, invalid UTF-8, or one
//    with a control character (C0, DEL, C1) maps to `unknown`. So does the literal "unknown",
//    and the literal "__overflow__" maps to the overflow id, so no two ids render the same
//    label value.
//
// Concurrency: lock-free lookups, append-only inserts. The id index is an open-addressing hash
// (linear probing, load factor <= 1/2) of 64-bit entries `tag:32 | id:32`, read with acquire
// loads. A new name claims its empty index entry with one CAS (entry -> pending), then an id with
// a CAS on the count, copies its bytes into preallocated storage and publishes the entry with a
// release store. A lookup that meets a pending entry waits for that 256-byte copy to finish; it
// happens once per distinct name, so steady-state lookups never wait and never write.
// Storage is calloc'd at start-up (max_models * ~260 B, pages resident only when used).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokentap {

using ModelId = std::uint32_t;

constexpr ModelId model_unknown = 0;
constexpr ModelId model_overflow = 1;
constexpr ModelId model_first_named = 2;
constexpr std::size_t model_name_bytes_max = 256;
// Upper bound on --max-models so storage stays within ~270 MiB of address space.
constexpr std::uint32_t max_models_limit = 1u << 20;

inline constexpr std::string_view model_unknown_name = "unknown";
inline constexpr std::string_view model_overflow_name = "__overflow__";

// True when `name` may be a label value as is: 1..256 bytes of valid UTF-8 without controls.
[[nodiscard]] bool is_valid_model_name(std::string_view name);

class ModelTable {
 public:
  explicit ModelTable(std::uint32_t max_models);
  ~ModelTable();
  ModelTable(const ModelTable&) = delete;
  ModelTable& operator=(const ModelTable&) = delete;

  // The id of `name`, interning it if new and there is room. Safe from any thread.
  [[nodiscard]] ModelId intern(std::string_view name);

  // The label value of an id returned by intern() (on any thread that has seen the id through a
  // release/acquire chain, as the scraper does through a shard's series key). An id below
  // id_count() whose name is still being copied reads as "".
  [[nodiscard]] std::string_view name(ModelId id) const;

  // Ids handed out so far, reserved ones included: every valid id is < id_count().
  [[nodiscard]] std::uint32_t id_count() const;
  // Ids that can ever exist: max_models + 2. Scrape-side arrays indexed by id use this.
  [[nodiscard]] std::uint32_t id_capacity() const { return max_models_ + model_first_named; }
  [[nodiscard]] std::uint32_t max_models() const { return max_models_; }

 private:
  struct Slot;

  [[nodiscard]] ModelId insert_at(std::size_t entry, std::uint32_t tag, std::string_view name);
  [[nodiscard]] bool slot_equals(ModelId id, std::string_view name) const;

  std::uint32_t max_models_;
  std::size_t index_mask_;
  std::uint64_t* index_;  // index_mask_ + 1 entries, 0 = empty
  Slot* slots_;           // max_models_ slots, slot i holds id model_first_named + i
  alignas(64) std::uint32_t named_count_ = 0;  // accessed through std::atomic_ref
};

}  // namespace tokentap
