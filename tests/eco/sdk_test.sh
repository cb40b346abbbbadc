#!/usr/bin/env bash
# The official Ollama, OpenAI and Anthropic JS SDKs against the fake upstream, directly and
# through tokentap (tests/eco/sdk/sdk_test.mjs says what is compared), first with one upstream,
# then with three (`--upstream gpuN=URL`, issue 16), where requests must reach at least two:
#   sdk_test.sh TOKENTAP_BINARY FAKE_UPSTREAM_BINARY CACHE_DIR
# The SDKs pinned in tests/eco/sdk/package-lock.json are installed with `npm ci` into
# CACHE_DIR (under the build tree) once, and again only when the lock file changes.
# Exit 77 (ctest: skipped) when node/npm are missing or the npm registry cannot be reached.
set -euo pipefail

tokentap_bin=${1:?usage: sdk_test.sh TOKENTAP FAKE_UPSTREAM CACHE_DIR}
fake_bin=${2:?usage: sdk_test.sh TOKENTAP FAKE_UPSTREAM CACHE_DIR}
cache=${3:?usage: sdk_test.sh TOKENTAP FAKE_UPSTREAM CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
node_major_min=20  # the pinned SDKs' engines; global fetch and ReadableStream

for tool in node npm curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (Debian: nodejs npm curl python3)"
    exit 77
  fi
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < node_major_min)); then
  echo "SKIP: node $node_major is older than $node_major_min"
  exit 77
fi

# --- SDKs, cached across runs ------------------------------------------------------------------
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)  # absolute: npm runs in it
lock_sum=$(cat "$here/sdk/package.json" "$here/sdk/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$cache/.lock-sum" 2>/dev/null)" != "$lock_sum" ] ||
  [ ! -d "$cache/node_modules" ]; then
  cp "$here/sdk/package.json" "$here/sdk/package-lock.json" "$cache/"
  rm -f "$cache/.lock-sum"
  if ! (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error \
          --cache "$cache/npm-cache" >"$cache/npm-ci.log" 2>&1); then
    tail -n 20 "$cache/npm-ci.log"
    echo "SKIP: npm ci failed (is the npm registry reachable?)"
    exit 77
  fi
  echo "$lock_sum" >"$cache/.lock-sum"
fi
# The script must sit next to node_modules for ES module resolution.
cp "$here/sdk/sdk_test.mjs" "$cache/sdk_test.mjs"

# --- processes -------------------------------------------------------------------------------
# shellcheck source=tests/eco/stack.sh
source "$(dirname "$0")/stack.sh"
start_stack sdk-test

echo "--- one upstream"
node "$cache/sdk_test.mjs" "http://127.0.0.1:$upstream_port" "http://127.0.0.1:$proxy_port" \
  "http://127.0.0.1:$metrics_port"

# --- a fleet: three fake upstreams behind one tokentap (issue 16) ------------------------------
# The same SDK calls through `--upstream gpu0=... --upstream gpu1=... --upstream gpu2=...`,
# compared with the first fake (every fake is deterministic, so all answer the same bytes).
# Sequential requests tie on load and are spread round-robin, so at least two backends must
# have served some (tokentap_backend_requests_total).
fleet_size=3
fleet_args=()
for ((i = 0; i < fleet_size; i++)); do
  "$fake_bin" --listen 127.0.0.1:0 --threads 1 >"$work/fake-gpu$i.log" 2>&1 &
  pids+=($!)
done
for ((i = 0; i < fleet_size; i++)); do
  wait_for "fake_upstream gpu$i to listen" 10 grep -q '^listening ' "$work/fake-gpu$i.log"
  port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/fake-gpu$i.log")
  fleet_args+=(--upstream "gpu$i=http://127.0.0.1:$port")
done
fleet_proxy_port=$(free_port)
fleet_metrics_port=$(free_port)
fleet_metrics="http://127.0.0.1:$fleet_metrics_port/metrics"
"$tokentap_bin" --listen "127.0.0.1:$fleet_proxy_port" \
  --metrics-listen "127.0.0.1:$fleet_metrics_port" "${fleet_args[@]}" --threads 2 \
  >"$work/tokentap-fleet.log" 2>&1 &
pids+=($!)
wait_for "fleet tokentap's banner" 10 grep -q 'listening on' "$work/tokentap-fleet.log"
wait_for "fleet tokentap /healthz" 10 curl -sf "http://127.0.0.1:$fleet_metrics_port/healthz"
backends_up() {
  [ "$(curl -sf "$fleet_metrics" | grep -c '^tokentap_backend_up{backend="gpu[0-9]*"} 1$')" \
    -eq "$fleet_size" ]
}
wait_for "every fleet backend up on /metrics" 10 backends_up

echo "--- $fleet_size upstreams"
node "$cache/sdk_test.mjs" "http://127.0.0.1:$upstream_port" "http://127.0.0.1:$fleet_proxy_port" \
  "http://127.0.0.1:$fleet_metrics_port"

# Requests served per backend, summed over status: "gpu0 12" lines.
served=$(curl -sf "$fleet_metrics" | awk '
  /^tokentap_backend_requests_total\{/ {
    name = $0; sub(/.*backend="/, "", name); sub(/".*/, "", name); n[name] += $NF }
  END { for (b in n) print b, n[b] }' | sort)
echo "requests by backend: $(echo "$served" | tr '\n' ' ')"
serving=$(echo "$served" | awk '$1 ~ /^gpu[0-9]+$/ && $2 > 0' | wc -l)
((serving >= 2)) || fail "requests reached $serving of $fleet_size backends, want at least 2"
echo "PASS"
