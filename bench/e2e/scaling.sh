#!/usr/bin/env bash
# Shard scaling: tokentap --threads N (N = 1 2 4 8 16 by default, those that fit the machine)
# in front of the fake upstream, each process pinned with taskset so that the proxy, the
# upstream and the load generator do not take each other's CPUs. Prints two Markdown tables
# (non-stream and NDJSON stream) and writes them to $SCALE_OUT (default $OUT/scaling.md when
# OUT is set, else /tmp/tokentap-scaling.md).
#
# Usage: bench/e2e/scaling.sh [N ...]                 measure (default N: 1 2 4 8 16 ≤ CPUs)
#        bench/e2e/scaling.sh --pack DIR [BUILD]      copy tokentap and fake_upstream from
#             BUILD (build-scale), wrk and taskset from PATH, and every shared library they
#             load (with the dynamic loader) into DIR, to run on a machine without those
#             packages: SCALE_BIN=DIR bench/e2e/scaling.sh
# Env:   SCALE_BIN (directory holding tokentap, fake_upstream and optionally wrk; default
#        build-scale; a lib/ beside them with ld-linux-x86-64.so.2 is used as the loader),
#        SCALE_SECONDS (4, per measured phase), SCALE_ROUNDS (1; rounds run N=1..16 in turn
#        and each figure is the median over rounds), SCALE_CONNS_PER_SHARD (64),
#        SCALE_CONNS_MAX (1024), SCALE_PORT_BASE (19600), SCALE_STREAM=0 skips the stream phase.
#
# Pinning. The allowed CPUs are ordered by (package, core, CPU), so SMT siblings sit next to
# each other, and cut in three: tokentap gets the first N, the upstream the first half of the
# rest (fake_upstream --threads = that count), wrk the other half (wrk -t = that count). When
# fewer than 2 CPUs remain, the upstream and wrk share the last one; when N ≥ CPUs, all three
# share every CPU (upstream and wrk get CPUs/2 threads each) and the row says "shared".
#
# Per N and round: start the upstream and tokentap, warm 1 s, then
#   gen:    POST /api/generate {"model":"llama3.2","prompt":"hi","stream":false}, wrk with
#           min(64·N, 1024) connections (bench/e2e/request.lua, as run.sh);
#   ndjson: the same route streaming, X-Fake-Tokens: 32 (32 NDJSON lines + the final one);
#   direct: wrk straight at the upstream with the same CPUs and connections: the rig's own
#           ceiling (what the upstream and wrk can do on their CPUs with no proxy between).
# Figures: req/s, p50/p99 (wrk --latency), speed-up vs N=1, tokentap CPU (utime+stime of the
# process, all threads, /proc/PID/stat) per request and in cores busy, the upstream's and
# wrk's cores busy (wrk's from the shell's cutime/cstime), wrk errors (non-2xx + socket
# errors), and the /metrics check: the growth of the sum of tokentap_requests_total across the
# phase minus wrk's completed count (between 0 and conns: the requests in flight when wrk stops
# are counted by tokentap, not by wrk) and the growth of its non-200 series (those cut-off
# requests, when tokentap sees the client leave before the answer's status went out).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/e2e

# ---- pack mode: a self-contained directory of binaries and libraries ------------------------
if [ "${1:-}" = --pack ]; then
  dir=${2:?usage: $0 --pack DIR [BUILD]}; build=${3:-build-scale}
  mkdir -p "$dir/lib"
  cp "$build/tokentap" "$build/fake_upstream" "$dir/"
  cp "$(command -v wrk)" "$(command -v taskset)" "$dir/"
  for b in tokentap fake_upstream wrk taskset; do
    ldd "$dir/$b" | awk '/=> \// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' |
      while read -r lib; do cp -L "$lib" "$dir/lib/"; done
  done
  src=$(awk -F= '/^CMAKE_HOME_DIRECTORY/ {print $2}' "$build/CMakeCache.txt")
  git -C "$src" describe --always --dirty >"$dir/SOURCE"  # the commit the binaries come from
  du -sh "$dir"
  exit 0
fi

bindir=${SCALE_BIN:-build-scale}
secs=${SCALE_SECONDS:-4}
rounds=${SCALE_ROUNDS:-1}
per_shard=${SCALE_CONNS_PER_SHARD:-64}
conns_max=${SCALE_CONNS_MAX:-1024}
base=${SCALE_PORT_BASE:-19600}
stream=${SCALE_STREAM:-1}
out_md=/tmp/tokentap-scaling.md
[ -z "${OUT:-}" ] || out_md=$OUT/scaling.md
out_md=${SCALE_OUT:-$out_md}
up_port=$base tt_port=$((base + 1)) mx_port=$((base + 2))
gen_body='{"model":"llama3.2","prompt":"hi","stream":false}'
ndjson_body='{"model":"llama3.2","prompt":"hi"}'

# Binaries: through the packed loader when there is one, so the host's libraries do not matter.
cmd() {  # NAME: the words that run binary NAME
  local path=$bindir/$1
  [ -x "$path" ] || path=$(command -v "$1") || { echo "no $1 in $bindir or PATH" >&2; exit 1; }
  if [ -x "$bindir/lib/ld-linux-x86-64.so.2" ]; then
    echo "$bindir/lib/ld-linux-x86-64.so.2 --library-path $bindir/lib $path"
  else
    echo "$path"
  fi
}
read -r -a TT <<<"$(cmd tokentap)"
read -r -a UP <<<"$(cmd fake_upstream)"
read -r -a WRK <<<"$(cmd wrk)"
TASKSET=(taskset)
command -v taskset >/dev/null || read -r -a TASKSET <<<"$(cmd taskset)"

# ---- machine -----------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 1024 conns through a proxy need > 1024 fds
expand() {  # "0-3,8,10-11" -> one CPU per line
  tr ',' '\n' <<<"$1" | awk -F- '{ for (i = $1; i <= ($2 == "" ? $1 : $2); i++) print i }'
}
allowed=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
cpus=()  # ordered by package, core, CPU: SMT siblings adjacent
while read -r c; do cpus+=("$c"); done < <(for c in $(expand "$allowed"); do
  t=/sys/devices/system/cpu/cpu$c/topology
  echo "$(cat "$t/physical_package_id" 2>/dev/null || echo 0) $(cat "$t/core_id" 2>/dev/null ||
    echo "$c") $c"
done | sort -n -k1,1 -k2,2 -k3,3 | awk '{print $3}')
ncpu=${#cpus[@]}
machine=$(mktemp /tmp/tokentap-scaling-machine.XXXXXX)
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc: $(nproc)  allowed: $allowed  order: ${cpus[*]}"
  echo "kernel: $(uname -r)"
  if command -v lscpu >/dev/null; then
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node|L3|Hypervisor)' |
      sed 's/  */ /g' || true
  else
    awk -F': ' '/model name/ {print "Model name: " $2; exit}' /proc/cpuinfo
  fi
  echo "SMT siblings: $(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list \
    2>/dev/null | sort -u -n | tr '\n' ' ')"
  echo "io_uring_disabled: $(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo n/a)"
  echo "tokentap: $("${TT[@]}" --version 2>&1 | head -1)" \
    "built from $(cat "$bindir/SOURCE" 2>/dev/null || git rev-parse --short HEAD)"
  echo "wrk: $("${WRK[@]}" -v 2>&1 | head -1)"
  echo "seconds: $secs  rounds: $rounds  conns: min(${per_shard}·N, $conns_max)"
} >"$machine"
cat "$machine" >&2

ns=("$@")
if [ ${#ns[@]} -eq 0 ]; then
  for n in 1 2 4 8 16; do [ "$n" -le "$ncpu" ] && ns+=("$n"); done
fi

# ---- processes -----------------------------------------------------------------------------
work=$(mktemp -d /tmp/tokentap-scaling.XXXXXX)
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  if [ "$rc" = 0 ]; then rm -rf "$work" "$machine"; else echo "kept $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "scaling.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM
for p in $up_port $tt_port $mx_port; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is in use" >&2; exit 1; fi
done
wait_port() {  # PORT NAME LOG
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$2 did not start on port $1:" >&2; tail -n 20 "$3" >&2; exit 1
}
list() { local IFS=,; echo "$*"; }  # CPU... -> "a,b,c"
hz=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }       # utime+stime
child_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }  # waited children
scrape() {  # -> "total non200" of tokentap_requests_total
  local resp
  resp=$(exec 3<>"/dev/tcp/127.0.0.1/$mx_port" &&
    printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
    cat <&3)
  awk '/^tokentap_requests_total\{/ { t += $NF; if ($0 !~ /status="200"/) e += $NF }
    END { printf "%d %d\n", t, e }' <<<"$resp"
}
to_ms() { awk '{ v = $1; u = $1; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1;
  printf "%.3f", v * f }'; }
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$round" "$1" "$2" "$3" >>"$results"; }
busy() { awk -v t="$1" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", t / hz / s}'; }

phase() {  # NAME PORT BODY HEADERS: one wrk run with CPU accounting
  local name=$1 port=$2 c0 u0 w0 m0 out reqs
  c0=$(ticks "$tt_pid"); u0=$(ticks "$up_pid"); w0=$(child_ticks)
  if [ "$name" != direct ]; then
    sleep 0.2  # what the previous wrk cut off finishes (as an abort) before this scrape
    m0=$(scrape)
  fi
  E2E_PATH=/api/generate E2E_BODY=$3 E2E_HEADERS=$4 "${TASKSET[@]}" -c "$wrk_cpus" "${WRK[@]}" \
    -t"$wrk_k" -c"$conns" -d"${secs}s" --latency -s "$here/request.lua" \
    "http://127.0.0.1:$port/api/generate" >"$work/wrk.out"
  local w1 c1 u1; w1=$(child_ticks); c1=$(ticks "$tt_pid"); u1=$(ticks "$up_pid")
  out=$(cat "$work/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  record "$name" reqs "$reqs"
  record "$name" rps "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  record "$name" p50 "$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)"
  record "$name" p99 "$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)"
  record "$name" errors "$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " ");
    for (i = 1; i <= NF; i++) n += $i} END {print n + 0}' <<<"$out")"
  record "$name" up_busy "$(busy $((u1 - u0)))"
  record "$name" wrk_busy "$(busy $((w1 - w0)))"
  [ "$name" = direct ] && return 0
  record "$name" tt_busy "$(busy $((c1 - c0)))"
  record "$name" tt_us "$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$reqs" \
    'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "nan" }')"
  sleep 0.2  # requests cut off when wrk stopped finish (or abort) before the scrape
  local m1; m1=$(scrape)
  record "$name" metrics_delta "$(( ${m1% *} - ${m0% *} - reqs ))"
  record "$name" non200 "$(( ${m1#* } - ${m0#* } ))"
}

start=$(date +%s)
for round in $(seq "$rounds"); do
  for n in "${ns[@]}"; do
    rest=$((ncpu - n))
    if [ "$rest" -ge 2 ]; then
      up_k=$(((rest + 1) / 2)); wrk_k=$((rest - up_k)); layout=split
      tt_cpus=$(list "${cpus[@]:0:n}"); up_cpus=$(list "${cpus[@]:n:up_k}")
      wrk_cpus=$(list "${cpus[@]:n+up_k:wrk_k}")
    elif [ "$rest" -eq 1 ]; then
      up_k=1; wrk_k=1; layout="rest shared"
      tt_cpus=$(list "${cpus[@]:0:n}"); up_cpus=${cpus[n]}; wrk_cpus=${cpus[n]}
    else
      up_k=$(( ncpu / 2 > 0 ? ncpu / 2 : 1 )); wrk_k=$up_k; layout=shared
      tt_cpus=$(list "${cpus[@]}"); up_cpus=$tt_cpus; wrk_cpus=$tt_cpus
    fi
    conns=$(( per_shard * n < conns_max ? per_shard * n : conns_max ))
    [ "$conns" -ge "$wrk_k" ] || conns=$wrk_k
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$layout" "$tt_cpus" "$up_cpus" "$up_k" \
      "$wrk_cpus" "$wrk_k" "$conns" >"$work/layout.$n"
    "${TASKSET[@]}" -c "$up_cpus" "${UP[@]}" --listen "127.0.0.1:$up_port" --threads "$up_k" \
      >"$work/up.$n.log" 2>&1 &
    up_pid=$!; pids+=("$up_pid")
    wait_port "$up_port" fake_upstream "$work/up.$n.log"
    "${TASKSET[@]}" -c "$tt_cpus" "${TT[@]}" --listen "127.0.0.1:$tt_port" \
      --metrics-listen "127.0.0.1:$mx_port" --upstream "http://127.0.0.1:$up_port" \
      --threads "$n" >"$work/tt.$n.log" 2>&1 &
    tt_pid=$!; pids+=("$tt_pid")
    wait_port "$tt_port" tokentap "$work/tt.$n.log"
    wait_port "$mx_port" "tokentap metrics" "$work/tt.$n.log"
    [ "$round" -gt 1 ] || head -n 3 "$work/tt.$n.log" >&2
    E2E_BODY=$gen_body "${TASKSET[@]}" -c "$wrk_cpus" "${WRK[@]}" -t"$wrk_k" -c"$conns" -d1s \
      -s "$here/request.lua" "http://127.0.0.1:$tt_port/api/generate" >/dev/null
    phase gen "$tt_port" "$gen_body" ""
    [ "$stream" = 0 ] || phase ndjson "$tt_port" "$ndjson_body" "X-Fake-Tokens: 32"
    phase direct "$up_port" "$gen_body" ""
    for p in "$tt_pid" "$up_pid"; do
      kill -0 "$p" 2>/dev/null || { echo "process $p died" >&2; tail "$work"/*.log >&2; exit 1; }
    done
    stop_all
    echo "round $round N=$n done after $(( $(date +%s) - start )) s:" \
      "$(awk -F'\t' -v n="$n" -v r="$round" '$1 == n && $2 == r && $4 == "rps" {
        printf "%s %s req/s  ", $3, $5 }' "$results")" >&2
  done
done

# ---- report ------------------------------------------------------------------------------
med() {  # N PHASE METRIC: median over rounds
  awk -F'\t' -v n="$1" -v ph="$2" -v m="$3" '$1 == n && $3 == ph && $4 == m {v[k++] = $5}
    END { if (k == 0) { print "—"; exit } ; for (i = 0; i < k; i++) for (j = i + 1; j < k; j++)
      if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      print (k % 2) ? v[int(k / 2)] : (v[k / 2 - 1] + v[k / 2]) / 2 }' "$results"
}
rng() {  # N PHASE METRIC: "min–max" over rounds when more than one
  awk -F'\t' -v n="$1" -v ph="$2" -v m="$3" '$1 == n && $3 == ph && $4 == m {
    if (k++ == 0 || $5 + 0 < lo) lo = $5 + 0; if (k == 1 || $5 + 0 > hi) hi = $5 + 0 }
    END { if (k > 1) printf " (%.0f–%.0f)", lo, hi }' "$results"
}
fmt() {  # VALUE [DECIMALS]
  awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "—") print v; else printf "%.*f", d, v }'
}
speedup() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "—") printf "×%.2f", a / b;
  else print "—" }'; }
cells() {  # PHASE N: req/s … tokentap non-200, the cells both tables share
  local ph=$1 n=$2 rps base=0 m line
  rps=$(med "$n" "$ph" rps)
  [ "${ns[0]}" != 1 ] || base=$(med 1 "$ph" rps)
  line="| $(fmt "$rps")$(rng "$n" "$ph" rps) | $(speedup "$rps" "$base")"
  for m in p50 p99 tt_us tt_busy up_busy wrk_busy; do
    line+=" | $(fmt "$(med "$n" "$ph" $m)" 2)"
  done
  [ "$ph" != gen ] || line+=" | $(fmt "$(med "$n" direct rps)")"
  for m in errors metrics_delta non200; do line+=" | $(med "$n" "$ph" $m)"; done
  echo "$line |"
}
shared_head="| req/s | speed-up | p50 ms | p99 ms | tokentap µs/req | tokentap cores busy"
shared_head+=" | upstream busy | wrk busy"
shared_tail="| wrk errors | tokentap − wrk | tokentap non-200 |"
{
  echo "Machine:"
  echo
  sed 's/^/    /' "$machine"
  echo
  echo "Non-stream POST /api/generate (req/s: median over rounds, min–max in brackets):"
  echo
  echo "| shards | layout | tokentap CPUs | upstream CPUs (threads) | wrk CPUs (threads)" \
    "| conns $shared_head | rig ceiling req/s $shared_tail"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for n in "${ns[@]}"; do
    IFS=$'\t' read -r _ layout tt_cpus up_cpus up_k wrk_cpus wrk_k conns <"$work/layout.$n"
    echo "| $n | $layout | $tt_cpus | $up_cpus ($up_k) | $wrk_cpus ($wrk_k) | $conns" \
      "$(cells gen "$n")"
  done
  if [ "$stream" != 0 ]; then
    echo
    echo "Streaming POST /api/generate, X-Fake-Tokens: 32 (33 NDJSON lines per request):"
    echo
    echo "| shards | conns $shared_head $shared_tail"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in "${ns[@]}"; do
      IFS=$'\t' read -r _ _ _ _ _ _ _ conns <"$work/layout.$n"
      echo "| $n | $conns $(cells ndjson "$n")"
    done
  fi
  echo
  echo "Elapsed: $(( $(date +%s) - start )) s"
} >"$out_md"
cp "$results" "${out_md%.md}.tsv"
cat "$out_md"
