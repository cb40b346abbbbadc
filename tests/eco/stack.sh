# Sourced by the eco test scripts: process bookkeeping, waiting, and the common stack of the
# fake upstream plus tokentap (2 shards) on free 127.0.0.1 ports.
#   start_stack TAG   → sets $work, $upstream_port, $proxy_port, $metrics_port
# Needs $tokentap_bin and $fake_bin. Every process started is killed on exit; on failure the
# tail of each log is printed. Exit 77 means skipped and prints no logs.

pids=()
work=""
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$work" ]; then
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
      for log in "$work"/*.log; do echo "--- $log"; tail -n 20 "$log"; done
    fi
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for WHAT SECONDS COMMAND...: retries COMMAND every 0.1 s.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.1
  done
}

start_stack() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/tokentap-$1.XXXXXX")
  "$fake_bin" --listen 127.0.0.1:0 --threads 1 >"$work/fake.log" 2>&1 &
  pids+=($!)
  wait_for "fake_upstream to listen" 10 grep -q '^listening ' "$work/fake.log"
  upstream_port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/fake.log")
  proxy_port=$(free_port)
  metrics_port=$(free_port)
  # Two shards: every counter read back is a sum over both.
  "$tokentap_bin" --listen "127.0.0.1:$proxy_port" --metrics-listen "127.0.0.1:$metrics_port" \
    --upstream "http://127.0.0.1:$upstream_port" --threads 2 >"$work/tokentap.log" 2>&1 &
  pids+=($!)
  wait_for "tokentap's banner" 10 grep -q 'listening on' "$work/tokentap.log"
  wait_for "tokentap /healthz" 10 curl -sf "http://127.0.0.1:$metrics_port/healthz"
}
