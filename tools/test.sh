#!/usr/bin/env bash
# The whole test suite from a clean checkout: install dependencies, build, run ctest twice —
# once on an optimized build, once under AddressSanitizer + UndefinedBehaviorSanitizer.
# TOKENTAP_SKIP_SANITIZE=1 skips the second pass (quicker local iterations).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir" -j"$jobs"
ctest --test-dir "$build_dir" --output-on-failure --timeout 300 -j"$jobs"

# Every libFuzzer target for a short bounded time on its seed corpus (long runs: see
# tests/fuzz/README.md).
if [ "${TOKENTAP_SKIP_FUZZ:-0}" != 1 ]; then
  bash tests/fuzz/build.sh --run "${TOKENTAP_FUZZ_SECONDS:-10}"
fi

if [ "${TOKENTAP_SKIP_SANITIZE:-0}" != 1 ]; then
  asan_dir=${ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTOKENTAP_SANITIZE=ON \
    -DTOKENTAP_BUILD_BENCH=OFF
  cmake --build "$asan_dir" -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$asan_dir" --output-on-failure --timeout 600 -j"$jobs"
fi
