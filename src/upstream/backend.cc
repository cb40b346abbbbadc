// Fleet and ModelSet: the shared backend state and how reports change it (see backend.h).
#include "tokentap/upstream/backend.h"

#include <algorithm>
#include <bit>

namespace tokentap {

// ---- ModelSet ------------------------------------------------------------------------------

void ModelSet::assign(std::span<const ModelId> ids) {
  std::array<std::uint64_t, words> next{};
  for (const ModelId id : ids) {
    if (id < model_first_named || id >= models_tracked_max) continue;
    next[id / 64] |= std::uint64_t{1} << (id % 64);
  }
  for (std::uint32_t w = 0; w < words; ++w) {
    // Unchanged words are not stored: the lines stay shared in the readers' caches.
    if (bits_[w].load(std::memory_order_relaxed) != next[w]) {
      bits_[w].store(next[w], std::memory_order_relaxed);
    }
  }
}

void ModelSet::add(ModelId id) {
  if (id < model_first_named || id >= models_tracked_max) return;
  bits_[id / 64].fetch_or(std::uint64_t{1} << (id % 64), std::memory_order_relaxed);
}

void ModelSet::remove(ModelId id) {
  if (id < model_first_named || id >= models_tracked_max) return;
  bits_[id / 64].fetch_and(~(std::uint64_t{1} << (id % 64)), std::memory_order_relaxed);
}

std::uint32_t ModelSet::count() const {
  std::uint32_t n = 0;
  for (const auto& w : bits_) n += std::popcount(w.load(std::memory_order_relaxed));
  return n;
}

// ---- Fleet ---------------------------------------------------------------------------------

std::uint32_t Fleet::add(std::string_view name, std::uint32_t weight,
                         std::uint32_t max_parallel) {
  const std::uint32_t i = size();
  if (i >= fleet_backends_max || name.empty() || slot_of(name) != no_backend) return no_backend;
  spec_[i].name.assign(name);
  spec_[i].weight.store(std::clamp<std::uint32_t>(weight, 1, fleet_weight_max),
                        std::memory_order_relaxed);
  spec_[i].max_parallel.store(std::clamp<std::uint32_t>(max_parallel, 1, backend_max_parallel_max),
                              std::memory_order_relaxed);
  state_[i].configured.store(true, std::memory_order_relaxed);
  count_.store(i + 1, std::memory_order_release);
  recount();
  return i;
}

std::uint32_t Fleet::add(const BackendConfig& b) {
  const std::uint32_t i = add(b.name, b.weight, b.max_parallel);
  if (i == no_backend) return i;
  const std::lock_guard<std::mutex> lock(targets_mu_);
  slots_[i].target = BackendTarget{b.endpoint, b.host_header};
  targets_version_.fetch_add(1, std::memory_order_release);
  return i;
}

std::uint32_t Fleet::slot_of(std::string_view name) const {
  const std::uint32_t n = size();
  for (std::uint32_t i = 0; i < n; ++i) {
    if (spec_[i].name == name) return i;
  }
  return no_backend;
}

std::uint32_t Fleet::find(std::string_view name) const {
  const std::uint32_t i = slot_of(name);
  return i != no_backend && configured(i) ? i : no_backend;
}

void Fleet::copy_target(std::uint32_t i, BackendTarget* out, std::uint32_t* generation) const {
  TT_ASSERT(i < size());
  const std::lock_guard<std::mutex> lock(targets_mu_);
  *out = slots_[i].target;
  *generation = slots_[i].generation;
}

void Fleet::recount() {
  std::uint32_t n = 0;
  std::uint32_t last = no_backend;
  for (std::uint32_t i = 0; i < size(); ++i) {
    if (!state_[i].configured.load(std::memory_order_relaxed)) continue;
    ++n;
    last = i;
  }
  sole_.store(n == 1 ? last : no_backend, std::memory_order_release);
  configured_count_.store(n, std::memory_order_release);
}

std::uint32_t Fleet::healthy_count(std::uint64_t now_ms, std::uint32_t except) const {
  std::uint32_t n = 0;
  const std::uint32_t slots = size();
  for (std::uint32_t i = 0; i < slots; ++i) n += i != except && state_[i].healthy(now_ms);
  return n;
}

HealthEvent Fleet::report_check(std::uint32_t i, bool passed, std::uint64_t now_ms) {
  BackendState& b = state(i);
  const HealthCounts now{b.up.load(std::memory_order_acquire),
                         b.health_fails.load(std::memory_order_relaxed),
                         b.health_passes.load(std::memory_order_relaxed)};
  const CheckVerdict v = policy_.on_check(now, passed);
  if (v.next.fails != now.fails) b.health_fails.store(v.next.fails, std::memory_order_relaxed);
  if (v.next.passes != now.passes) {
    b.health_passes.store(v.next.passes, std::memory_order_relaxed);
  }
  if (v.change == HealthChange::went_up) {
    b.consecutive_5xx.store(0, std::memory_order_relaxed);
    b.up_since_ms.store(std::max<std::uint64_t>(now_ms, 1), std::memory_order_relaxed);
    b.up.store(true, std::memory_order_release);  // publishes up_since_ms with it
  } else if (v.change == HealthChange::went_down) {
    b.up.store(false, std::memory_order_release);
  }
  return {v.change, HealthReason::check, 0};
}

HealthEvent Fleet::report_connect_failure(std::uint32_t i, ConnectFailure f,
                                          std::uint64_t now_ms) {
  // Cheap checks first: most failures hit a backend that is already out, or are `other`.
  if (!policy_.marks_down(f) || !state(i).healthy(now_ms)) return {};
  return try_leave(i, Leave::down, reason_of(f), now_ms);
}

HealthEvent Fleet::report_response(std::uint32_t i, int status, bool busy,
                                   std::uint64_t now_ms) {
  BackendState& b = state(i);
  if (policy_.resets_run(status, busy)) {
    // The common case: one relaxed load, no store, the health line stays shared.
    if (b.consecutive_5xx.load(std::memory_order_relaxed) != 0) {
      b.consecutive_5xx.store(0, std::memory_order_relaxed);
    }
    return {};
  }
  if (!policy_.counts_as_error(status, busy)) return {};
  const std::uint32_t run = b.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!policy_.ejects_after(run)) return {};
  return try_leave(i, Leave::eject, HealthReason::errors_5xx, now_ms);
}

HealthEvent Fleet::try_leave(std::uint32_t i, Leave how, HealthReason why,
                             std::uint64_t now_ms) {
  if (transition_busy_.exchange(true, std::memory_order_acquire)) return {};
  HealthEvent ev{};
  BackendState& b = state(i);
  if (b.healthy(now_ms) && policy_.may_leave(healthy_count(now_ms, i))) {
    ev.reason = why;
    if (how == Leave::eject) {
      const std::uint32_t n = b.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
      ev.change = HealthChange::ejected;
      ev.until_ms = now_ms + policy_.ejection_duration_ms(n);
      b.consecutive_5xx.store(0, std::memory_order_relaxed);
      b.ejected_until_ms.store(ev.until_ms, std::memory_order_release);
    } else {
      ev.change = HealthChange::went_down;
      b.health_passes.store(0, std::memory_order_relaxed);
      b.health_fails.store(policy_.fails_down, std::memory_order_relaxed);
      b.up.store(false, std::memory_order_release);
    }
  }
  transition_busy_.store(false, std::memory_order_release);
  return ev;
}

// ---- Metrics --------------------------------------------------------------------------------

std::size_t fill_backend_gauges(const Fleet& fleet, std::uint64_t now_ms, BackendGauge* out,
                                std::size_t max) {
  if (!fleet.routing()) return 0;
  const std::size_t n = std::min<std::size_t>(fleet.size(), max);
  for (std::size_t k = 0; k < n; ++k) {
    const auto i = static_cast<std::uint32_t>(k);
    if (!fleet.configured(i)) {
      out[k] = BackendGauge{};  // vacant: a removed backend's series end
      continue;
    }
    out[k] = BackendGauge{.name = fleet.name(i),
                          .up = fleet.healthy(i, now_ms),
                          .in_flight = fleet.in_flight(i),
                          .slots = fleet.max_parallel(i)};
  }
  return n;
}

}  // namespace tokentap
