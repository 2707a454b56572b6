"""pool_nonfinite.py - max and average pooling on inputs with NaN, +-inf and signed zeros,
against PyTorch's float32 CPU kernels, element by element.

    pool_nonfinite.py --nncc NNCC --dir DIR

For each pooling (window, stride, padding: windows that start or end in the padding, inner
ones, overlapping and disjoint) builds `output y = maxpool2d(x, ...)` and `avgpool2d`
executables, runs them on one batch whose planes are all finite, or hold a NaN, a +inf, a
-inf (at a corner, on a border, inside), or ties of -0 and +0, and compares:
maxpool2d bit for bit (a NaN in a window gives NaN, +inf wins, -inf loses, and of equal
values the first in the window stays, so -0 before +0 gives -0, as PyTorch's kernel);
avgpool2d NaN where PyTorch has NaN (NaN, or +inf and -inf in one window), the same
infinities, and the finite elements within 1e-6 relative.  Prints PASS or FAIL a case.
"""
import argparse
import os
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

CASES = [  # (k, s, p, H, W)
    (3, 1, 1, 9, 21), (2, 2, 0, 8, 34), (3, 2, 1, 11, 19), (5, 3, 2, 13, 40), (4, 1, 2, 6, 7),
    (3, 3, 0, 9, 9), (1, 1, 0, 4, 17), (5, 1, 2, 5, 5),
]
C, B = 10, 2


def planes(H, W, rng):
    """[B, C, H, W]: plane 0 finite; the others each with one kind of special value."""
    x = rng.standard_normal((B, C, H, W)).astype(np.float32)
    spots = [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (H // 2, W // 2), (0, W // 2), (H // 2, W - 1)]
    for b in range(B):
        for c in range(1, C):
            kind = (c - 1) % 3
            y, xx = spots[(c + b) % len(spots)]
            if kind == 0:
                x[b, c, y, xx] = np.nan
            elif kind == 1:
                x[b, c, y, xx] = np.inf
                x[b, c, (y + 1) % H, xx] = -np.inf
            else:
                x[b, c, y, xx] = -np.inf
    # ties of signed zeros in the last plane: -0 first in every window, then +0
    x[:, C - 1] = np.where(np.arange(W) % 2 == 0, np.float32(-0.0), np.float32(0.0))[None, None, :]
    x[:, C - 1, :, :] = np.where((np.arange(H) % 3 == 0)[:, None], -1.0, x[:, C - 1])
    return x


def same_bits(a, b):
    return np.array_equal(a.view(np.uint32), b.view(np.uint32)) or (
        np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(a[~np.isnan(a)].view(np.uint32),
                                                                    b[~np.isnan(b)].view(np.uint32)))


def close(a, b):
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    fin = np.isfinite(b)
    if not np.array_equal(a[~fin & ~np.isnan(b)], b[~fin & ~np.isnan(b)]):
        return False
    return bool(np.all(np.abs(a[fin] - b[fin]) <= 1e-6 * np.maximum(1.0, np.abs(b[fin]))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(7)
    failed = 0
    for (k, s, p, H, W) in CASES:
        x = planes(H, W, rng)
        xin = os.path.join(a.dir, "x_%d_%d.npy" % (H, W))
        np.save(xin, x)
        OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        for op in ("maxpool2d", "avgpool2d"):
            name = "%s_k%d_s%d_p%d_%dx%d" % (op, k, s, p, H, W)
            src = os.path.join(a.dir, name + ".nn")
            with open(src, "w") as f:
                f.write("model m {\n  input x : f32[%d, %d, %d]\n  output y = %s(x, %d, stride=%d, pad=%d) : [%d, %d, %d]\n}\n"
                        % (C, H, W, op, k, s, p, C, OH, OW))
            exe = os.path.join(a.dir, name)
            subprocess.run([a.nncc, src, "-o", exe], check=True)
            out = os.path.join(a.dir, name + ".npy")
            subprocess.run([exe, "--input", "x=" + xin, "--output", "y=" + out], check=True, stdout=subprocess.DEVNULL)
            got = np.load(out)
            t = torch.from_numpy(x)
            if op == "maxpool2d":
                want = F.max_pool2d(t, k, stride=s, padding=p).numpy()
                good = got.shape == want.shape and same_bits(got, want)
            else:
                want = F.avg_pool2d(t, k, stride=s, padding=p, count_include_pad=True).numpy()
                good = got.shape == want.shape and close(got, want)
            nan = int(np.isnan(want).sum())
            inf = int(np.isinf(want).sum())
            if not good:
                failed += 1
                bad = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))))[:3]
                print("FAIL %s: %d NaN and %d inf expected; first differences at %s: nncc %s, torch %s"
                      % (name, nan, inf, bad.tolist(), [got[tuple(i)] for i in bad], [want[tuple(i)] for i in bad]))
            else:
                print("PASS %s: %d NaN, %d inf, %d elements" % (name, nan, inf, want.size))
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
