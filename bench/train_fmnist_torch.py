"""train_fmnist_torch.py - the PyTorch side of the Fashion-MNIST comparison: the same LeNet-5
as examples/fmnist_lenet5.nn, the same settings (Adam lr 0.001, batch 64, shuffled each
epoch, the last partial batch kept), one thread; prints the wall time of each epoch and the
test accuracy after it.

    /usr/bin/python3 bench/train_fmnist_torch.py --epochs 5 [--threads 1]
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

D = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(400, 120)
        self.f6 = nn.Linear(120, 84)
        self.logits = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c3(x)), 2)
        x = F.relu(self.f5(torch.flatten(x, 1)))
        return self.logits(F.relu(self.f6(x)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr = torch.from_numpy(idx(f"{D}/train-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(idx(f"{D}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(idx(f"{D}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    yte = torch.from_numpy(idx(f"{D}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    net = LeNet5()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    for e in range(1, a.epochs + 1):
        t0 = time.time()
        perm = torch.randperm(len(xtr))
        net.train()
        for i in range(0, len(xtr), a.batch):
            j = perm[i:i + a.batch]
            opt.zero_grad()
            F.cross_entropy(net(xtr[j]), ytr[j]).backward()
            opt.step()
        dt = time.time() - t0
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {e}: {dt:.1f} s, test accuracy {100 * acc:.2f}%", flush=True)


if __name__ == "__main__":
    main()
