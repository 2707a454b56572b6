"""standalone_vs_torch.py --nncc NNCC --dir DIR: the standalone trainer against PyTorch, step
for step.

Compiles test/runtime/Inputs/tiny_train.nn into an executable, makes its data
(test/runtime/Inputs/train_data.py) and random starting weights, and trains it with
`./tiny train --weights w0 ...` for a few epochs with the documented shuffle and
mini-batches (the last one partial).  PyTorch then trains the same module from the same
weights on the same IDX data (ubyte / 255), visiting the samples in the permutation
docs/training.md defines (test/runtime/Inputs/shuffle.py), with torch.optim.SGD.  Every
step's loss (the --log CSV) and every final weight must agree to 1e-4 (relative to the
tensor's largest magnitude).  Prints one line per check and "N passed, M failed"."""
import argparse
import csv
import gzip
import importlib.util
import os
import struct
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


st = load_module("st_io", os.path.join(ROOT, "test", "exec", "conformance", "st.py"))
shuffle = load_module("shuffle", os.path.join(ROOT, "test", "runtime", "Inputs", "shuffle.py"))


def read_idx(path):
    b = open(path, "rb").read()
    if b[:2] == b"\x1f\x8b":
        b = gzip.decompress(b)
    rank = b[3]
    dims = struct.unpack(">%dI" % rank, b[4:4 + 4 * rank])
    return np.frombuffer(b[4 + 4 * rank:], np.uint8).reshape(dims)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.h = torch.nn.Sequential(torch.nn.Linear(4, 8))
        self.logits = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.logits(torch.tanh(self.h(x.flatten(1))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    d = args.dir
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(1)
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "runtime", "Inputs", "train_data.py"), d], check=True)
    exe = os.path.join(d, "tiny")
    subprocess.run([args.nncc, os.path.join(ROOT, "test", "runtime", "Inputs", "tiny_train.nn"), "-o", exe], check=True)

    rng = np.random.default_rng(3)
    w0 = {"h.0.weight": rng.uniform(-0.5, 0.5, (8, 4)), "h.0.bias": rng.uniform(-0.5, 0.5, 8),
          "logits.weight": rng.uniform(-0.5, 0.5, (3, 8)), "logits.bias": rng.uniform(-0.5, 0.5, 3)}
    w0 = {k: v.astype(np.float32) for k, v in w0.items()}
    st.save(os.path.join(d, "w0.safetensors"), w0)

    epochs, batch, lr, seed = 3, 16, 0.3, 5
    images = os.path.join(d, "train-images-idx3-ubyte.gz")
    labels = os.path.join(d, "train-labels-idx1-ubyte")
    subprocess.run([exe, "train", "--data", "x=" + images, "--data", "y=" + labels,
                    "--epochs", str(epochs), "--batch", str(batch), "--lr", str(lr),
                    "--seed", str(seed), "--weights", os.path.join(d, "w0.safetensors"),
                    "--save", os.path.join(d, "w1.safetensors"), "--log", os.path.join(d, "loss.csv"),
                    "--progress", "0"], check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.reader(open(os.path.join(d, "loss.csv"))))[1:]
    nncc_loss = np.array([float(r[2]) for r in rows])
    w1 = st.load(os.path.join(d, "w1.safetensors"))

    x = torch.from_numpy(read_idx(images).astype(np.float32)).reshape(-1, 1, 2, 2) / 255
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    n = x.shape[0]
    model = Tiny()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in w0.items()}, strict=True)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    torch_loss = []
    for e in range(epochs):
        perm = torch.tensor(shuffle.permutation(n, seed, e))
        for first in range(0, n, batch):
            idx = perm[first:first + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            torch_loss.append(loss.item())
    torch_loss = np.array(torch_loss)

    passed = failed = 0

    def check(name, ok, detail):
        nonlocal passed, failed
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
        passed += ok
        failed += not ok

    steps = epochs * ((n + batch - 1) // batch)
    check("steps", len(nncc_loss) == len(torch_loss) == steps,
          "nncc %d, torch %d, expected %d" % (len(nncc_loss), len(torch_loss), steps))
    if len(nncc_loss) == len(torch_loss):
        err = float(np.max(np.abs(nncc_loss - torch_loss) / np.maximum(np.abs(torch_loss), 1e-3)))
        check("per-step loss", err <= 1e-4, "max relative error %.2e over %d steps (first %.6f, last %.6f)"
              % (err, len(torch_loss), torch_loss[0], torch_loss[-1]))
    sd = model.state_dict()
    for name in sorted(w0):
        a, b = np.asarray(w1[name]), sd[name].numpy()
        err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))
        check("weight " + name, a.shape == b.shape and err <= 1e-4, "relative error %.2e" % err)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
