#!/usr/bin/env bash
# Installs the Debian 12 packages that nncc's build and tests need. Idempotent: when every
# package is already installed it does nothing (and needs no network).
#   build:  cmake ninja-build flex bison llvm-19-dev (libLLVM-19, headers) gcc (the linker driver)
#   tests:  llvm-19-tools (FileCheck, lit, not), python3-torch + python3-numpy (the reference),
#           libopenblas0-pthread (or PyTorch falls back on the slow reference BLAS),
#           valgrind (runtime/workspace_reuse.test)
#   train:  zlib1g-dev (the trainer's gzip IDX reader; executables link -lz),
#           dataset-fashion-mnist (the example data: /usr/share/datasets/fashion-mnist)
#   mpi:    openmpi-bin (mpirun) libopenmpi-dev (mpi.h, mpicc: nncc --mpi and the MPI tests;
#           rebuild nncc after installing it so that libnncc_rt_mpi.a is built)
#   fuzz:   clang-19 libclang-rt-19-dev (with --fuzz; scripts/test.sh passes it, for ctest's
#           fuzz-smoke)
#   bench:  python3-matplotlib (the chart), time (GNU time: peak memory), nodejs and npm (when no npm is on PATH) for ONNX
#           Runtime, which bench/run.sh then installs from npm (with --bench; bench/run.sh passes it)
set -euo pipefail
packages=(gcc libc6-dev cmake ninja-build flex bison llvm-19-dev llvm-19-tools zlib1g-dev
          libzstd-dev python3-torch python3-numpy libopenblas0-pthread valgrind
          dataset-fashion-mnist openmpi-bin libopenmpi-dev)
for opt in "$@"; do
  case "$opt" in
    --fuzz) packages+=(clang-19 libclang-rt-19-dev) ;;
    --bench) packages+=(python3-matplotlib time nodejs)
             # a nodejs from elsewhere (nodesource) brings its own npm; Debian's npm would
             # conflict with it, so it is asked for only when there is no npm at all
             command -v npm >/dev/null || packages+=(npm) ;;
    *) echo "install-deps: unknown option $opt (--fuzz, --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
