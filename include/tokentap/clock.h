// Monotonic time for the data path: CLOCK_MONOTONIC through the vDSO, no syscall.
#pragma once

#include <time.h>

#include <cstdint>

namespace tokentap {

[[nodiscard]] inline std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

[[nodiscard]] inline std::uint64_t monotonic_ms() { return monotonic_ns() / 1'000'000ull; }

}  // namespace tokentap
