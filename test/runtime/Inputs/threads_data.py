"""threads_data.py DIR: inputs for threads.test: random float32 arrays for lenet5 (3 images),
resnet_mini (2), inception (1), mlp (5), and a small Fashion-MNIST-shaped training set (96
28x28 ubyte images, 10 classes) as IDX files."""
import os
import struct
import sys

import numpy as np

d = sys.argv[1]
rng = np.random.default_rng(7)
for name, shape in (("lenet5", (3, 1, 32, 32)), ("resnet_mini", (2, 3, 32, 32)),
                    ("inception", (1, 192, 28, 28)), ("mlp", (5, 784))):
    np.save(os.path.join(d, name + ".npy"), rng.standard_normal(shape).astype(np.float32))


def idx(path, a):
    code = {np.uint8: 0x08}[a.dtype.type]
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape))
        f.write(a.tobytes())


idx(os.path.join(d, "images"), rng.integers(0, 256, (96, 28, 28)).astype(np.uint8))
idx(os.path.join(d, "labels"), rng.integers(0, 10, 96).astype(np.uint8))
