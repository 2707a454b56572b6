#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every lit test through ctest.
# NNCC_SANITIZE=1 builds and tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (in build-san/); CI runs both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" --fuzz   # clang-19 + libFuzzer too: ctest's fuzz-smoke
unset OPENBLAS_CORETYPE   # the reference's BLAS must see this CPU as it is (TOOLCHAIN.md)
if [[ "${NNCC_SANITIZE:-0}" == 1 ]]; then
  export NNCC_BUILD_DIR=${NNCC_BUILD_DIR:-$root/build-san}
  "$root/scripts/build.sh" -DNNCC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
else
  export NNCC_BUILD_DIR=${NNCC_BUILD_DIR:-$root/build}
  "$root/scripts/build.sh"
fi
cd "$NNCC_BUILD_DIR"
ctest --output-on-failure "$@"
