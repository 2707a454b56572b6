"""Writes the first N samples of IDX files (gzip or plain) as plain IDX files.

    subset_idx.py N OUT_DIR FILE...   ->  OUT_DIR/<FILE's name without .gz>

The data-parallel tests train on a small, fixed part of Fashion-MNIST (the dataset-fashion-mnist
package), so an epoch is a few steps; the trainer reads the result as it reads the originals.
"""
import gzip
import os
import struct
import sys


def main():
    n = int(sys.argv[1])
    out_dir = sys.argv[2]
    for path in sys.argv[3:]:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            magic = f.read(4)
            if magic[:2] != b"\0\0" or magic[2] != 0x08:
                sys.exit("%s: not an unsigned-byte IDX file" % path)
            rank = magic[3]
            dims = list(struct.unpack(">%dI" % rank, f.read(4 * rank)))
            if dims[0] < n:
                sys.exit("%s holds %d samples, fewer than %d" % (path, dims[0], n))
            row = 1
            for d in dims[1:]:
                row *= d
            data = f.read(n * row)
        dims[0] = n
        name = os.path.basename(path)
        if name.endswith(".gz"):
            name = name[:-3]
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(magic + struct.pack(">%dI" % rank, *dims) + data)


if __name__ == "__main__":
    main()
