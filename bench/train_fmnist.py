"""train_fmnist.py - LeNet-5 on Fashion-MNIST, nncc and PyTorch side by side in one process,
epochs interleaved (nncc epoch 1, PyTorch epoch 1, nncc epoch 2, ...) so that both see the
same machine load.  Same settings on both sides: Adam lr 0.001, batch 64, a seeded shuffle
each epoch, the last partial batch kept, one thread.  nncc runs the shared library that
`nncc examples/fmnist_lenet5.nn -o lenet5.so` builds, through its C interface
(fmnist_lenet5_train_step, _forward) with ctypes; PyTorch runs bench/train_fmnist_torch.py's
LeNet5.  Prints each epoch's wall time and test accuracy for both, then the median epoch
times, their ratio and the accuracies.

    /usr/bin/python3 bench/train_fmnist.py [--epochs 10] [--nncc build/nncc]
"""
import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "exec", "train"))
from train_fmnist_torch import D, LeNet5, idx  # noqa: E402
import nncc_ctypes  # noqa: E402


def nncc_accuracy(model, xte, yte):
    f = model.lib.fmnist_lenet5_forward
    f.restype = ctypes.c_int
    logits = np.zeros((len(xte), 10), np.float32)
    rc = f(ctypes.c_void_p(model.m), ctypes.c_int64(len(xte)), xte.ctypes.data_as(ctypes.c_void_p),
           logits.ctypes.data_as(ctypes.c_void_p))
    if rc:
        raise nncc_ctypes.NnccError(rc, model.last_error())
    return float((logits.argmax(1) == yte).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--nncc", default=os.path.join(ROOT, "build", "nncc"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.environ["NNCC_NUM_THREADS"] = "1"
    torch.manual_seed(a.seed)
    xtr = np.ascontiguousarray(idx(f"{D}/train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255)
    ytr = idx(f"{D}/train-labels-idx1-ubyte.gz").astype(np.int32)
    xte = np.ascontiguousarray(idx(f"{D}/t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255)
    yte = idx(f"{D}/t10k-labels-idx1-ubyte.gz").astype(np.int32)

    d = tempfile.mkdtemp(prefix="nncc-fmnist-")
    so = os.path.join(d, "lenet5.so")
    nncc_ctypes.build(a.nncc, os.path.join(ROOT, "examples", "fmnist_lenet5.nn"), so)
    model = nncc_ctypes.Model(so, "fmnist_lenet5", ["image"], ["label"])

    net = LeNet5()
    opt = torch.optim.Adam(net.parameters(), lr=0.001)
    txtr, tytr = torch.from_numpy(xtr), torch.from_numpy(ytr.astype(np.int64))
    txte, tyte = torch.from_numpy(xte), torch.from_numpy(yte.astype(np.int64))
    rng = np.random.default_rng(a.seed)
    times = {"nncc": [], "torch": []}
    acc = {"nncc": [], "torch": []}
    n = len(xtr)
    for e in range(1, a.epochs + 1):
        perm = rng.permutation(n)
        t0 = time.perf_counter()
        for i in range(0, n, a.batch):
            j = perm[i:i + a.batch]
            model.train_step(len(j), {"image": xtr[j]}, {"label": ytr[j]})
        times["nncc"].append(time.perf_counter() - t0)
        acc["nncc"].append(nncc_accuracy(model, xte, yte))

        tperm = torch.randperm(n)
        t0 = time.perf_counter()
        net.train()
        for i in range(0, n, a.batch):
            j = tperm[i:i + a.batch]
            opt.zero_grad()
            F.cross_entropy(net(txtr[j]), tytr[j]).backward()
            opt.step()
        times["torch"].append(time.perf_counter() - t0)
        net.eval()
        with torch.no_grad():
            acc["torch"].append(float((net(txte).argmax(1) == tyte).float().mean()))
        print(f"epoch {e}: nncc {times['nncc'][-1]:.1f} s, accuracy {100 * acc['nncc'][-1]:.2f}%   "
              f"PyTorch {times['torch'][-1]:.1f} s, accuracy {100 * acc['torch'][-1]:.2f}%", flush=True)
    model.close()
    mn, mt = statistics.median(times["nncc"]), statistics.median(times["torch"])
    print(f"nncc   : median {mn:.2f} s/epoch, final accuracy {100 * acc['nncc'][-1]:.2f}%, "
          f"best {100 * max(acc['nncc']):.2f}%")
    print(f"PyTorch: median {mt:.2f} s/epoch, final accuracy {100 * acc['torch'][-1]:.2f}%, "
          f"best {100 * max(acc['torch']):.2f}%")
    print(f"time per epoch PyTorch / nncc = {mt / mn:.2f}x; final accuracy nncc - PyTorch = "
          f"{100 * (acc['nncc'][-1] - acc['torch'][-1]):+.2f} points")


if __name__ == "__main__":
    main()
