#!/usr/bin/env bash
# First end-to-end figure (issue 2): non-streaming POST /api/generate through tokentap and
# through nginx, same upstream, same run, alternating rounds. The upstream is an nginx
# `return 200` with a final /api/generate body, so the proxy under test is the only variable.
# Prints req/s and proxy CPU µs per request (utime+stime from /proc, all threads).
# Usage: bench/e2e_quick.sh [build-dir] [connections] [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
conns=${2:-16}
secs=${3:-3}
rounds=${4:-3}
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  echo "needs wrk and nginx: apt-get install -y wrk nginx-light" >&2; exit 2; }
[ -x "$build/tokentap" ] || {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target tokentap >/dev/null; }
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) $tt_pid 2>/dev/null; rm -rf "$work"' EXIT
body='{"model":"llama3.2","created_at":"2026-08-24T14:00:11.56980541Z","response":"The sky is blue because of Rayleigh scattering.","done":true,"done_reason":"stop","total_duration":557637585,"load_duration":14213406,"prompt_eval_count":46,"prompt_eval_duration":21418000,"eval_count":75,"eval_duration":519493000}'
cat >"$work/up.conf" <<CONF
worker_processes 1; daemon on; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19434;
    location / { default_type "application/json; charset=utf-8"; return 200 '$body'; } } }
CONF
cat >"$work/px.conf" <<CONF
worker_processes 1; daemon on; pid $work/px.pid; error_log $work/px.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:19434; keepalive 64; }
  server { listen 127.0.0.1:19436;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; } } }
CONF
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"llama3.2","prompt":"Why is the sky blue?","stream":false}'
wrk.headers["Content-Type"] = "application/json"
LUA
nginx -c "$work/up.conf"
nginx -c "$work/px.conf"
"$build/tokentap" --listen 127.0.0.1:19435 --metrics-listen 127.0.0.1:19837 \
  --upstream http://127.0.0.1:19434 --threads 1 >/dev/null &
tt_pid=$!
sleep 0.5
nginx_worker=$(pgrep -P "$(cat "$work/px.pid")")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "kernel $(uname -r), $(nproc) cores, wrk -t1 -c$conns -d${secs}s, 1 worker/shard each"
printf "%-8s %-6s %10s %14s %10s\n" target round req/s cpu_us/req p99
for r in $(seq 1 "$rounds"); do
  for t in "tokentap 19435 $tt_pid" "nginx 19436 $nginx_worker"; do
    set -- $t
    c0=$(ticks "$3")
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "http://127.0.0.1:$2/api/generate")
    c1=$(ticks "$3")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    us=$(awk -v a="$c0" -v b="$c1" -v n="$reqs" -v hz="$hz" 'BEGIN {printf "%.2f", (b-a)*1e6/hz/n}')
    printf "%-8s %-6s %10s %14s %10s\n" "$1" "$r" "$rps" "$us" "$p99"
  done
done
