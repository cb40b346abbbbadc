#!/usr/bin/env bash
# End-to-end comparison (issue 4): the same workloads against the fake upstream directly,
# the floor (bench/e2e/floor_proxy.c: a bare forwarder, the least any proxy can add here),
# tokentap (1 and 2 shards), nginx and HAProxy (1 worker/thread each), all on 127.0.0.1,
# alternating targets phase by phase and round by round so the drift of a shared machine hits
# every target alike. Prints one Markdown table and writes it to bench/e2e/last-run.md.
#
# Usage: bench/e2e/run.sh [--quick]        (about 2 min quick, 5-6 min full, on 2 cores)
# Env:   E2E_BUILD (build-release), E2E_PORT_BASE (19400), E2E_ROUNDS, E2E_PHASES (a subset of
#        "gen16 gen64 gen256 ndjson32 sse_usage sse_plain paced bulk first_line streams"),
#        E2E_KEEP=1 keeps the work directory (configs, logs); kept on failure too.
#        E2E_BASE_BIN=PATH adds target tokentap-base: another tokentap binary (1 shard), e.g. a
#        build of an earlier commit, run alternately with the others, for before/after figures
#        of one change in one run (the report adds the per-round CPU ratio tokentap/base).
#        E2E_TARGETS narrows the targets (e.g. "tokentap tokentap-base nginx haproxy").
#        E2E_FLEET=N adds target tokentap-fleet: tokentap (1 shard) in front of N fake upstreams
#        (ports base+20..), the issue-16 figure "CPU per request with N backends vs one".
#
# Clients: wrk (-t1) for the throughput phases; bench/e2e/client.c (built here as e2e_client)
# for the paced phase (open loop, latency from the due time), first-line latency and the held
# slow streams; curl for bulk transfers. Proxy CPU = utime+stime of all its processes and
# threads from /proc/PID/stat across each phase.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/e2e
build=${E2E_BUILD:-build-release}
base=${E2E_PORT_BASE:-19400}
mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

# ---- parameters ------------------------------------------------------------------------
if [ "$mode" = quick ]; then
  rounds=${E2E_ROUNDS:-3}; wrk_s=1; paced_s=1; first_s=1
  streams=1000; streams_rounds=1  # memory hardly drifts; once is enough for a quick look
  gen_conns="16 256"; scaling_phases=" gen256 "
else
  rounds=${E2E_ROUNDS:-3}; wrk_s=2; paced_s=3; first_s=2
  streams=2000; streams_rounds=$rounds
  gen_conns="16 64 256"; scaling_phases=" gen16 gen64 gen256 ndjson32 sse_usage sse_plain "
fi
bulk_bytes=$((256 << 20))
stream_conns=64 paced_rate=3000 paced_conns=8 first_conns=16
gen_body='{"model":"llama3.2","prompt":"hi","stream":false}'
ndjson_body='{"model":"llama3.2","prompt":"hi"}'
chat='"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":true'
sse_usage_body="{$chat,\"stream_options\":{\"include_usage\":true}}"
sse_plain_body="{$chat}"

# ---- tools -----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${need[*]}" >&2
  apt_install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${need[@]}" >&2; }
  apt_install || { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2; apt_install; }
fi
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" --target tokentap fake_upstream >&2
client=$build/e2e_client
if [ ! -x "$client" ] || [ "$here/client.c" -nt "$client" ]; then
  cc -O2 -Wall -Wextra -o "$client" "$here/client.c"
fi
floor=$build/e2e_floor
if [ ! -x "$floor" ] || [ "$here/floor_proxy.c" -nt "$floor" ]; then
  cc -O2 -Wall -Wextra -o "$floor" "$here/floor_proxy.c"
fi

# ---- processes -------------------------------------------------------------------------
work=$(mktemp -d /tmp/tokentap-e2e.XXXXXX)
pids=()
client_pid=""  # the streams client while it runs in the background
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$client_pid" ] || kill "$client_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "${E2E_KEEP:-0}" = 1 ] || [ "$rc" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

up_port=$base tt1_port=$((base + 1)) tt2_port=$((base + 2))
ngx_port=$((base + 3)) hap_port=$((base + 4)) floor_port=$((base + 5)) ttb_port=$((base + 6))
for p in $up_port $tt1_port $tt2_port $ngx_port $hap_port $floor_port $ttb_port $((base + 11)) \
  $((base + 12)) $((base + 13)); do
  if ss -ltnH "sport = :$p" | grep -q .; then echo "port $p is in use" >&2; exit 1; fi
done

wait_port() {  # PORT NAME: wait until something accepts there
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$2 did not start on port $1; logs in $work" >&2
  exit 1
}

"$build/fake_upstream" --listen "127.0.0.1:$up_port" --threads 1 >"$work/fake.log" 2>&1 &
pids+=($!)
wait_port "$up_port" fake_upstream
start_tokentap() {  # PORT THREADS [BINARY METRICS_PORT]
  "${3:-$build/tokentap}" --listen "127.0.0.1:$1" \
    --metrics-listen "127.0.0.1:${4:-$((base + 10 + $2))}" \
    --upstream "http://127.0.0.1:$up_port" --threads "$2" >"$work/tokentap$2${3:+-base}.log" 2>&1 &
  pids+=($!)
}
start_tokentap "$tt1_port" 1; tt1_pid=$!
start_tokentap "$tt2_port" 2; tt2_pid=$!
ttf_pid=""
ttf_port=$((base + 7))
if [ -n "${E2E_FLEET:-}" ]; then
  fleet_args=()
  for i in $(seq 1 "$E2E_FLEET"); do
    "$build/fake_upstream" --listen "127.0.0.1:$((base + 19 + i))" --threads 1 \
      >"$work/fake$i.log" 2>&1 &
    pids+=($!)
    wait_port $((base + 19 + i)) "fake_upstream $i"
    fleet_args+=(--upstream "gpu$i=http://127.0.0.1:$((base + 19 + i))")
  done
  "$build/tokentap" --listen "127.0.0.1:$ttf_port" --metrics-listen "127.0.0.1:$((base + 14))" \
    --threads 1 "${fleet_args[@]}" >"$work/tokentap-fleet.log" 2>&1 &
  pids+=($!); ttf_pid=$!
fi
ttb_pid=""
if [ -n "${E2E_BASE_BIN:-}" ]; then
  start_tokentap "$ttb_port" 1 "$E2E_BASE_BIN" $((base + 13)); ttb_pid=$!
fi
for f in nginx.conf haproxy.cfg; do
  sed -e "s|@WORK@|$work|g" -e "s|@UPSTREAM_PORT@|$up_port|g" \
    -e "s|@PORT@|$([ $f = nginx.conf ] && echo "$ngx_port" || echo "$hap_port")|g" \
    "$here/$f.in" >"$work/$f"
done
mkdir -p "$work/nginx_body" "$work/nginx_proxy"
nginx -p "$work" -e "$work/nginx.err" -c "$work/nginx.conf" &
pids+=($!); ngx_pid=$!
haproxy -q -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!); hap_pid=$!
"$floor" "$floor_port" "$up_port" >"$work/floor.log" 2>&1 &
pids+=($!); floor_pid=$!
wait_port "$tt1_port" tokentap; wait_port "$tt2_port" "tokentap --threads 2"
[ -z "$ttb_pid" ] || wait_port "$ttb_port" "tokentap-base ($E2E_BASE_BIN)"
[ -z "$ttf_pid" ] || wait_port "$ttf_port" "tokentap-fleet"
wait_port "$ngx_port" nginx; wait_port "$hap_port" haproxy; wait_port "$floor_port" e2e_floor

targets=(direct floor tokentap)
[ -z "$ttb_pid" ] || targets+=(tokentap-base)
[ -z "$ttf_pid" ] || targets+=(tokentap-fleet)
targets+=(tokentap-t2 nginx haproxy)
if [ -n "${E2E_TARGETS:-}" ]; then read -r -a targets <<<"$E2E_TARGETS"; fi
declare -A port=([direct]=$up_port [floor]=$floor_port [tokentap]=$tt1_port
  [tokentap-t2]=$tt2_port [nginx]=$ngx_port [haproxy]=$hap_port [tokentap-base]=$ttb_port [tokentap-fleet]=$ttf_port)
procs() {  # TARGET: the PIDs whose CPU and memory count as that proxy's
  case $1 in
    direct) ;;
    floor) echo "$floor_pid" ;;
    tokentap) echo "$tt1_pid" ;;
    tokentap-t2) echo "$tt2_pid" ;;
    tokentap-base) echo "$ttb_pid" ;;
    tokentap-fleet) echo "$ttf_pid" ;;
    nginx) echo "$ngx_pid"; pgrep -P "$ngx_pid" || true ;;
    haproxy) echo "$hap_pid"; pgrep -P "$hap_pid" || true ;;
  esac
}
died() {  # PID
  echo "process $1 ($(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || echo gone)) died;" \
    "logs in $work" >&2
  tail -n 20 "$work"/*.log "$work"/*.err >&2
  exit 1
}
ticks() {  # TARGET [sys]: utime+stime (or stime alone) in clock ticks over its processes and threads
  local t=0 p v
  for p in $(procs "$1"); do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v sys="${2:-}" \
      '{print sys == "sys" ? $13 : $12 + $13}')
    [ -n "$v" ] || died "$p"
    t=$((t + v))
  done
  echo $t
}
rss_kib() {  # TARGET: VmRSS summed over its processes
  local r=0 p v
  for p in $(procs "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    [ -n "$v" ] || died "$p"
    r=$((r + v))
  done
  echo $r
}
alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || died "$p"; done; }
hz=$(getconf CLK_TCK)
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$target" "$2" "$3" >>"$results"; }
cpu_record() {  # PHASE TICKS0 COUNT [metric [sys]]: proxy CPU (or its stime) per unit of work
  [ "$target" = direct ] && return 0
  local t1; t1=$(ticks "$target" "${5:-}")
  record "$1" "${4:-cpu_us}" "$(awk -v a="$2" -v b="$t1" -v n="$3" -v hz="$hz" \
    'BEGIN { if (n > 0) printf "%.3f", (b - a) * 1e6 / hz / n; else print "nan" }')"
}

# ---- phases ----------------------------------------------------------------------------
to_ms() { awk '{ v = $1; u = $1; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1;
  printf "%.3f", v * f }'; }
phase_wrk() {  # PHASE CONNS PATH BODY HEADERS
  local c0 s0 out
  c0=$(ticks "$target"); s0=$(ticks "$target" sys)
  out=$(E2E_PATH=$3 E2E_BODY=$4 E2E_HEADERS=$5 wrk -t1 -c"$2" -d"${wrk_s}s" --latency \
    -s "$here/request.lua" "http://127.0.0.1:${port[$target]}$3")
  local reqs rps p50 p99 errs
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)
  errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++)
    n += $i} END {print n + 0}' <<<"$out")
  record "$1" rps "$rps"; record "$1" p50_ms "$p50"; record "$1" p99_ms "$p99"
  record "$1" errors "$errs"
  cpu_record "$1" "$c0" "$reqs"
  # The kernel's share (stime): the floor no user-space change can go below.
  cpu_record "$1" "$s0" "$reqs" cpu_sys_us sys
}
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
phase_paced() {
  local c0 out
  c0=$(ticks "$target")
  out=$(E2E_BODY=$gen_body "$client" paced "${port[$target]}" "$paced_rate" "$paced_conns" \
    "$paced_s")
  record paced rps "$(kv "$out" rate)"
  record paced p50_ms "$(awk -v u="$(kv "$out" p50_us)" 'BEGIN {printf "%.3f", u / 1000}')"
  record paced p99_ms "$(awk -v u="$(kv "$out" p99_us)" 'BEGIN {printf "%.3f", u / 1000}')"
  record paced p999_ms "$(awk -v u="$(kv "$out" p999_us)" 'BEGIN {printf "%.3f", u / 1000}')"
  record paced errors "$(( $(kv "$out" errors) + $(kv "$out" bad_status) ))"
  cpu_record paced "$c0" "$(kv "$out" count)"
}
phase_first_line() {
  local out
  out=$(E2E_BODY=$ndjson_body E2E_HEADERS='X-Fake-Tokens: 1|X-Fake-Delay-Ms: 50' \
    "$client" firstline "${port[$target]}" "$first_conns" "$first_s")
  record first_line p50_ms "$(awk -v u="$(kv "$out" p50_us)" 'BEGIN {printf "%.3f", u / 1000}')"
  record first_line p99_ms "$(awk -v u="$(kv "$out" p99_us)" 'BEGIN {printf "%.3f", u / 1000}')"
  record first_line errors "$(( $(kv "$out" errors) + $(kv "$out" bad_status) ))"
}
gib_k=$(awk -v b="$bulk_bytes" 'BEGIN {print b / 2^30 * 1000}')  # µs / (GiB·1000) = ms/GiB
phase_bulk() {
  local url=http://127.0.0.1:${port[$target]} c0 out code speed
  c0=$(ticks "$target")
  out=$(curl -s -o /dev/null -w '%{http_code} %{speed_download} %{size_download}' \
    "$url/fake/blob?size=$bulk_bytes")
  read -r code speed size <<<"$out"
  record bulk down_MBps "$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')"
  record bulk errors "$([ "$code" = 200 ] && [ "$size" = "$bulk_bytes" ] && echo 0 || echo 1)"
  cpu_record bulk "$c0" "$gib_k" down_cpu_ms_GiB
  c0=$(ticks "$target")
  out=$(curl -s -o /dev/null -X POST -T "$work/upload.bin" -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' -w '%{http_code} %{speed_upload}' \
    "$url/api/blobs/sha256:$(printf '%064d' 0)")
  read -r code speed <<<"$out"
  record bulk up_MBps "$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')"
  record bulk errors "$([ "$code" = 201 ] && echo 0 || echo 1)"
  cpu_record bulk "$c0" "$gib_k" up_cpu_ms_GiB
}
phase_streams() {  # the slow streams held open; memory of the proxy before and while
  [ "$target" = direct ] && return 0
  local before during out_file=$work/streams.out cpid
  before=$(rss_kib "$target")
  E2E_BODY=$ndjson_body E2E_HEADERS='X-Fake-Tokens: 1000000|X-Fake-Delay-Ms: 1000' \
    "$client" streams "${port[$target]}" "$streams" 1.5 >"$out_file" &
  cpid=$!; client_pid=$cpid
  for _ in $(seq 600); do grep -q '^ready' "$out_file" && break; sleep 0.05; done
  sleep 1.2  # every stream has passed at least one more line through the proxy
  during=$(rss_kib "$target")
  wait "$cpid" || true
  client_pid=""
  local open
  open=$(kv "$(grep '^ready' "$out_file")" open)
  record streams rss_before_MiB "$(awk -v b="$before" 'BEGIN {printf "%.1f", b / 1024}')"
  record streams rss_open_MiB "$(awk -v b="$during" 'BEGIN {printf "%.1f", b / 1024}')"
  record streams KiB_per_stream "$(awk -v a="$before" -v b="$during" -v n="${open:-0}" \
    'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "nan" }')"
  record streams errors "$((streams - ${open:-0}))"
  sleep 0.3  # let the closes drain before the next target
}

tokens32='X-Fake-Tokens: 32' chat_path=/v1/chat/completions
run_target_phase() {  # PHASE
  case $1 in
    gen*) phase_wrk "$1" "${1#gen}" /api/generate "$gen_body" "" ;;
    ndjson32) phase_wrk ndjson32 "$stream_conns" /api/generate "$ndjson_body" "$tokens32" ;;
    sse_usage) phase_wrk sse_usage "$stream_conns" "$chat_path" "$sse_usage_body" "$tokens32" ;;
    sse_plain) phase_wrk sse_plain "$stream_conns" "$chat_path" "$sse_plain_body" "$tokens32" ;;
    paced) phase_paced ;;
    bulk) phase_bulk ;;
    first_line) phase_first_line ;;
    streams) phase_streams ;;
  esac
}
phases=()
for c in $gen_conns; do phases+=("gen$c"); done
phases+=(ndjson32 sse_usage sse_plain paced bulk first_line streams)
if [ -n "${E2E_PHASES:-}" ]; then read -r -a phases <<<"$E2E_PHASES"; fi

head -c "$bulk_bytes" /dev/zero >"$work/upload.bin"
for target in "${targets[@]}"; do  # warm every path once; not recorded
  E2E_BODY=$gen_body wrk -t1 -c16 -d1s -s "$here/request.lua" \
    "http://127.0.0.1:${port[$target]}/api/generate" >/dev/null
done

start=$(date +%s)
for round in $(seq "$rounds"); do
  for phase in "${phases[@]}"; do
    for target in "${targets[@]}"; do
      # tokentap-t2 is there for throughput scaling only; the streams phase is slow.
      if [ "$target" = tokentap-t2 ] && [[ "$scaling_phases" != *" $phase "* ]]; then continue; fi
      # The floor bounds CPU and latency per request; paced and held streams add nothing to it.
      if [ "$target" = floor ] && [[ " paced streams " = *" $phase "* ]]; then continue; fi
      if [ "$phase" = streams ] && [ "$round" -gt "$streams_rounds" ]; then continue; fi
      run_target_phase "$phase"
      alive
    done
  done
  echo "round $round done after $(( $(date +%s) - start )) s" >&2
done

# ---- report ----------------------------------------------------------------------------
meta=$work/meta.txt
{
  echo "mode=$mode rounds=$rounds elapsed_s=$(( $(date +%s) - start ))"
  cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | tr ' ' '_')
  echo "kernel=$(uname -r) cpus=$(nproc) cpu_model=$cpu_model"
  tt_version=$("$build/tokentap" --version 2>&1 | head -1 | tr ' ' '_')
  echo "tokentap=$tt_version@$(git rev-parse --short HEAD)"
  [ -z "$ttb_pid" ] || echo "tokentap_base=$E2E_BASE_BIN"
  echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
    "haproxy=$(haproxy -v | awk 'NR == 1 {print $3}')" \
    "wrk=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')" \
    "curl=$(curl --version | awk 'NR == 1 {print $2}')"
  echo "wrk_s=$wrk_s paced_s=$paced_s paced_rate=$paced_rate paced_conns=$paced_conns" \
    "first_s=$first_s first_conns=$first_conns stream_conns=$stream_conns" \
    "bulk_MiB=$((bulk_bytes >> 20)) streams=$streams streams_rounds=$streams_rounds"
} >"$meta"
cp "$results" "$here/last-run.tsv"
python3 "$here/report.py" "$results" "$meta" | tee "$here/last-run.md"
