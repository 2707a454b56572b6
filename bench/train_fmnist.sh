#!/usr/bin/env bash
# bench/train_fmnist.sh [EPOCHS] - LeNet-5 on Fashion-MNIST: nncc's standalone trainer, then PyTorch,
# with the same settings (Adam lr 0.001, batch 64, seed 1, the last partial batch kept, one
# thread each): nncc's trainer for all epochs, then PyTorch's (bench/train_fmnist_torch.py).
# Run it on a quiet machine: the two runs are sequential, so a load that changes between them
# moves the ratio.  Prints each epoch's wall time and test accuracy for both, then the ratio of the median
# epoch times (PyTorch / nncc).  Needs a build (scripts/build.sh) and python3-torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
epochs=${1:-10}
build=${NNCC_BUILD_DIR:-$root/build}
data=/usr/share/datasets/fashion-mnist
out=$(mktemp -d /tmp/nncc-fmnist.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$build/nncc" "$root/examples/fmnist_lenet5.nn" -o "$out/lenet5"
export OMP_NUM_THREADS=1 NNCC_NUM_THREADS=1
"$out/lenet5" train --data image="$data/train-images-idx3-ubyte.gz" \
    --data label="$data/train-labels-idx1-ubyte.gz" \
    --test image="$data/t10k-images-idx3-ubyte.gz" --test label="$data/t10k-labels-idx1-ubyte.gz" \
    --epochs "$epochs" --batch 64 --lr 0.001 --seed 1 --save "$out/w.safetensors" 2>&1 \
    | tr '\r' '\n' | grep -E '^epoch [0-9]+/[0-9]+:' | tee "$out/nncc.txt"
/usr/bin/python3 "$root/bench/train_fmnist_torch.py" --epochs "$epochs" --threads 1 --seed 1 \
    | tee "$out/torch.txt"
/usr/bin/python3 - "$out/nncc.txt" "$out/torch.txt" <<'PY'
import re, statistics, sys
n = open(sys.argv[1]).read()
t = open(sys.argv[2]).read()
nt = [float(x) for x in re.findall(r"([0-9.]+) s,", n)]
na = [float(x) for x in re.findall(r"accuracy ([0-9.]+)%", n)]
tt = [float(x) for x in re.findall(r"([0-9.]+) s,", t)]
ta = [float(x) for x in re.findall(r"accuracy ([0-9.]+)%", t)]
print(f"nncc   : median {statistics.median(nt):.1f} s/epoch, final accuracy {na[-1]:.2f}%, best {max(na):.2f}%")
print(f"PyTorch: median {statistics.median(tt):.1f} s/epoch, final accuracy {ta[-1]:.2f}%, best {max(ta):.2f}%")
print(f"time per epoch PyTorch / nncc = {statistics.median(tt) / statistics.median(nt):.2f}x, "
      f"accuracy difference {na[-1] - ta[-1]:+.2f} points")
PY
