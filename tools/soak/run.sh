#!/usr/bin/env bash
# Issue 5's load and soak: builds a release tokentap and the soak driver, runs the soak and
# writes its markdown report to tools/soak/last-run.md (and stdout).
#   tools/soak/run.sh            10,000-connection burst, then a 5-minute mixed soak
#   tools/soak/run.sh --quick    2,000-connection burst, 60 s soak
# Other arguments are passed to the soak binary (see tools/soak/README.md). Exit status 0 only
# when every check passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
args=()
for a in "$@"; do
  if [[ "$a" == "--quick" ]]; then
    args+=(--duration 60 --burst 2000 --slow 2000)
  else
    args+=("$a")
  fi
done
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build-release -j2 --target tokentap soak > /dev/null
exec build-release/soak --tokentap build-release/tokentap --report tools/soak/last-run.md \
  "${args[@]}"
