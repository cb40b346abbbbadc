// Clock: the one time source of the data path, CLOCK_MONOTONIC read through the vDSO.
//
// Every deadline in tokentap (timer wheel, io_uring wait timeouts, latency histograms) is a
// CLOCK_MONOTONIC value, because wall time jumps under NTP and a timeout must never fire early or
// late by a step. io_uring timeouts without IORING_TIMEOUT_REALTIME/BOOTTIME are measured on the
// same clock, so a wheel deadline converted to a relative wait matches what the kernel waits for.
// The COARSE variant is cheaper but only tick-accurate (1–4 ms), which would make the ±1 tick bound
// of the wheel (10 ms) a ±14 ms bound; the plain clock costs ~20 ns through the vDSO.
#pragma once

#include <time.h>

#include <cstdint>

#include "tokentap/base/assert.h"

namespace tokentap {

constexpr std::uint64_t ns_per_ms = 1'000'000;
constexpr std::uint64_t ns_per_s = 1'000'000'000;

// Nanoseconds since an arbitrary fixed point (boot); never goes backwards.
[[nodiscard]] inline std::uint64_t monotonic_ns() {
  timespec ts{};
  // clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux with a valid pointer. A failure would mean
  // a broken libc or seccomp filter and every timeout wrong: not a recoverable error.
  const int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
  TT_ASSERT(rc == 0);
  return static_cast<std::uint64_t>(ts.tv_sec) * ns_per_s + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Milliseconds on the same clock as monotonic_ns(), truncated.
[[nodiscard]] inline std::uint64_t monotonic_ms() { return monotonic_ns() / ns_per_ms; }

}  // namespace tokentap
