// HealthPolicy and the retry decision: pure rules over plain values (STYLE §22c).
//
// Nothing here reads a clock, an atomic or a socket: every function takes the facts it needs
// (the backend's counters, the time as now_ms, how many other backends are healthy) and returns
// what should change. The Fleet (backend.h) loads its atomics, asks these functions and stores
// the answer; the proxy maps what it saw on the wire (errno, status, Ollama's busy body) to
// their arguments. So every rule of issue 16 is unit-tested without a ring:
//  - Active checks (`GET /api/version`): down after health_fails_down consecutive failures,
//    up after health_passes_up consecutive passes (hysteresis: one blip changes nothing).
//  - Passive signals: a refused or timed-out connect marks the backend down at once;
//    errors_5xx_eject consecutive 5xx answers (Ollama's 503 busy excepted) eject it for
//    ejection_step_ms × its ejection count (capped). The last healthy backend is never marked
//    down nor ejected by a passive signal: it stays the fallback, and Ollama's own error reaches
//    the client instead of tokentap's 502. Active checks may still mark it down: a backend that
//    fails three checks in a row really is gone.
//  - Retry (failover) only before the first response byte, only while the request is still
//    replayable, at most `retries` times: on a connect failure, a reset before the response head,
//    or Ollama's 503 busy.
#pragma once

#include <cstdint>
#include <string_view>

namespace tokentap {

constexpr std::uint32_t health_fails_down = 3;  // consecutive failed active checks → down
constexpr std::uint32_t health_passes_up = 2;   // consecutive passed active checks → up
constexpr std::uint32_t errors_5xx_eject = 5;   // consecutive 5xx answers (not busy) → ejected
constexpr std::uint64_t ejection_step_ms = 30'000;  // ejection n lasts n × this
// Envoy's max_ejection_time default: past the 10th ejection a flapping backend is retried every
// 5 minutes rather than ever more rarely (30 s × n would grow without bound).
constexpr std::uint64_t ejection_ms_max = 300'000;
static_assert(ejection_step_ms <= ejection_ms_max);
static_assert(health_fails_down >= 1 && health_passes_up >= 1 && errors_5xx_eject >= 1);

// What a report changed, so the caller can count tokentap_backend_ejections_total{reason} and
// log one line. `none` is by far the most common answer.
enum class HealthChange : std::uint8_t { none, went_down, went_up, ejected };

// Why a backend left the rotation: the `reason` label of tokentap_backend_ejections_total.
enum class HealthReason : std::uint8_t { check, connect_refused, connect_timeout, errors_5xx };

[[nodiscard]] constexpr std::string_view health_reason_name(HealthReason r) {
  switch (r) {
    case HealthReason::check: return "health_check";
    case HealthReason::connect_refused: return "connect_refused";
    case HealthReason::connect_timeout: return "connect_timeout";
    case HealthReason::errors_5xx: return "5xx";
  }
  return "unknown";
}

// How a connect to the backend failed. `other` (EHOSTUNREACH, EMFILE, ENOBUFS, …) may be local
// trouble rather than the backend's: it is retried elsewhere but does not mark the backend down.
enum class ConnectFailure : std::uint8_t { refused, timeout, other };

// The active-check state of one backend, as plain values.
struct HealthCounts {
  bool up = true;
  std::uint32_t fails = 0;   // consecutive failed checks
  std::uint32_t passes = 0;  // consecutive passed checks
};

struct CheckVerdict {
  HealthCounts next;
  HealthChange change = HealthChange::none;
};

struct ResponseVerdict {
  std::uint32_t consecutive_5xx = 0;  // the counter after this answer
  bool eject = false;                 // eject now (the caller then resets the counter)
};

// The thresholds are members so a test or a later issue can tune them; the defaults are the
// named limits above. Every function is pure: same arguments, same answer.
struct HealthPolicy {
  std::uint32_t fails_down = health_fails_down;
  std::uint32_t passes_up = health_passes_up;
  std::uint32_t errors_eject = errors_5xx_eject;
  std::uint64_t ejection_step = ejection_step_ms;
  std::uint64_t ejection_max = ejection_ms_max;

  // One active check result.
  [[nodiscard]] CheckVerdict on_check(HealthCounts now, bool passed) const;

  // A connect failure marks the backend down at once: refused and timeout do, `other` not.
  [[nodiscard]] bool marks_down(ConnectFailure f) const { return f != ConnectFailure::other; }
  // A 5xx answer that extends the run: any 5xx but Ollama's busy 503.
  [[nodiscard]] bool counts_as_error(int status, bool busy) const {
    return status >= 500 && status <= 599 && !busy;
  }
  // An answer that ends the run: any non-5xx. The busy 503 neither extends nor ends it (the
  // backend is alive but full).
  [[nodiscard]] bool resets_run(int status, bool busy) const { return !busy && status < 500; }
  [[nodiscard]] bool ejects_after(std::uint32_t run_5xx) const { return run_5xx >= errors_eject; }
  // A passive signal may take a backend out of rotation only while another one stays healthy.
  [[nodiscard]] bool may_leave(std::uint32_t healthy_others) const { return healthy_others >= 1; }

  // The same rules composed, for one backend. `healthy_others`: backends other than this one
  // that are healthy now. on_connect_failure answers went_down or none.
  [[nodiscard]] HealthChange on_connect_failure(bool up, ConnectFailure f,
                                                std::uint32_t healthy_others) const;
  [[nodiscard]] ResponseVerdict on_response(std::uint32_t consecutive_5xx, int status, bool busy,
                                            std::uint32_t healthy_others) const;

  // How long the n-th ejection (n >= 1) lasts: ejection_step × n, at most ejection_max.
  [[nodiscard]] std::uint64_t ejection_duration_ms(std::uint32_t ejections) const;
};

[[nodiscard]] constexpr HealthReason reason_of(ConnectFailure f) {
  return f == ConnectFailure::timeout ? HealthReason::connect_timeout
                                      : HealthReason::connect_refused;
}

// ---- Retry (failover) ----------------------------------------------------------------------

// Why a request goes to another backend: the `reason` label of tokentap_retries_total, in the
// order of obs's RetryReason (connect, reset, busy) after `none` = not retried. A separate enum
// because `none` is a real answer here and no metrics slot there.
enum class FailoverReason : std::uint8_t { none, connect, reset, busy };

[[nodiscard]] constexpr std::string_view failover_reason_name(FailoverReason r) {
  switch (r) {
    case FailoverReason::none: return "none";
    case FailoverReason::connect: return "connect";
    case FailoverReason::reset: return "reset";
    case FailoverReason::busy: return "busy";
  }
  return "none";
}

// How one attempt on a backend ended, as the proxy saw it.
enum class AttemptEnd : std::uint8_t {
  connect_failed,  // the connect never completed (refused, timed out, unreachable)
  lost_before_head,  // connected, then reset/EOF/send error before any response byte
  answered,          // a response head arrived (see `busy`)
};

// Ollama's answer when its queue is full (server/sched.go ErrMaxQueue), 503 with this body.
inline constexpr std::string_view ollama_busy_message =
    "server busy, please try again.  maximum pending requests exceeded";

// True when a response is Ollama's 503 busy: status 503 and a body naming "server busy" (the
// body may be JSON-escaped or cut; the stable part is matched).
[[nodiscard]] constexpr bool is_busy_answer(int status, std::string_view body) {
  return status == 503 && body.find("server busy") != std::string_view::npos;
}

// The retry reason an attempt's end would carry, whether or not a retry is allowed.
[[nodiscard]] constexpr FailoverReason retry_reason_of(AttemptEnd end, bool busy) {
  switch (end) {
    case AttemptEnd::connect_failed: return FailoverReason::connect;
    case AttemptEnd::lost_before_head: return FailoverReason::reset;
    case AttemptEnd::answered: return busy ? FailoverReason::busy : FailoverReason::none;
  }
  return FailoverReason::none;
}

// Whether another attempt may follow. `attempts`: attempts made so far (>= 1); `retries`: the
// --retries limit (attempts beyond the first). `replayable`: the whole request is still held, so
// it can be sent again; `response_started`: some response byte reached the client. After the
// first byte nothing is retried, whatever the reason.
[[nodiscard]] constexpr bool may_retry(std::uint32_t attempts, std::uint32_t retries,
                                       bool replayable, bool response_started) {
  return replayable && !response_started && attempts >= 1 && attempts - 1 < retries;
}

// Both in one: the reason to count when the request goes to another backend, or none.
[[nodiscard]] constexpr FailoverReason retry_decision(AttemptEnd end, bool busy,
                                                   std::uint32_t attempts, std::uint32_t retries,
                                                   bool replayable, bool response_started) {
  const FailoverReason r = retry_reason_of(end, busy);
  if (r == FailoverReason::none) return FailoverReason::none;
  return may_retry(attempts, retries, replayable, response_started) ? r : FailoverReason::none;
}

}  // namespace tokentap
