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

# Training: LeNet-5 on Fashion-MNIST (dataset-fashion-mnist), then the trained executable
# classifies a few test images.  NNCC_DEMO_EPOCHS=N changes the number of epochs (default 6).
data=/usr/share/datasets/fashion-mnist
epochs=${NNCC_DEMO_EPOCHS:-6}
echo
echo "== nncc examples/fmnist_lenet5.nn -o $out/fmnist_lenet5"
"$nncc" "$root/examples/fmnist_lenet5.nn" -o "$out/fmnist_lenet5"
echo "== $out/fmnist_lenet5 train ... --epochs $epochs"
"$out/fmnist_lenet5" train --data image="$data/train-images-idx3-ubyte.gz" \
    --data label="$data/train-labels-idx1-ubyte.gz" \
    --test image="$data/t10k-images-idx3-ubyte.gz" --test label="$data/t10k-labels-idx1-ubyte.gz" \
    --epochs "$epochs" --batch 64 --seed 1 --save "$out/fmnist_lenet5.safetensors" \
    --log "$out/fmnist_loss.csv"
echo "== the trained model on the first 8 test images"
/usr/bin/python3 - "$data" "$out" <<'PY'
import gzip, sys
import numpy as np
data, out = sys.argv[1], sys.argv[2]
raw = gzip.open(f"{data}/t10k-images-idx3-ubyte.gz").read()
x = np.frombuffer(raw, np.uint8, offset=16)[:8 * 784].reshape(8, 1, 28, 28).astype(np.float32) / 255
np.save(f"{out}/test8.npy", x)
PY
"$out/fmnist_lenet5" --weights "$out/fmnist_lenet5.safetensors" --input image="$out/test8.npy" \
    --output logits="$out/test8_logits.npy"
/usr/bin/python3 - "$data" "$out" <<'PY'
import gzip, sys
import numpy as np
data, out = sys.argv[1], sys.argv[2]
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]
truth = np.frombuffer(gzip.open(f"{data}/t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)[:8]
pred = np.load(f"{out}/test8_logits.npy").argmax(1)
for i, (p, t) in enumerate(zip(pred, truth)):
    print(f"  test image {i}: predicted {names[p]:<12} true {names[t]:<12} {'ok' if p == t else 'WRONG'}")
PY
