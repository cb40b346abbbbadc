#!/usr/bin/env bash
# Install dependencies, build a release tokentap and start it. Extra arguments go to tokentap,
# e.g. tools/run.sh --upstream http://127.0.0.1:11434 --listen :11435
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build-release -j"$(nproc)" --target tokentap
exec build-release/tokentap "$@"
