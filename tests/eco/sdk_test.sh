#!/usr/bin/env bash
# The official Ollama, OpenAI and Anthropic JS SDKs against the fake upstream, directly and
# through tokentap (tests/eco/sdk/sdk_test.mjs says what is compared):
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

node "$cache/sdk_test.mjs" "http://127.0.0.1:$upstream_port" "http://127.0.0.1:$proxy_port" \
  "http://127.0.0.1:$metrics_port"
echo "PASS"
