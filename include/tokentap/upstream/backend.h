// BackendState and Fleet: the fleet-wide, lock-free state of every backend (issue 16).
//
// One Fleet per server, built at start-up before any shard reads it, then shared by all shards
// and changed in place by a reload (SIGHUP, apply()). Per backend slot it holds its name, fixed
// for the slot's life (a removed backend's slot is kept, out of rotation, and revived when the
// same name comes back, so a name read by a shard or a scrape never changes under it), its
// policy (weight, max_parallel: atomics a reload may change), where it is (the Target: endpoint
// and Host, copied out under a mutex by a shard or the prober only when targets_version()
// moved, never per request) and one BackendState of atomics that any shard may read or write:
//  - in_flight: requests through tokentap on this backend, all shards together. The data path
//    touches it exactly twice per request (acquire when the attempt starts, release when it
//    ends), with relaxed read-modify-writes: it is a load hint, not a lock.
//  - health: the verdict `up`, the active-check hysteresis counters, the run of 5xx answers,
//    the ejection deadline and count, and up_since_ms for slow start. Read on every decision,
//    written only when something changes (a success resets the 5xx run only when it is non-zero),
//    so the line stays shared in every core's cache.
//  - the installed-model set (from GET /api/tags), an atomic bitset over ModelId.
// Layout: each group starts its own 128-byte pair of cache lines (the adjacent-line prefetcher
// fetches pairs), so the per-request writes to in_flight never invalidate the read-mostly health
// and model lines of the same backend, and no two backends share a line.
//
// Rules live in health_policy.h (pure); the report_* functions here load the atomics, ask the
// policy and store its answer. A passive transition (down on connect failure, ejection) must not
// remove the last healthy backend, which needs a look at the others: such transitions are tried
// under a fleet-wide try-flag that nobody ever waits for. A report that finds the flag taken
// changes nothing (another backend is changing state at that very moment); the next signal from
// the same backend tries again, since the 5xx run is not reset and a dead backend keeps refusing.
//
// Active checks of one backend must come from one owner at a time (the health poller); passive
// reports may come from any shard.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/base/assert.h"
#include "tokentap/base/config.h"
#include "tokentap/obs/backend_source.h"
#include "tokentap/obs/metrics.h"
#include "tokentap/obs/model_table.h"
#include "tokentap/upstream/health_policy.h"

namespace tokentap {

// Slots in a Fleet: as many as the configuration may name. Excluded sets are 64-bit masks
// (balancer.h), so this cannot grow past 64 without widening them.
constexpr std::uint32_t fleet_backends_max = backends_max;
static_assert(fleet_backends_max <= 64, "excluded_mask is one 64-bit word");
static_assert(fleet_backends_max <= backend_slots_max, "every slot has its metrics index");
constexpr std::uint32_t no_backend = 0xFFFF'FFFFu;
constexpr std::uint32_t fleet_weight_max = backend_weight_max;  // weights above are clamped
constexpr std::size_t backend_line_bytes = 128;      // a pair of 64-byte cache lines

// ModelIds tracked in a backend's model sets: 4096 bits = 512 bytes per set. Ids at or beyond
// this (a --max-models above 4094) and the reserved ids (unknown, overflow), which name no one
// model, count as present in every set: such a request goes to the least-loaded backend.
constexpr std::uint32_t models_tracked_max = 4096;
static_assert(models_tracked_max % 64 == 0 && models_tracked_max > model_first_named);

// A set of ModelIds with lock-free reads: one relaxed load per query. Replacing the whole set
// stores word by word, each word computed in full first, so a model present before and after
// never reads as absent; a reader may see a mix of old and new words for other ids, which only
// delays a routing change by one request. Issue 17 adds a second set (resident models).
class ModelSet {
 public:
  static constexpr std::uint32_t words = models_tracked_max / 64;

  [[nodiscard]] bool has(ModelId id) const {
    if (id < model_first_named || id >= models_tracked_max) return true;
    return (bits_[id / 64].load(std::memory_order_relaxed) >> (id % 64)) & 1u;
  }
  // Replaces the whole set (ids past models_tracked_max and reserved ids are ignored).
  void assign(std::span<const ModelId> ids);
  void add(ModelId id);
  void remove(ModelId id);
  [[nodiscard]] std::uint32_t count() const;  // tracked ids present

 private:
  std::array<std::atomic<std::uint64_t>, words> bits_{};
};

struct alignas(backend_line_bytes) BackendState {
  // ---- written per request, by every shard ----
  std::atomic<std::uint32_t> in_flight{0};

  // ---- health: read per decision, written on changes ----
  // In the configuration now: false for a slot never used or a backend a reload removed (its
  // exchanges in progress finish; nothing new is sent to it).
  alignas(backend_line_bytes) std::atomic<bool> configured{false};
  std::atomic<bool> up{true};  // optimistic until a check says no
  std::atomic<std::uint32_t> health_fails{0};    // consecutive failed active checks
  std::atomic<std::uint32_t> health_passes{0};   // consecutive passed active checks
  std::atomic<std::uint32_t> consecutive_5xx{0};  // run of 5xx answers, busy 503 excepted
  std::atomic<std::uint32_t> ejections{0};       // times ejected since start
  std::atomic<std::uint64_t> ejected_until_ms{0};  // out of rotation before this (monotonic ms)
  std::atomic<std::uint64_t> up_since_ms{0};     // last came up; 0 = up from the start (no ramp)

  // ---- installed models (GET /api/tags) ----
  alignas(backend_line_bytes) ModelSet models;

  [[nodiscard]] bool has_model(ModelId id) const { return models.has(id); }
  void set_models(std::span<const ModelId> ids) { models.assign(ids); }
  // Configured, up and not ejected at now_ms.
  [[nodiscard]] bool healthy(std::uint64_t now_ms) const {
    return configured.load(std::memory_order_acquire) && up.load(std::memory_order_acquire) &&
           now_ms >= ejected_until_ms.load(std::memory_order_relaxed);
  }
  // When the backend last (re)entered the rotation, for slow start: 0 = from the start.
  [[nodiscard]] std::uint64_t in_rotation_since_ms() const {
    const std::uint64_t up_ms = up_since_ms.load(std::memory_order_relaxed);
    const std::uint64_t ej_ms = ejected_until_ms.load(std::memory_order_relaxed);
    return up_ms > ej_ms ? up_ms : ej_ms;
  }
};
static_assert(alignof(BackendState) == backend_line_bytes);
static_assert(sizeof(BackendState) == 2 * backend_line_bytes + ModelSet::words * 8);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// What a report changed, for tokentap_backend_ejections_total{backend,reason} and one log line.
struct HealthEvent {
  HealthChange change = HealthChange::none;
  HealthReason reason = HealthReason::check;
  std::uint64_t until_ms = 0;  // ejected: back in rotation at this time
};

// Where a backend is: what a shard connects to and the Host it writes.
struct BackendTarget {
  Endpoint endpoint;
  std::string host_header;
};

// What a reload changed, by backend name, for its one log line.
struct FleetChange {
  std::vector<std::string> added;    // new names, or names back after a removal
  std::vector<std::string> removed;  // out of the configuration: no new request goes there
  std::vector<std::string> changed;  // same name, another URL, weight or max_parallel
};

class Fleet {
 public:
  explicit Fleet(HealthPolicy policy = {}) : policy_(policy) {}
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Start-up only, before any shard reads the fleet: a new configured slot, or no_backend when
  // the fleet is full or the name is empty or taken. weight and max_parallel are clamped to
  // their config ranges (1..backend_weight_max, 1..backend_max_parallel_max).
  [[nodiscard]] std::uint32_t add(std::string_view name, std::uint32_t weight,
                                  std::uint32_t max_parallel);
  [[nodiscard]] std::uint32_t add(const BackendConfig& b);

  // A reload (any one thread at a time, while shards run): makes the configured set exactly
  // `wanted` (non-empty, names unique). A name already in a slot keeps it (policy and target
  // updated in place; a new target bumps the slot's target generation so shards close their idle
  // connections to the old address); a removed name leaves the rotation, its slot kept; a new
  // name takes a free slot, or a removed name's slot comes back, with fresh health and a slow
  // start. Refused, with nothing changed, when more distinct names than fleet_backends_max
  // would be needed since start (*error says so). Shards see the new targets at their next loop
  // turn (targets_version()).
  [[nodiscard]] bool apply(std::span<const BackendConfig> wanted, std::uint64_t now_ms,
                           FleetChange* change, std::string* error);

  // Slots ever used (configured or removed); slot indexes are below this.
  [[nodiscard]] std::uint32_t size() const { return count_.load(std::memory_order_acquire); }
  // Backends in the configuration now.
  [[nodiscard]] std::uint32_t configured_count() const {
    return configured_count_.load(std::memory_order_acquire);
  }
  // More than one backend: requests are routed (one backend behaves exactly as one upstream).
  [[nodiscard]] bool routing() const { return configured_count() > 1; }
  // The one configured backend while !routing().
  [[nodiscard]] std::uint32_t sole() const { return sole_.load(std::memory_order_acquire); }
  [[nodiscard]] bool configured(std::uint32_t i) const {
    return state(i).configured.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::string_view name(std::uint32_t i) const { return spec(i).name; }
  [[nodiscard]] std::uint32_t weight(std::uint32_t i) const {
    return spec(i).weight.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t max_parallel(std::uint32_t i) const {
    return spec(i).max_parallel.load(std::memory_order_relaxed);
  }
  // The configured slot named `name` (X-Tokentap-Backend), or no_backend.
  [[nodiscard]] std::uint32_t find(std::string_view name) const;
  [[nodiscard]] const HealthPolicy& policy() const { return policy_; }

  // Moves on every change of any target; a reader copies the targets only when it moved.
  [[nodiscard]] std::uint64_t targets_version() const {
    return targets_version_.load(std::memory_order_acquire);
  }
  // Slot i's target and its generation (bumped when it changes or the slot leaves), copied.
  void copy_target(std::uint32_t i, BackendTarget* out, std::uint32_t* generation) const;

  [[nodiscard]] BackendState& at(std::uint32_t i) { return state(i); }
  [[nodiscard]] const BackendState& at(std::uint32_t i) const { return state(i); }

  // The data path's two touches per attempt.
  void acquire(std::uint32_t i) { state(i).in_flight.fetch_add(1, std::memory_order_relaxed); }
  void release(std::uint32_t i) {
    const std::uint32_t before = state(i).in_flight.fetch_sub(1, std::memory_order_relaxed);
    TT_ASSERT(before > 0);
  }
  [[nodiscard]] std::uint32_t in_flight(std::uint32_t i) const {
    return state(i).in_flight.load(std::memory_order_relaxed);
  }
  [[nodiscard]] bool healthy(std::uint32_t i, std::uint64_t now_ms) const {
    return state(i).healthy(now_ms);
  }
  // Healthy backends at now_ms, not counting `except`.
  [[nodiscard]] std::uint32_t healthy_count(std::uint64_t now_ms,
                                            std::uint32_t except = no_backend) const;

  // One active check result (the health poller of this backend).
  HealthEvent report_check(std::uint32_t i, bool passed, std::uint64_t now_ms);
  // A failed connect seen by any shard.
  HealthEvent report_connect_failure(std::uint32_t i, ConnectFailure f, std::uint64_t now_ms);
  // A response head from the backend (any shard); `busy`: Ollama's 503 busy (is_busy_answer).
  HealthEvent report_response(std::uint32_t i, int status, bool busy, std::uint64_t now_ms);

 private:
  struct Spec {
    std::string name;  // written once, before the slot is published by count_
    std::atomic<std::uint32_t> weight{1};
    std::atomic<std::uint32_t> max_parallel{1};
  };
  struct Slot {
    BackendTarget target;
    std::uint32_t generation = 0;
  };
  enum class Leave : std::uint8_t { down, eject };

  [[nodiscard]] BackendState& state(std::uint32_t i) {
    TT_DASSERT(i < size());
    return state_[i];
  }
  [[nodiscard]] const BackendState& state(std::uint32_t i) const {
    TT_DASSERT(i < size());
    return state_[i];
  }
  [[nodiscard]] const Spec& spec(std::uint32_t i) const {
    TT_DASSERT(i < size());
    return spec_[i];
  }
  HealthEvent try_leave(std::uint32_t i, Leave how, HealthReason why, std::uint64_t now_ms);
  // The slot that ever held `name`, configured or not, or no_backend.
  [[nodiscard]] std::uint32_t slot_of(std::string_view name) const;
  // Reload steps (apply); the caller holds targets_mu_.
  bool set_policy(std::uint32_t i, const BackendConfig& b);
  bool set_target(std::uint32_t i, const BackendConfig& b);
  void enter_rotation(std::uint32_t i, std::uint64_t now_ms);
  void recount();

  std::array<BackendState, fleet_backends_max> state_{};
  std::array<Spec, fleet_backends_max> spec_{};
  std::atomic<std::uint32_t> count_{0};
  std::atomic<std::uint32_t> configured_count_{0};
  std::atomic<std::uint32_t> sole_{no_backend};
  HealthPolicy policy_;
  // Taken (never waited for) around a passive transition: see the file comment.
  alignas(backend_line_bytes) std::atomic<bool> transition_busy_{false};
  // Targets: written by a reload, copied by shards when targets_version_ moved.
  mutable std::mutex targets_mu_;
  std::array<Slot, fleet_backends_max> slots_{};
  std::atomic<std::uint64_t> targets_version_{0};
};

// ---- What the metrics see (obs/backend_source.h, docs/metrics.md "Backends") ----------------

// The `reason` label of tokentap_backend_ejections_total: obs's EjectionReason has the order
// and the names of HealthReason (checked below), so the mapping is the identity.
[[nodiscard]] constexpr EjectionReason ejection_reason_of(HealthReason r) {
  return static_cast<EjectionReason>(static_cast<std::uint8_t>(r));
}
static_assert(ejection_reason_count == 4);
static_assert(ejection_reason_labels[0] == health_reason_name(HealthReason::check));
static_assert(ejection_reason_labels[1] == health_reason_name(HealthReason::connect_refused));
static_assert(ejection_reason_labels[2] == health_reason_name(HealthReason::connect_timeout));
static_assert(ejection_reason_labels[3] == health_reason_name(HealthReason::errors_5xx));
// Counts a health event that took a backend out of rotation in its
// tokentap_backend_ejections_total{reason}; other events count nothing. Any thread (relaxed).
inline void count_ejection(BackendCounters& counters, const HealthEvent& e) {
  if (e.change != HealthChange::went_down && e.change != HealthChange::ejected) return;
  counters.ejections[static_cast<std::size_t>(ejection_reason_of(e.reason))].fetch_add(
      1, std::memory_order_relaxed);
}
// The `reason` label of tokentap_retries_total for a failover (never called with none).
[[nodiscard]] constexpr RetryReason metrics_retry_reason(FailoverReason r) {
  switch (r) {
    case FailoverReason::busy: return RetryReason::busy;
    case FailoverReason::reset: return RetryReason::reset;
    case FailoverReason::connect:
    case FailoverReason::none: break;
  }
  return RetryReason::connect;
}

// For a BackendSource: the gauges of slots 0 .. min(fleet.size(), max) at now_ms (up = in
// rotation: up and not ejected; slots = max_parallel); a slot not configured now is a vacant
// entry (empty name). With one configured backend nothing is written (one upstream keeps the
// exposition it always had). Returns how many were written. Names point into the fleet, whose
// slot names never change.
std::size_t fill_backend_gauges(const Fleet& fleet, std::uint64_t now_ms, BackendGauge* out,
                                std::size_t max);

}  // namespace tokentap
