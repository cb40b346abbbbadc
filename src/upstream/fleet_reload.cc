// Fleet::apply: a reload's new backend list applied to the running fleet (issue 16 "SIGHUP").
//
// Nothing here stops a request in flight: a removed backend only stops being chosen (its
// `configured` flag drops, so healthy() is false for every balancer and for find()); its
// exchanges finish on the connections they hold, and the fleet-wide in_flight count they
// release stays on the slot. Shards learn of new or moved targets from targets_version() at
// their next loop turn and close their idle connections to a slot whose generation moved.
//
// Slots are never reused under another name: the metrics thread and the shards read a slot's
// name without a lock, which is safe only because it never changes once published. So a fleet
// that has seen fleet_backends_max distinct names refuses a reload that needs one more; a
// restart starts the count again.
#include <algorithm>
#include <cstring>

#include "tokentap/upstream/backend.h"

namespace tokentap {
namespace {

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.addr_len == b.addr_len && std::memcmp(&a.addr, &b.addr, a.addr_len) == 0;
}

}  // namespace

bool Fleet::apply(std::span<const BackendConfig> wanted, std::uint64_t now_ms,
                  FleetChange* change, std::string* error) {
  TT_ASSERT(!wanted.empty());
  std::uint32_t fresh = 0;  // names never seen: each needs a new slot
  for (const BackendConfig& b : wanted) fresh += slot_of(b.name) == no_backend;
  if (size() + fresh > fleet_backends_max) {
    *error = "more than " + std::to_string(fleet_backends_max) +
             " distinct backend names since start; restart tokentap to use new names";
    return false;
  }
  const std::lock_guard<std::mutex> lock(targets_mu_);
  std::array<bool, fleet_backends_max> keep{};
  for (const BackendConfig& b : wanted) {
    std::uint32_t i = slot_of(b.name);
    if (i == no_backend) {
      i = size();
      spec_[i].name = b.name;  // before count_ publishes the slot
      count_.store(i + 1, std::memory_order_release);
    }
    keep[i] = true;
    const bool moved = set_target(i, b);
    const bool policy = set_policy(i, b);
    if (!configured(i)) {  // a new name, or one back after a removal
      enter_rotation(i, now_ms);
      change->added.push_back(b.name);
    } else if (moved || policy) {
      change->changed.push_back(b.name);
    }
  }
  for (std::uint32_t i = 0; i < size(); ++i) {
    if (keep[i] || !configured(i)) continue;
    state_[i].configured.store(false, std::memory_order_release);
    ++slots_[i].generation;  // shards close their idle connections to it
    change->removed.emplace_back(spec_[i].name);
  }
  recount();
  targets_version_.fetch_add(1, std::memory_order_release);
  return true;
}

bool Fleet::set_policy(std::uint32_t i, const BackendConfig& b) {
  const std::uint32_t w = std::clamp<std::uint32_t>(b.weight, 1, fleet_weight_max);
  const std::uint32_t mp = std::clamp<std::uint32_t>(b.max_parallel, 1, backend_max_parallel_max);
  const bool changed = spec_[i].weight.exchange(w, std::memory_order_relaxed) != w;
  return spec_[i].max_parallel.exchange(mp, std::memory_order_relaxed) != mp || changed;
}

bool Fleet::set_target(std::uint32_t i, const BackendConfig& b) {
  Slot& slot = slots_[i];
  if (same_endpoint(slot.target.endpoint, b.endpoint) && slot.target.host_header == b.host_header) {
    return false;
  }
  slot.target = BackendTarget{b.endpoint, b.host_header};
  ++slot.generation;
  return true;
}

// A backend (re)joining the rotation starts from a clean health record, optimistic as at
// start-up, with no installed models until its first /api/tags poll and a slow start.
void Fleet::enter_rotation(std::uint32_t i, std::uint64_t now_ms) {
  BackendState& b = state_[i];
  b.health_fails.store(0, std::memory_order_relaxed);
  b.health_passes.store(0, std::memory_order_relaxed);
  b.consecutive_5xx.store(0, std::memory_order_relaxed);
  b.ejected_until_ms.store(0, std::memory_order_relaxed);
  b.up_since_ms.store(std::max<std::uint64_t>(now_ms, 1), std::memory_order_relaxed);
  b.set_models({});
  b.up.store(true, std::memory_order_release);
  b.configured.store(true, std::memory_order_release);
}

}  // namespace tokentap
