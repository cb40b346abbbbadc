// Balancer: which backend gets a request, as a pure function over plain Candidates (STYLE §22c).
//
// choose_backend() is the rule of issue 16, in order:
//  1. Candidates are the healthy backends not already tried for this request (`excluded`).
//  2. Model-aware: among them, those that have the request's model installed; when none has it,
//     all of them (Ollama then answers 404 itself, in its own words).
//  3. Load-aware: the fewest requests in flight through tokentap scaled by capacity,
//     in_flight / (weight × ramp). IEEE division is correctly rounded, so equal ratios of small
//     integers tie exactly (1/1 = 3/3). Ties go round-robin: the first tied candidate at or after
//     rr mod n.
//  4. Slow start: a backend that just came back has ramp = elapsed / slow_start_ms, at least
//     slow_start_ramp_min (so it still gets traffic at once) and at most 1, so it takes its
//     share over 10 s instead of the whole queue in one burst.
// snapshot_candidates() reads a Fleet's atomics once per backend (relaxed loads: a snapshot is a
// hint; the next request sees the next one) and is the only part that touches shared memory.
// One decision (snapshot + choose) for 64 backends is well under 1 µs
// (bench/backend_select_bench.cc).
//
// Issue 17 refines step 3 (residency, free slots, expected wait): Candidate gains fields, and a
// scheduler may call choose_backend() as its last resort ("otherwise fewest in flight").
#pragma once

#include <cstdint>
#include <span>

#include "tokentap/obs/model_table.h"
#include "tokentap/upstream/backend.h"

namespace tokentap {

constexpr std::uint64_t slow_start_ms = 10'000;  // a returning backend reaches its full share
constexpr double slow_start_ramp_min = 0.1;      // its share from the first moment
static_assert(slow_start_ramp_min > 0.0 && slow_start_ramp_min <= 1.0);

struct Candidate {
  bool healthy = true;
  bool has_model = true;
  bool excluded = false;  // already tried for this request
  std::uint32_t in_flight = 0;
  std::uint32_t weight = 1;  // 0 counts as 1
  double ramp = 1.0;         // slow start, clamped to [slow_start_ramp_min, 1]
};

// The slow-start share at now_ms of a backend in rotation since since_ms (0: from the start).
[[nodiscard]] double slow_start_ramp(std::uint64_t now_ms, std::uint64_t since_ms);

// The index in `c` of the backend to use, or no_backend when no candidate is healthy and
// untried. `rr`: a counter the caller advances once per attempt (per shard is enough).
[[nodiscard]] std::uint32_t choose_backend(std::span<const Candidate> c, std::uint32_t rr);

// Fills out[0 .. fleet.size()) from the fleet at now_ms for a request for `model`; bit i of
// excluded_mask marks backend i as already tried. `out` holds at least fleet_backends_max.
// Returns fleet.size().
std::uint32_t snapshot_candidates(const Fleet& fleet, ModelId model, std::uint64_t now_ms,
                                  std::uint64_t excluded_mask, Candidate* out);

// Both: the backend for one attempt of a request, or no_backend.
[[nodiscard]] std::uint32_t select_backend(const Fleet& fleet, ModelId model, std::uint64_t now_ms,
                                           std::uint64_t excluded_mask, std::uint32_t rr);

// The first healthy backend not in excluded_mask in slot order (the order backends were first
// configured), or no_backend: where requests that must meet again go, whatever the load
// (POST /api/blobs/:digest, then the /api/create that names the blob).
[[nodiscard]] std::uint32_t first_in_order(const Fleet& fleet, std::uint64_t now_ms,
                                           std::uint64_t excluded_mask);

}  // namespace tokentap
