// Two assertion levels (STYLE §10).
//  - TT_ASSERT stays on in release builds: cheap invariants at state transitions and teardown.
//    A failed one is a programmer error, never bad input, so it aborts with file and line.
//  - TT_DASSERT is compiled only in debug builds (NDEBUG unset): per-byte checks on hot loops.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace tokentap::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "tokentap: assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}
}  // namespace tokentap::detail

#define TT_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::tokentap::detail::assert_failed(#expr, __FILE__, __LINE__))

#ifdef NDEBUG
#define TT_DASSERT(expr) static_cast<void>(0)
#else
#define TT_DASSERT(expr) TT_ASSERT(expr)
#endif
