// HealthPolicy: the health and ejection rules of issue 16 (see health_policy.h).
#include "tokentap/upstream/health_policy.h"

#include <algorithm>

namespace tokentap {
namespace {

// Counters stop at their threshold: "at least n in a row" is all the rules need, and a backend
// that failed for a year cannot overflow.
constexpr std::uint32_t saturating_inc(std::uint32_t v, std::uint32_t cap) {
  return v < cap ? v + 1 : cap;
}

}  // namespace

CheckVerdict HealthPolicy::on_check(HealthCounts now, bool passed) const {
  CheckVerdict v{now, HealthChange::none};
  if (passed) {
    v.next.fails = 0;
    v.next.passes = saturating_inc(now.passes, passes_up);
    if (!now.up && v.next.passes >= passes_up) {
      v.next.up = true;
      v.change = HealthChange::went_up;
    }
  } else {
    v.next.passes = 0;
    v.next.fails = saturating_inc(now.fails, fails_down);
    if (now.up && v.next.fails >= fails_down) {
      v.next.up = false;
      v.change = HealthChange::went_down;
    }
  }
  return v;
}

HealthChange HealthPolicy::on_connect_failure(bool up, ConnectFailure f,
                                              std::uint32_t healthy_others) const {
  return up && marks_down(f) && may_leave(healthy_others) ? HealthChange::went_down
                                                          : HealthChange::none;
}

ResponseVerdict HealthPolicy::on_response(std::uint32_t consecutive_5xx, int status, bool busy,
                                          std::uint32_t healthy_others) const {
  ResponseVerdict v{consecutive_5xx, false};
  if (resets_run(status, busy)) {
    v.consecutive_5xx = 0;
  } else if (counts_as_error(status, busy)) {
    v.consecutive_5xx = consecutive_5xx + 1;
    v.eject = ejects_after(v.consecutive_5xx) && may_leave(healthy_others);
  }
  return v;
}

std::uint64_t HealthPolicy::ejection_duration_ms(std::uint32_t ejections) const {
  const std::uint64_t n = std::max<std::uint32_t>(ejections, 1);
  // n ≤ 2^32 and a step of minutes cannot overflow 64 bits; the cap keeps the answer bounded.
  return std::min(ejection_step * n, ejection_max);
}

}  // namespace tokentap
