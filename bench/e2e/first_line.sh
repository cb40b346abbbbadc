#!/usr/bin/env bash
# First streamed line through the floor and tokentap against the upstream directly, at several
# connection counts, targets alternated round by round: separates what a proxy hop costs on this
# machine (two thread wake-ups) from what tokentap adds (BENCHMARKS.md, session 6).
#
# Usage: bench/e2e/first_line.sh            (after one bench/e2e/run.sh built the tools)
# Env:   E2E_BUILD (build-release), FIRST_PORT_BASE (19700), FIRST_CONNS ("1 4 16"),
#        FIRST_ROUNDS (3), FIRST_DELAY_MS (20: the upstream's time to the first token)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${E2E_BUILD:-build-release}
base=${FIRST_PORT_BASE:-19700}
for tool in fake_upstream tokentap e2e_client e2e_floor; do
  [ -x "$build/$tool" ] || { echo "$build/$tool missing: run bench/e2e/run.sh once" >&2; exit 2; }
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$build/fake_upstream" --listen "127.0.0.1:$base" --threads 1 >/dev/null 2>&1 &
pids+=($!)
"$build/e2e_floor" "$((base + 5))" "$base" >/dev/null 2>&1 &
pids+=($!)
"$build/tokentap" --listen "127.0.0.1:$((base + 1))" --metrics-listen "127.0.0.1:$((base + 11))" \
  --upstream "http://127.0.0.1:$base" --threads 1 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
echo "# first NDJSON line p50 µs (upstream ${FIRST_DELAY_MS:-20} ms to the first token, 2 s per cell)"
for conns in ${FIRST_CONNS:-1 4 16}; do
  for round in $(seq "${FIRST_ROUNDS:-3}"); do
    line="conns=$conns round=$round"
    for target in direct:$base floor:$((base + 5)) tokentap:$((base + 1)); do
      out=$(E2E_BODY='{"model":"llama3.2","prompt":"hi"}' \
        E2E_HEADERS="X-Fake-Tokens: 1|X-Fake-Delay-Ms: ${FIRST_DELAY_MS:-20}" \
        "$build/e2e_client" firstline "${target#*:}" "$conns" 2)
      p50=$(tr ' ' '\n' <<<"$out" | awk -F= '$1 == "p50_us" {print $2}')
      line="$line ${target%%:*}=$p50"
    done
    echo "$line"
  done
done
