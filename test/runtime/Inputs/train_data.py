"""train_data.py DIR: data sets for the trainer's tests (trainer.test, exec/train_standalone.test).

Three classes of 2x2 ubyte "images" around three corners, as IDX files (gzip and plain) and
the same data as .npy (float32 x / 255, as the trainer scales ubyte IDX images), plus broken
variants: a label out of range, a corrupt and a truncated gzip file, a label file with fewer
samples, a text file.  And sequences for seqtag_train.nn: x [samples, seq, 3], t [samples,
seq] (seq 5 for training, 7 for the test set, 6 in a mismatched file)."""
import gzip
import os
import struct
import sys

import numpy as np


def idx(path, a, gz):
    code = {np.uint8: 0x08, np.int32: 0x0C}[a.dtype.type]
    b = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape)
    b += a.astype(a.dtype.newbyteorder(">")).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(b, mtime=0) if gz else b)


def make(d, name, n, rng):
    y = rng.integers(0, 3, n).astype(np.uint8)
    corners = np.array([[220, 30, 30, 30], [30, 220, 30, 30], [30, 30, 30, 220]], np.float64)
    x = np.clip(corners[y] + rng.normal(0, 40, (n, 4)), 0, 255).astype(np.uint8).reshape(n, 2, 2)
    idx(os.path.join(d, name + "-images-idx3-ubyte.gz"), x, True)
    idx(os.path.join(d, name + "-labels-idx1-ubyte"), y, False)
    np.save(os.path.join(d, name + "-x.npy"), x.astype(np.float32).reshape(n, 1, 2, 2) / np.float32(255))
    np.save(os.path.join(d, name + "-y.npy"), y.astype(np.int64))
    return x, y


def main():
    d = sys.argv[1]
    rng = np.random.default_rng(7)
    x, y = make(d, "train", 200, rng)
    make(d, "test", 60, rng)
    bad = y.copy()
    bad[123] = 3
    idx(os.path.join(d, "bad-labels-idx1-ubyte.gz"), bad, True)
    idx(os.path.join(d, "short-labels-idx1-ubyte"), y[:150], False)
    g = open(os.path.join(d, "train-images-idx3-ubyte.gz"), "rb").read()
    open(os.path.join(d, "cut-images-idx3-ubyte.gz"), "wb").write(g[: len(g) // 2])
    c = bytearray(g)
    c[len(c) // 2] ^= 0xFF
    open(os.path.join(d, "corrupt-images-idx3-ubyte.gz"), "wb").write(bytes(c))
    open(os.path.join(d, "text.txt"), "w").write("hello\n")
    for name, n, s in (("seq-train", 40, 5), ("seq-test", 12, 7)):
        sx = rng.normal(0, 1, (n, s, 3)).astype(np.float32)
        np.save(os.path.join(d, name + "-x.npy"), sx)
        np.save(os.path.join(d, name + "-t.npy"), (sx[:, :, 0] + 0.5 * sx[:, :, 1] > 0).astype(np.int32))
    np.save(os.path.join(d, "seq-bad-x.npy"), np.zeros((40, 6, 3), np.float32))


if __name__ == "__main__":
    main()
