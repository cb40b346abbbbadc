#!/usr/bin/env bash
# Profiles tokentap (1 shard, release build) under one workload of bench/e2e/run.sh and prints
# where its CPU goes: CPU µs per request, the user/kernel split, the hottest user-space
# symbols and the kernel paths that dominate. The evidence behind BENCHMARKS.md's "what
# limits it" section; perf (Debian linux-perf) samples cpu-clock, the only event a VM without
# hardware counters offers.
#
# Usage: bench/e2e/profile.sh gen|ndjson|sse_usage|sse_plain|bulk [SECONDS]
# Env:   E2E_BUILD (build-release), PROFILE_PORT_BASE (19600), PROFILE_KEEP=1 keeps perf.data.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${E2E_BUILD:-build-release}
base=${PROFILE_PORT_BASE:-19600}
workload=${1:?usage: $0 gen|ndjson|sse_usage|sse_plain|bulk [SECONDS]}
secs=${2:-3}
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: run bench/e2e/run.sh once" >&2; exit 2; }
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" --target tokentap fake_upstream >&2

chat='"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":true'
headers="" conns=64
case "$workload" in
  gen) path=/api/generate body='{"model":"llama3.2","prompt":"hi","stream":false}' conns=16 ;;
  ndjson) path=/api/generate body='{"model":"llama3.2","prompt":"hi"}' headers='X-Fake-Tokens: 32' ;;
  sse_usage) path=/v1/chat/completions headers='X-Fake-Tokens: 32'
    body="{$chat,\"stream_options\":{\"include_usage\":true}}" ;;
  sse_plain) path=/v1/chat/completions body="{$chat}" headers='X-Fake-Tokens: 32' ;;
  bulk) path=/fake/blob ;;
  *) echo "unknown workload $workload" >&2; exit 2 ;;
esac

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${PROFILE_KEEP:-0}" = 1 ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
"$build/fake_upstream" --listen "127.0.0.1:$base" --threads 1 >"$work/fake.log" 2>&1 &
pids+=($!)
"$build/tokentap" --listen "127.0.0.1:$((base + 1))" --metrics-listen "127.0.0.1:$((base + 2))" \
  --upstream "http://127.0.0.1:$base" --threads 1 >"$work/tokentap.log" 2>&1 &
tt=$!
pids+=("$tt")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$((base + 2))/healthz" >/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$tt/stat"; }
if [ "$workload" = bulk ]; then
  # Downloads back to back for the whole sampling window.
  (end=$((SECONDS + secs + 2)); while [ $SECONDS -lt $end ]; do
     curl -s -o /dev/null "http://127.0.0.1:$((base + 1))/fake/blob?size=268435456"; done) &
  load=$!
else
  E2E_PATH=$path E2E_BODY=$body E2E_HEADERS=$headers wrk -t1 -c"$conns" -d"$((secs + 2))s" \
    -s bench/e2e/request.lua "http://127.0.0.1:$((base + 1))" >"$work/wrk.txt" &
  load=$!
fi
sleep 1
before=$(cpu_ticks)
perf record -q -e cpu-clock -g -p "$tt" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null
after=$(cpu_ticks)
wait "$load" || true
hz=$(getconf CLK_TCK)
cpu_ms=$(( (after - before) * 1000 / hz ))
echo "# tokentap profile: $workload, ${secs}s, kernel $(uname -r), $(nproc) CPUs"
if [ "$workload" = bulk ]; then
  echo "tokentap CPU: ${cpu_ms} ms over ${secs} s"
else
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  echo "wrk: $rps req/s; tokentap CPU ${cpu_ms} ms over ${secs} s =" \
    "$(awk -v c="$cpu_ms" -v r="$rps" -v s="$secs" 'BEGIN {printf "%.1f", c * 1000 / (r * s)}') µs/request"
fi
set +o pipefail  # `head` closes the pipes of the reports below early: not a failure
report() { perf report -i "$work/perf.data" --stdio "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo "## share of samples by object"
report --no-children --sort dso -g none | head -6
echo "## hottest user-space symbols"
report --no-children --sort dso,sym -g none | grep -v kernel | head -15
echo "## kernel paths (inclusive share)"
report --children --sort sym -g none | grep -E '\[k\] (io_sendmsg|io_recv|tcp_sendmsg|tcp_recvmsg|__dev_queue_xmit|net_rx_action|tcp_v4_rcv|sock_def_readable|schedule|io_cqring_wait|splice_to_socket|tcp_splice_read|pvm_irq_enable|__do_sys_io_uring_enter) *$' | head -14  # names differ between kernels
echo "## hottest kernel symbols (self)"
report --no-children --sort dso,sym -g none | grep kernel | head -15
if [ "${PROFILE_KEEP:-0}" = 1 ]; then cp "$work/perf.data" "/tmp/tokentap-$workload.perf.data"; fi
