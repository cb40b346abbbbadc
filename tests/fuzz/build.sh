#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz/ and
#   --run SECONDS   runs each in turn for that long (CI: a short bounded smoke run);
#   --long SECONDS  runs all at once at the lowest CPU priority (the issue's >= 30 min runs can
#                   then share a 2-core machine with other work) and writes each target's exec
#                   count and outcome to build-fuzz/long-run.md.
# Seed corpora: tests/fuzz/corpus/<target>/; new inputs go to build-fuzz/<target>.work/.
# Not part of the CMake build: libFuzzer needs clang and -fsanitize=fuzzer.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${TOKENTAP_FUZZ_OUT:-build-fuzz}  # a long run can use its own folder beside CI's
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iinclude)
core=(src/meter/json_skim.cc src/meter/json_skim_string.cc src/meter/llm_tail.cc src/meter/ollama_line.cc
      src/meter/sse_lexer.cc src/meter/piece_parser.cc
      src/meter/llm_tail_lanes.cc src/meter/compact_skim.cc src/meter/usage_strip.cc src/meter/request_probe.cc)
# TOKENTAP_FUZZ_TARGETS narrows the set (e.g. a long run of only the target whose code changed).
targets=(${TOKENTAP_FUZZ_TARGETS:-json_skim_fuzz compact_skim_fuzz llm_tail_fuzz usage_strip_fuzz
  request_probe_fuzz http1_fuzz})
for t in "${targets[@]}"; do
  if [[ $t == http1_fuzz ]]; then
    # llhttp's C sources are compiled in with the fuzzer's instrumentation.
    for c in llhttp api http; do
      clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DLLHTTP_STRICT_MODE \
        -I/usr/share/include/llhttp \
        -c "/usr/share/llhttp/$c.c" -o "$out/llhttp_$c.o"
    done
    clang++ "${flags[@]}" -I/usr/share/include/llhttp "tests/fuzz/$t.cc" src/http/http1.cc \
      "$out"/llhttp_{llhttp,api,http}.o -o "$out/$t"
  else
    clang++ "${flags[@]}" "tests/fuzz/$t.cc" "${core[@]}" -lsimdjson -o "$out/$t"
  fi
done
echo "built: ${targets[*]/#/$out/}"
fuzz_args() {  # target seconds
  local t=$1
  mkdir -p "tests/fuzz/corpus/$t" "$out/$t.findings" "$out/$t.work"
  echo "$out/$t" -max_total_time="$2" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/$t.findings/" "$out/$t.work" "tests/fuzz/corpus/$t"
}
case "${1:-}" in
  --run)
    for t in "${targets[@]}"; do
      $(fuzz_args "$t" "${2:-60}") 2>&1 | tail -n 3 || exit 1
    done ;;
  --long)
    seconds=${2:-1800}
    declare -A pid
    for t in "${targets[@]}"; do
      nice -n 19 $(fuzz_args "$t" "$seconds") >"$out/$t.long.log" 2>&1 &
      pid[$t]=$!
    done
    failed=0
    declare -A outcome
    for t in "${targets[@]}"; do
      outcome[$t]="no finding"
      wait "${pid[$t]}" || { outcome[$t]="FAILED (see $out/$t.long.log)"; failed=1; }
    done
    stat() { grep -o "stat::$2: *[0-9]*" "$1" | tail -n1 | grep -o '[0-9]*$' || echo 0; }
    {
      echo "| target | seconds | execs | execs/s | corpus files | peak RSS MiB | outcome |"
      echo "|---|---:|---:|---:|---:|---:|---|"
      for t in "${targets[@]}"; do
        log="$out/$t.long.log"
        execs=$(stat "$log" number_of_executed_units)
        echo "| $t | $seconds | $execs | $(( execs / seconds )) | $(ls "$out/$t.work" | wc -l) |" \
             "$(stat "$log" peak_rss_mb) | ${outcome[$t]} |"
      done
    } | tee "$out/long-run.md"
    exit "$failed" ;;
esac
