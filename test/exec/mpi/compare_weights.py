"""Compares two safetensors weight files tensor by tensor.

    compare_weights.py A.safetensors B.safetensors [--rtol 1e-4] [--label TEXT]

For each tensor: the relative difference max|a - b| / max|b| (the tensor's scale: an
element-wise ratio means nothing for weights near zero).  Prints the largest one and PASS when
every tensor has the same names and shapes and its difference is at most rtol, else FAIL and
why; the exit status says the same.  Needs numpy only.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit("%s: %s is %s, not F32" % (path, name, t["dtype"]))
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(blob[base + lo:base + hi], dtype="<f4").reshape(t["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--label", default="parameters")
    args = ap.parse_args()
    a, b = read(args.a), read(args.b)
    if sorted(a) != sorted(b):
        print("FAIL %s: different tensors: %s vs %s" % (args.label, sorted(a), sorted(b)))
        return 1
    worst, worst_name, changed = 0.0, None, 0
    for name in sorted(a):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            print("FAIL %s: %s has shape %s vs %s" % (args.label, name, x.shape, y.shape))
            return 1
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            print("FAIL %s: %s is not finite" % (args.label, name))
            return 1
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        diff = float(np.max(np.abs(x - y))) if y.size else 0.0
        rel = diff / scale if scale > 0 else diff
        changed += int(np.any(x != y))
        if rel >= worst:
            worst, worst_name = rel, name
    verdict = "PASS" if worst <= args.rtol else "FAIL"
    print("%s %s: max relative difference %.3g (%s), rtol %g, %d of %d tensors not bit-identical"
          % (verdict, args.label, worst, worst_name, args.rtol, changed, len(a)))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
