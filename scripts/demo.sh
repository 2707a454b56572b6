#!/usr/bin/env bash
# The first command of the README: installs what is needed, builds nncc, and shows it at work:
# AlexNet's layer table, then LeNet-5 compiled to a shared library + header and run from C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
export NNCC_BUILD_DIR=${NNCC_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
nncc="$NNCC_BUILD_DIR/nncc"
echo
echo "== nncc examples/alexnet.nn --summary"
"$nncc" "$root/examples/alexnet.nn" --summary
out="$NNCC_BUILD_DIR/demo"
mkdir -p "$out"
echo
echo "== nncc examples/lenet5.nn -o $out/lenet5.so   (and lenet5.h beside it)"
"$nncc" "$root/examples/lenet5.nn" -o "$out/lenet5.so"
cc -O2 -I"$out" "$root/examples/c/lenet5_demo.c" "$out/lenet5.so" -Wl,-rpath,"$out" -o "$out/lenet5_demo"
echo "== $out/lenet5_demo"
"$out/lenet5_demo"
