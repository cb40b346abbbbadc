#!/usr/bin/env bash
# Installs every Debian package tokentap needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so CI pays only for what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  liburing-dev node-llhttp libsimdjson-dev libfmt-dev
  libtomlplusplus-dev  # toml++: the --config FILE parser (app layer)
  libssl-dev      # libcrypto: SHA-256 of API key secrets and CRYPTO_memcmp (auth layer)
  libsqlite3-dev  # SQLite: the usage ledger in --state-dir (ledger layer)
  libgtest-dev libbenchmark-dev
  curl python3
  clang libclang-rt-dev
  prometheus  # promtool: tests check the /metrics exposition with `promtool check metrics`
  # tests/eco/sdk_test.sh runs the official JS SDKs and needs node >= 20 with npm (NodeSource's
  # nodejs ships both). Debian's own `npm` package is not listed: it conflicts with that
  # nodejs, and with bookworm's node 18 the test skips itself (exit 77) anyway.
  nodejs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
