// BackendSource: how the metrics server learns, at scrape time, the fleet-wide backend values
// that no shard owns (metrics.md "Backends"): whether each backend is in rotation, its requests
// in flight and slots (gauges), and the prober's and ejector's counters.
//
// The obs layer depends only on base, so it does not know the backend fleet: whoever owns the
// fleet hands the MetricsServer a BackendSource (upstream does not depend on obs either, so the
// app, which sees both layers, builds it over the fleet). It is called on the metrics thread,
// once per scrape, never on a shard. It fills out[i] (and counters[i]) for backend index i, the
// index in configuration order that RequestRecord::backend carries, for i < the count it returns
// (at most `max`, which is backend_slots_max); an entry with an empty name is a vacant index.
// The renderer copies every name and counter value out right after the call returns, before
// anything else, so what the entries point to need only outlive that copy: keep one
// BackendCounters per index in storage that lives as long as the server (never freed, reused by
// the index's next backend), and keep a name's bytes unchanged until the source is next called.
// The source must be safe against the fleet's own updates (a lock, or a snapshot) and must not
// block for long: a scrape waits for it.
//
// BackendCounters are relaxed atomics with one writer (the prober thread, with counter_add) or
// several (relaxed fetch_add); the scraper only loads them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "tokentap/obs/metrics.h"

namespace tokentap {

// tokentap_health_checks_total{result}: an active check answered healthy, answered otherwise
// (refused, reset, a non-2xx status, a malformed answer), or got no answer in time.
enum class HealthResult : std::uint8_t { ok, fail, timeout, count_ };
constexpr std::size_t health_result_count = static_cast<std::size_t>(HealthResult::count_);
inline constexpr std::array<std::string_view, health_result_count> health_result_labels{
    "ok", "fail", "timeout"};

// tokentap_backend_ejections_total{reason}: why the backend left the rotation: its active
// health checks failed (health_check), a connect was refused or timed out (connect_refused,
// connect_timeout: marked down at once), or consecutive 5xx answers on live traffic (5xx).
// The order and the names are those of the upstream layer's HealthReason, so the fleet can
// index `ejections` with it directly.
enum class EjectionReason : std::uint8_t {
  health_check,
  connect_refused,
  connect_timeout,
  errors_5xx,
  count_
};
constexpr std::size_t ejection_reason_count = static_cast<std::size_t>(EjectionReason::count_);
inline constexpr std::array<std::string_view, ejection_reason_count> ejection_reason_labels{
    "health_check", "connect_refused", "connect_timeout", "5xx"};

struct BackendGauge {
  std::string_view name;        // the backend label value; empty: vacant index, not rendered
  bool up = false;              // in rotation (healthy and not ejected)
  std::uint32_t in_flight = 0;  // requests sent to it and not yet finished
  std::uint32_t slots = 0;      // concurrent requests it accepts (issue 17)
};

struct BackendCounters {
  std::array<Counter, health_result_count> health_checks{};  // by HealthResult
  std::array<Counter, ejection_reason_count> ejections{};    // by EjectionReason
};

// Returns the number of entries written; the renderer reads at most `max` of them.
using BackendSource = std::function<std::size_t(BackendGauge* out, const BackendCounters** counters,
                                                std::size_t max)>;

}  // namespace tokentap
