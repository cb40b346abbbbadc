#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz/ and, with --run SECONDS,
# runs each for that long on the seed corpus in tests/fuzz/corpus/<target>/ (created if absent).
# Not part of the CMake build: libFuzzer needs clang and -fsanitize=fuzzer.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build-fuzz
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iinclude)
core=(src/json_skim.cc src/llm_tail.cc src/usage_strip.cc src/request_probe.cc)
targets=(json_skim_fuzz llm_tail_fuzz usage_strip_fuzz request_probe_fuzz http1_fuzz)
for t in "${targets[@]}"; do
  if [[ $t == http1_fuzz ]]; then
    # llhttp's C sources are compiled in with the fuzzer's instrumentation.
    for c in llhttp api http; do
      clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -I/usr/share/include/llhttp \
        -c "/usr/share/llhttp/$c.c" -o "$out/llhttp_$c.o"
    done
    clang++ "${flags[@]}" -I/usr/share/include/llhttp "tests/fuzz/$t.cc" src/http1.cc \
      "$out"/llhttp_{llhttp,api,http}.o -o "$out/$t"
  else
    clang++ "${flags[@]}" "tests/fuzz/$t.cc" "${core[@]}" -lsimdjson -o "$out/$t"
  fi
done
echo "built: ${targets[*]/#/$out/}"
if [[ "${1:-}" == "--run" ]]; then
  seconds=${2:-60}
  for t in "${targets[@]}"; do
    corpus="tests/fuzz/corpus/$t"
    mkdir -p "$corpus" "$out/$t.findings" "$out/$t.work"
    "$out/$t" -max_total_time="$seconds" -max_len=4096 -artifact_prefix="$out/$t.findings/" \
      "$out/$t.work" "$corpus" 2>&1 | tail -n 3 || exit 1
  done
fi
