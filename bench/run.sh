#!/usr/bin/env bash
# bench/run.sh - the benchmark in one command: sets itself up, then runs bench/run.py.
#
#   bench/run.sh [--quick] [run.py options...]      (bench/run.sh --help lists them)
#
# Setup, each step skipped when already done (so a second run needs no network):
#   1. the Debian packages: scripts/install-deps.sh --bench (the build and test packages plus
#      python3-matplotlib for the chart and nodejs + npm for ONNX Runtime),
#   2. ONNX Runtime: `npm install onnxruntime-node` into bench/.onnx (git-ignored) with
#      ONNXRUNTIME_NODE_INSTALL=skip (the package's install script would otherwise try to
#      download CUDA parts); a failure is reported and the run goes on without ORT,
#   3. nncc: a release build in $NNCC_BUILD_DIR (default build/) when there is none.
# NNCC_BENCH_NO_SETUP=1 skips 1 and 2.  The benchmark runs under Debian's /usr/bin/python3
# (torch + numpy + matplotlib), whatever python3 comes first on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NNCC_BUILD_DIR:-$root/build}
for a in "$@"; do
  if [[ "$a" == "--help" || "$a" == "-h" || "$a" == "--dry-run" ]]; then
    exec /usr/bin/python3 "$root/bench/run.py" "$@"
  fi
done
if [[ "${NNCC_BENCH_NO_SETUP:-}" != 1 ]]; then
  "$root/scripts/install-deps.sh" --bench
  ort="$root/bench/.onnx"
  if [[ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]]; then
    echo "bench: installing onnxruntime-node into bench/.onnx (npm)"
    mkdir -p "$ort"
    [[ -f "$ort/package.json" ]] || echo '{"private": true}' > "$ort/package.json"
    if ! (cd "$ort" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error \
            onnxruntime-node >/dev/null); then
      echo "bench: npm install onnxruntime-node failed; running without ONNX Runtime" >&2
    fi
  fi
fi
if [[ ! -x "$build/nncc" ]]; then
  echo "bench: building nncc in $build"
  NNCC_BUILD_DIR="$build" "$root/scripts/build.sh"
fi
exec /usr/bin/python3 "$root/bench/run.py" --nncc "$build/nncc" "$@"
