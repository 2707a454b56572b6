#!/usr/bin/env bash
# Configures and builds nncc into build/ (or $NNCC_BUILD_DIR). Extra arguments go to cmake,
# e.g. scripts/build.sh -DNNCC_SANITIZE=ON.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NNCC_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja "$@" >/dev/null
ninja -C "$build" | tail -n 1
