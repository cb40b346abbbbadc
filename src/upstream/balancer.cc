// Balancer: choose_backend() and the Fleet snapshot it reads (rules in balancer.h).
#include "tokentap/upstream/balancer.h"

#include <algorithm>
#include <new>

namespace tokentap {
namespace {

// The capacity a candidate's in-flight count is divided by: weight × ramp, both clamped.
// NaN or a ramp below the floor reads as the floor.
double capacity_of(const Candidate& c) {
  const double ramp = c.ramp >= slow_start_ramp_min ? std::min(c.ramp, 1.0) : slow_start_ramp_min;
  const std::uint32_t weight = std::clamp<std::uint32_t>(c.weight, 1, fleet_weight_max);
  return static_cast<double>(weight) * ramp;
}

// The load a candidate would be compared by: in_flight / capacity. IEEE division is correctly
// rounded, so equal ratios of small integers (1/1 and 3/3) give equal scores: ties stay exact.
double score_of(const Candidate& c) { return static_cast<double>(c.in_flight) / capacity_of(c); }

constexpr double score_none = 1e300;  // above any score (in_flight < 2^32, capacity >= 0.1)

}  // namespace

double slow_start_ramp(std::uint64_t now_ms, std::uint64_t since_ms) {
  if (since_ms == 0) return 1.0;
  if (now_ms <= since_ms) return slow_start_ramp_min;
  const double ramp = static_cast<double>(now_ms - since_ms) / static_cast<double>(slow_start_ms);
  return std::clamp(ramp, slow_start_ramp_min, 1.0);
}

std::uint32_t choose_backend(std::span<const Candidate> c, std::uint32_t rr) {
  const auto n = static_cast<std::uint32_t>(c.size());
  if (n == 0) return no_backend;
  // The lightest in two classes (with the model, any), visited in round-robin order from rr so
  // that a strict `<` keeps the first of the tied ones.
  std::uint32_t best_model = no_backend, best_any = no_backend;
  double score_model = score_none, score_any = score_none;
  std::uint32_t j = rr % n;
  for (std::uint32_t k = 0; k < n; ++k, j = j + 1 == n ? 0 : j + 1) {
    const Candidate& x = c[j];
    if (!x.healthy || x.excluded) continue;
    const double score = score_of(x);
    if (score < score_any) {
      score_any = score;
      best_any = j;
    }
    if (x.has_model && score < score_model) {
      score_model = score;
      best_model = j;
    }
  }
  return best_model != no_backend ? best_model : best_any;
}

std::uint32_t snapshot_candidates(const Fleet& fleet, ModelId model, std::uint64_t now_ms,
                                  std::uint64_t excluded_mask, Candidate* out) {
  const std::uint32_t n = fleet.size();
  for (std::uint32_t i = 0; i < n; ++i) {
    const BackendState& b = fleet.at(i);
    const bool healthy = b.healthy(now_ms);
    // Constructed here, so `out` may be raw storage (select_backend's stack buffer).
    ::new (out + i) Candidate{
        .healthy = healthy,
        .has_model = b.has_model(model),
        .excluded = ((excluded_mask >> i) & 1u) != 0,
        .in_flight = b.in_flight.load(std::memory_order_relaxed),
        .weight = fleet.weight(i),
        .ramp = healthy ? slow_start_ramp(now_ms, b.in_rotation_since_ms()) : 0.0,
    };
  }
  return n;
}

std::uint32_t select_backend(const Fleet& fleet, ModelId model, std::uint64_t now_ms,
                             std::uint64_t excluded_mask, std::uint32_t rr) {
  // Raw storage: default-initialising 64 Candidates would cost as much as choosing among 8.
  alignas(Candidate) unsigned char storage[sizeof(Candidate) * fleet_backends_max];
  Candidate* c = reinterpret_cast<Candidate*>(storage);
  const std::uint32_t n = snapshot_candidates(fleet, model, now_ms, excluded_mask, c);
  return choose_backend(std::span<const Candidate>(c, n), rr);
}

std::uint32_t first_in_order(const Fleet& fleet, std::uint64_t now_ms,
                             std::uint64_t excluded_mask) {
  const std::uint32_t n = fleet.size();
  for (std::uint32_t i = 0; i < n; ++i) {
    if (((excluded_mask >> i) & 1u) == 0 && fleet.healthy(i, now_ms)) return i;
  }
  return no_backend;
}

}  // namespace tokentap
