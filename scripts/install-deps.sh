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
set -euo pipefail
packages=(gcc libc6-dev cmake ninja-build flex bison llvm-19-dev llvm-19-tools zlib1g-dev
          libzstd-dev python3-torch python3-numpy libopenblas0-pthread valgrind
          dataset-fashion-mnist openmpi-bin libopenmpi-dev)
if [[ "${1:-}" == "--fuzz" ]]; then packages+=(clang-19 libclang-rt-19-dev); fi

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
