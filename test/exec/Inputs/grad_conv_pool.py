#!/usr/bin/python3
"""grad_conv_pool.py - the gradients of conv2d, conv1d, maxpool2d, avgpool2d and
global_avgpool (nncc's M_gradients) against torch autograd and finite differences.

Each case is a small model: a trainable layer (conv / dense) BEFORE the op under test, so
that the op's input gradient (dx) flows into a weight gradient, then the op, then `mse`
against a random target.  The script writes the .nn source, builds it with
`nncc m.nn -o m.so`, loads it with ctypes, sets every parameter through M_param to random
values, runs M_gradients at batch 1 and 3 (and 32 and 60 for the cases marked "lanes"),
and compares
  - the loss and every parameter gradient with torch autograd on the same float32 weights
    and inputs, computed in float64:  err = max|a - b| / max(max|b|, 1e-6) per tensor,
    passing at <= 1e-3;
  - a few random entries of every gradient with float64 central differences of the
    reference loss (validates the reference formulas; reported and gated at 1e-3 of the
    tensor's scale).
One line per case and batch: `PASS name bN grad_err=.. fd_err=..` or `FAIL ...`; then
`N passed, M failed`, the worst errors; exit status 1 when anything failed.
Usage: grad_conv_pool.py --nncc PATH [--filter REGEX] [--keep DIR] [--nncc-flag=FLAG ...]
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

NNCC_FLAGS = []  # --nncc-flag: extra options for every compilation (a target CPU)

# A layer: (kind, args...).  Kinds:
#   ("conv2d", filters, k, stride, pad, bias)   ("conv1d", filters, k, stride, pad, bias)
#   ("maxpool", k, stride, pad)  ("avgpool", k, stride, pad)  ("gap",)
#   ("dense", units, bias)  ("flatten",)  ("relu",)  ("tanh",)
# A case: (name, input shape, layers, options); options: "ties" = integer input and first
# weights (exact ties for max pooling).


def conv(f, k, s=1, p=0, bias=True):
    return ("conv2d", f, k, s, p, bias)


def conv1(f, k, s=1, p=0, bias=True):
    return ("conv1d", f, k, s, p, bias)


CASES = [
    # conv2d: kernels 1, 2, 3, 5; strides 1, 2, 3; pads 0, 1, 2; non-square; odd channels
    ("conv_k1", [3, 6, 5], [conv(4, 1), conv(5, 1)], ""),
    ("conv_k3p1", [3, 7, 6], [conv(3, 3, 1, 1), ("relu",), conv(5, 3, 1, 1)], ""),
    ("conv_k2s2_floor", [2, 7, 6], [conv(3, 1), conv(4, 2, 2)], ""),
    ("conv_k3s2_floor8", [3, 8, 8], [conv(5, 1, bias=False), conv(4, 3, 2)], ""),
    ("conv_k5p2", [3, 9, 7], [conv(3, 3, 1, 1), ("tanh",), conv(6, 5, 1, 2)], ""),
    ("conv_k5s3p2", [1, 13, 11], [conv(3, 1), conv(7, 5, 3, 2)], ""),
    ("conv_k3s3", [2, 10, 9], [conv(3, 1), conv(5, 3, 3)], ""),
    ("conv_k3s2p2", [3, 9, 8], [conv(4, 3, 1, 0), conv(3, 3, 2, 2, False)], ""),
    ("conv_k2p2_bigpad", [2, 5, 6], [conv(3, 1), conv(4, 2, 1, 2)], ""),
    ("conv_k1s2p1", [3, 7, 8], [conv(3, 1), conv(4, 1, 2, 1)], ""),
    ("conv_nobias", [3, 6, 7], [conv(5, 3, 1, 1, False), ("relu",), conv(3, 3, 2, 1, False)], ""),
    # 16+ filters: the forward's tiled schedule; the gradient must not care
    ("conv_f16", [3, 10, 9], [conv(16, 3, 1, 1), ("relu",), conv(17, 3, 2, 1)], ""),
    ("conv_f32_k5", [5, 12, 12], [conv(8, 3, 1, 1), conv(32, 5, 2, 2), ("relu",)], ""),
    ("conv_f16_k1", [4, 8, 8], [conv(16, 1), ("relu",), conv(20, 1)], ""),
    # dW over the filters (16 or 32): 49 taps in two tiles; 5 channels in groups of 1
    ("conv_f16_k7s2p3", [3, 11, 10], [conv(4, 1), conv(16, 7, 2, 3)], ""),
    ("conv_f16_c5", [5, 9, 8], [conv(5, 1), ("relu",), conv(16, 3, 1, 1)], ""),
    # dW over the filters with several kx taps a step (AVX-512, 16 filters: conv.c
    # lower_conv_dw_taps): at stride 2 (every other column shared; 2 channels a tile, the 12
    # columns in one step), a 5 x 5 kernel on 19 columns (3 steps of 5, then 4); 32 filters
    # (two vectors: the tall tile, FMA bound already) on 29 columns
    ("conv_dwtaps_f32", [3, 7, 29], [conv(4, 1), ("relu",), conv(32, 3, 1, 1)], ""),
    ("conv_dwtaps_s2", [4, 11, 23], [conv(4, 1), conv(16, 3, 2, 1)], ""),
    ("conv_dwtaps_k5", [2, 8, 19], [conv(2, 1), ("tanh",), conv(16, 5, 1, 2)], ""),
    # stride 1 with little padding on a small plane: dx by taps (conv.c lower_conv_dx_taps),
    # 150 rows (a whole number of tiles), 100 rows (4 left over), a fused tanh gradient
    ("conv_taps_valid_k5", [3, 14, 14], [conv(6, 1), ("tanh",), conv(16, 5)], "lanes"),
    # a valid convolution at batches 32 and 60 ("lanes": also run there): dx by taps with the
    # batch in the vector lanes (conv.c lower_conv_dx_lanes), 2 groups of 16 or 4 with 12
    # rows in the last (on 2 threads the runtime's slices: 16 or 30 rows each), planes of 40
    # and 108 positions (each one's last block overlapping the one before)
    ("conv_lanes_k5", [4, 12, 9], [conv(4, 1), ("relu",), conv(7, 5)], "lanes"),
    ("conv_taps_k5p1", [4, 9, 11], [conv(4, 1), conv(16, 5, 1, 1)], ""),
    ("conv_taps_k3_wide", [5, 6, 21], [conv(5, 3, 1, 1), ("relu",), conv(24, 3)], ""),
    # dW by output columns (fewer filters than a vector, rows of at least a vector: conv.c
    # lower_conv_dw_cols): LeNet-5's c1 (6 filters, 5 x 5, pad 2, 28 columns: a whole vector,
    # then the row's last 16 columns with 4 lanes zeroed), 32 columns (no last vector), 7
    # filters of 7 x 7 (blocks of 3, 3 and 1 on AVX-512), conv1d
    ("conv_dwcols_lenet", [1, 9, 28], [conv(6, 5, 1, 2), ("relu",), conv(3, 3)], ""),
    ("conv_dwcols_w32", [2, 5, 34], [conv(5, 3), ("tanh",), conv(4, 3, 1, 1, False)], ""),
    ("conv_dwcols_f7k7", [2, 8, 22], [conv(7, 7, 1, 3)], ""),
    # 13 x 13: blocks of 2 and 1 filters on AVX-512; on AVX2 (12 kernel columns at most a
    # block) column blocks of 7 and 6, one filter each
    ("conv_dwcols_k13", [1, 16, 30], [conv(3, 13, 1, 6)], ""),
    ("conv1d_dwcols", [3, 40], [conv1(5, 3, 1, 1), ("relu",), conv1(6, 4)], ""),
    # 10 and 11 rows for gemm_bcast (input channels of dx, filters of the flat forward): one
    # tile of the 4 or 5 rows its 6-row tiles leave
    ("conv_c10_rows", [2, 7, 8], [conv(10, 3, 1, 1), ("relu",), conv(4, 3, 1, 1)], ""),
    ("conv_c11_rows", [3, 6, 9], [conv(11, 3, 1, 1), ("tanh",), conv(6, 3, 1, 1)], ""),
    # conv into dense and dense into conv
    ("conv_dense", [2, 6, 6], [conv(3, 3, 2, 1), ("relu",), ("flatten",), ("dense", 5, True)], ""),
    # conv1d
    ("conv1d_k3p1", [3, 11], [conv1(4, 3, 1, 1), ("relu",), conv1(5, 3, 1, 1)], ""),
    ("conv1d_k5s2", [2, 17], [conv1(3, 1), conv1(6, 5, 2)], ""),
    ("conv1d_k4s3p2", [3, 14], [conv1(4, 3), conv1(5, 4, 3, 2, False)], ""),
    ("conv1d_f16", [3, 20], [conv1(16, 3, 1, 1), ("tanh",), conv1(17, 2, 2)], ""),
    ("conv1d_k1_floor", [2, 9], [conv1(3, 1), conv1(4, 2, 2, 0)], ""),
    # maxpool2d: overlap (stride < size), padding, floored windows, ties
    ("maxpool_2", [3, 8, 6], [conv(4, 3, 1, 1), ("maxpool", 2, 2, 0)], ""),
    ("maxpool_3s2", [2, 9, 8], [conv(3, 3, 1, 1), ("maxpool", 3, 2, 0)], ""),
    ("maxpool_3s1p1", [2, 7, 6], [conv(3, 3, 1, 1), ("maxpool", 3, 1, 1)], ""),
    ("maxpool_4s2p2", [2, 9, 10], [conv(3, 1), ("maxpool", 4, 2, 2), conv(2, 1)], ""),
    ("maxpool_3s2_floor8", [2, 8, 8], [conv(4, 1), ("relu",), ("maxpool", 3, 2, 1)], ""),
    ("maxpool_ties", [2, 8, 7], [conv(3, 2, 1, 0, False), ("maxpool", 3, 1, 1)], "ties"),
    ("maxpool_ties_s2", [1, 9, 9], [conv(2, 1, 1, 0, False), ("maxpool", 3, 2, 1)], "ties"),
    # disjoint windows (no padding, stride >= size), 8+ of them in a row: the vectorized
    # path; windows that tile the input exactly (written whole) and that do not (s > k, a
    # floored last column or row: zeroed, then added), with ties
    ("maxpool_2_wide", [2, 6, 22], [conv(3, 3, 1, 1), ("maxpool", 2, 2, 0)], ""),
    ("maxpool_2_floor_wide", [2, 9, 19], [conv(3, 3, 1, 1), ("maxpool", 2, 2, 0)], ""),
    ("maxpool_2s3_wide", [2, 7, 29], [conv(3, 1), ("maxpool", 2, 3, 0)], ""),
    ("maxpool_3_ties_wide", [1, 7, 28], [conv(2, 2, 1, 0, False), ("maxpool", 3, 3, 0)], "ties"),
    # windows of 2 to 4 that tile the input: unrolled, each row of a window's stores written as
    # whole interleaved vectors (codegen.c emit_store_run): 17 outputs a row (a whole vector,
    # then a masked one of 1 lane), 3 x 3 of 7 a row with ties, 4 x 4 of 18 a row
    ("maxpool_2_tiles_full", [2, 4, 34], [conv(3, 3, 1, 1), ("relu",), ("maxpool", 2, 2, 0)], ""),
    ("maxpool_3_tiles_ties", [2, 6, 21], [conv(3, 1, 1, 0, False), ("maxpool", 3, 3, 0)], "ties"),
    ("maxpool_4_tiles", [1, 8, 72], [conv(2, 3, 1, 1), ("tanh",), ("maxpool", 4, 4, 0)], ""),
    # a tiling window of 5: the rolled loops (one store a tap at stride 5)
    ("maxpool_5_tiles", [2, 10, 35], [conv(2, 3, 1, 1), ("relu",), ("maxpool", 5, 5, 0)], ""),
    # avgpool2d (count_include_pad)
    ("avgpool_2", [3, 8, 6], [conv(4, 3, 1, 1), ("avgpool", 2, 2, 0)], ""),
    ("avgpool_3s2p1", [2, 9, 8], [conv(3, 3, 1, 1), ("avgpool", 3, 2, 1)], ""),
    ("avgpool_3s1p1", [2, 7, 6], [conv(3, 1), ("avgpool", 3, 1, 1)], ""),
    ("avgpool_5s3p2", [2, 11, 10], [conv(3, 1), ("avgpool", 5, 3, 2), conv(2, 1)], ""),
    ("avgpool_3s2_floor8", [2, 8, 8], [conv(3, 1), ("avgpool", 3, 2, 0)], ""),
    # global_avgpool
    ("gap", [3, 5, 7], [conv(6, 3, 1, 1), ("relu",), ("gap",)], ""),
    ("gap_dense", [2, 6, 6], [conv(17, 3, 2, 1), ("gap",), ("dense", 4, True)], ""),
    # the training step's forward by Winograd's F(2x2, 3x3) (conv.c lower_conv2d_winograd: 3x3
    # at stride 1, two vectors of channels and of filters or more on AVX-512): an odd plane
    # (each item its own U) chained into a second one; a plane of 18 x 17 = 306 tiles (U per
    # filter block for the call), 3 filter vectors
    ("conv_winograd_odd", [3, 9, 7], [conv(32, 1), ("relu",), conv(32, 3, 1, 1), ("relu",), conv(48, 3, 1, 1)], ""),
    ("conv_winograd_large", [2, 36, 34], [conv(32, 1), ("tanh",), conv(48, 3, 1, 1, False)], ""),
    # the weight gradient by Winograd's F(3x3, 2x2) (conv.c lower_conv_dw_winograd: 3x3 at
    # stride 1, whole pairs of filter vectors, channels in whole vectors): an even plane of 90
    # tiles (at batch 3 slices of 33 or 34 tiles: two chunks of at most 32); an odd one (the
    # last row and column of tiles half outside dy) behind a second such layer; two filter
    # blocks at pad 0; a plane of one tile (at batch 1 seven of the eight slices have no tile
    # and sum to 0)
    ("conv_wdw_even", [16, 20, 18], [conv(32, 3, 1, 1)], ""),
    ("conv_wdw_odd", [16, 7, 9], [conv(32, 3, 1, 1), ("relu",), conv(32, 3, 1, 1)], ""),
    ("conv_wdw_p0_f64", [32, 6, 10], [conv(64, 3, 1, 1), ("tanh",), conv(64, 3, 1, 0)], ""),
    ("conv_wdw_one_tile", [16, 2, 2], [conv(32, 3, 1, 1), ("relu",), conv(32, 3, 1, 1)], ""),
    # the input gradient by Winograd's F(2x2, 3x3) (conv.c lower_conv_dx_winograd: 3x3 at
    # stride 1, two vectors of channels and of filters or more, a plane of a vector or more;
    # conv_winograd_* and conv_wdw_odd / _p0_f64 take it too): pad 2 (dy padded by 1), an odd
    # 5 x 7 plane, dx's 48 channels in three blocks of one vector (AVX2: of two), dy's 160 in
    # two chunks of 80
    ("conv_wdx_pad2_chunks", [8, 5, 7], [conv(48, 1), ("relu",), conv(160, 3, 1, 2)], ""),
    # a small CNN: everything together
    ("cnn", [3, 12, 10], [conv(8, 3, 1, 1), ("relu",), ("maxpool", 2, 2, 0), conv(16, 3, 1, 1),
                          ("relu",), ("avgpool", 3, 2, 1), conv(5, 1), ("gap",),
                          ("dense", 3, True)], ""),
]


def layer_src(i, lay, prev):
    kind = lay[0]
    if kind in ("conv2d", "conv1d"):
        _, f, k, s, p, bias = lay
        return "%s(%s, %d, kernel=%d, stride=%d, pad=%d, bias=%s)" % (
            kind, prev, f, k, s, p, "true" if bias else "false")
    if kind in ("maxpool", "avgpool"):
        _, k, s, p = lay
        return "%s2d(%s, %d, stride=%d, pad=%d)" % (kind, prev, k, s, p)
    if kind == "gap":
        return "global_avgpool(%s)" % prev
    if kind == "dense":
        return "dense(%s, %d, bias=%s)" % (prev, lay[1], "true" if lay[2] else "false")
    return "%s(%s)" % (kind, prev)


class Ref:
    """The model in torch: params maps nncc's names to float64 tensors."""

    def __init__(self, layers):
        self.layers = layers

    def forward(self, params, x):
        h = x
        for i, lay in enumerate(self.layers):
            kind = lay[0]
            nm = "l%d" % i
            if kind == "conv2d":
                h = F.conv2d(h, params[nm + ".weight"], params.get(nm + ".bias"), stride=lay[3],
                             padding=lay[4])
            elif kind == "conv1d":
                h = F.conv1d(h, params[nm + ".weight"], params.get(nm + ".bias"), stride=lay[3],
                             padding=lay[4])
            elif kind == "maxpool":
                h = F.max_pool2d(h, lay[1], lay[2], lay[3])
            elif kind == "avgpool":
                h = F.avg_pool2d(h, lay[1], lay[2], lay[3], count_include_pad=True)
            elif kind == "gap":
                h = h.mean(dim=(2, 3))
            elif kind == "dense":
                h = F.linear(h, params[nm + ".weight"], params.get(nm + ".bias"))
            elif kind == "flatten":
                h = h.flatten(1)
            elif kind == "relu":
                h = F.relu(h)
            elif kind == "tanh":
                h = torch.tanh(h)
        return h

    def param_shapes(self, in_shape):
        x = torch.zeros([1] + in_shape, dtype=torch.float64)
        shapes = {}
        for i, lay in enumerate(self.layers):
            kind = lay[0]
            nm = "l%d" % i
            if kind in ("conv2d", "conv1d"):
                c = x.shape[1]
                ks = [lay[2]] * (2 if kind == "conv2d" else 1)
                shapes[nm + ".weight"] = [lay[1], c] + ks
                if lay[5]:
                    shapes[nm + ".bias"] = [lay[1]]
            elif kind == "dense":
                shapes[nm + ".weight"] = [lay[1], x.shape[1]]
                if lay[2]:
                    shapes[nm + ".bias"] = [lay[1]]
            p = {k: torch.zeros(v, dtype=torch.float64) for k, v in shapes.items()}
            x = Ref(self.layers[:i + 1]).forward(p, torch.zeros([1] + in_shape, dtype=torch.float64))
        return shapes, list(x.shape[1:])


def load_lib(path, name):
    lib = ctypes.CDLL(path)
    fp = ctypes.POINTER(ctypes.c_float)
    i64p = ctypes.POINTER(ctypes.c_int64)
    getattr(lib, name + "_create").restype = ctypes.c_void_p
    getattr(lib, name + "_create").argtypes = []
    for fn in ("_param", "_grad"):
        f = getattr(lib, name + fn)
        f.restype = fp
        f.argtypes = [ctypes.c_void_p, ctypes.c_char_p, i64p]
    g = getattr(lib, name + "_gradients")
    g.restype = ctypes.c_int
    g.argtypes = [ctypes.c_void_p, ctypes.c_int64, fp, fp, fp]
    return lib


def tensor_view(ptr, n):
    return np.ctypeslib.as_array(ptr, shape=(n,))


def run_case(case, nncc, work, rng):
    name, in_shape, layers, opts = case
    ref = Ref(layers)
    shapes, out_shape = ref.param_shapes(in_shape)
    src = ["model m {", "  input x : f32[%s]" % ", ".join(map(str, in_shape)),
           "  target y : f32[%s]" % ", ".join(map(str, out_shape))]
    prev = "x"
    for i, lay in enumerate(layers):
        src.append("  l%d = %s" % (i, layer_src(i, lay, prev)))
        prev = "l%d" % i
    src += ["  output o = %s" % prev, "  loss = mse(o, y)", "}"]
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "m.nn"), "w") as f:
        f.write("\n".join(src) + "\n")
    r = subprocess.run([nncc, "m.nn", "-o", "m.so"] + NNCC_FLAGS, cwd=d, capture_output=True, text=True)
    if r.returncode != 0:
        return [("FAIL", "%s  nncc failed: %s" % (name, r.stderr.strip().splitlines()[-3:]), 0, 0)]
    lib = load_lib(os.path.join(d, "m.so"), "m")
    m = lib.m_create()
    if not m:
        return [("FAIL", "%s  m_create returned NULL" % name, 0, 0)]
    ties = "ties" in opts
    params = {}
    first = True
    for pname, shp in shapes.items():
        n = ctypes.c_int64(0)
        ptr = lib.m_param(m, pname.encode(), ctypes.byref(n))
        numel = int(np.prod(shp))
        if not ptr or n.value != numel:
            return [("FAIL", "%s  m_param(%s) gave %d elements, expected %d" % (name, pname, n.value, numel), 0, 0)]
        fan_in = numel // shp[0]
        if ties and first and pname.endswith(".weight"):
            v = rng.integers(-1, 2, size=numel).astype(np.float32)
        else:
            v = (rng.standard_normal(numel) / np.sqrt(fan_in)).astype(np.float32)
        if pname.endswith(".bias"):
            v = (0.1 * rng.standard_normal(numel)).astype(np.float32)
        if pname.endswith(".weight"):
            first = False
        tensor_view(ptr, numel)[:] = v
        params[pname] = torch.tensor(v.astype(np.float64).reshape(shp))
    results = []
    for batch in (1, 3) + ((32, 60) if "lanes" in opts else ()):
        if ties:
            x = rng.integers(-2, 3, size=[batch] + in_shape).astype(np.float32)
        else:
            x = rng.standard_normal([batch] + in_shape).astype(np.float32)
        y = rng.standard_normal([batch] + out_shape).astype(np.float32)
        loss = ctypes.c_float(0)
        fp = ctypes.POINTER(ctypes.c_float)
        rc = lib.m_gradients(m, batch, x.ctypes.data_as(fp), y.ctypes.data_as(fp), ctypes.byref(loss))
        if rc != 0:
            results.append(("FAIL", "%s b%d  m_gradients returned %d" % (name, batch, rc), 0, 0))
            continue
        got = {}
        for pname, shp in shapes.items():
            n = ctypes.c_int64(0)
            ptr = lib.m_grad(m, pname.encode(), ctypes.byref(n))
            got[pname] = tensor_view(ptr, n.value).astype(np.float64).reshape(shp).copy()
        # torch autograd, float64
        tp = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        xt = torch.tensor(x.astype(np.float64))
        yt = torch.tensor(y.astype(np.float64))

        def lossf(pp):
            return F.mse_loss(ref.forward(pp, xt), yt)

        lt = lossf(tp)
        lt.backward()
        worst, bad = 0.0, []
        e = abs(loss.value - lt.item()) / max(abs(lt.item()), 1e-6)
        worst = max(worst, e)
        if not e <= 1e-3:
            bad.append("loss %g vs %g" % (loss.value, lt.item()))
        for pname in shapes:
            b = tp[pname].grad.numpy()
            a = got[pname]
            scale = max(np.abs(b).max(), 1e-6)
            e = float(np.abs(a - b).max() / scale) if np.all(np.isfinite(a)) else float("inf")
            worst = max(worst, e)
            if not e <= 1e-3:
                bad.append("%s err %.3g" % (pname, e))
        # finite differences (float64) on a few entries of each parameter
        fd_worst = 0.0
        with torch.no_grad():
            for pname in (() if ties else shapes):  # ties: max pooling is not differentiable there
                b = tp[pname].grad.numpy()
                scale = max(np.abs(b).max(), 1e-6)
                flat = params[pname].view(-1)
                for j in rng.choice(flat.numel(), size=min(4, flat.numel()), replace=False):
                    h = 1e-6
                    pp = {k: v.clone() for k, v in params.items()}
                    pp[pname].view(-1)[j] += h
                    lp = lossf(pp).item()
                    pp[pname].view(-1)[j] -= 2 * h
                    lm = lossf(pp).item()
                    fd = (lp - lm) / (2 * h)
                    ea = abs(fd - b.reshape(-1)[j]) / scale   # reference vs FD
                    en = abs(fd - got[pname].reshape(-1)[j]) / scale  # nncc vs FD
                    fd_worst = max(fd_worst, ea, en)
        if not fd_worst <= 1e-3:
            bad.append("finite differences err %.3g" % fd_worst)
        status = "FAIL" if bad else "PASS"
        msg = "%s b%d  grad_err=%.2e fd_err=%s" % (name, batch, worst,
                                                    "n/a" if ties else "%.2e" % fd_worst)
        if bad:
            msg += "  " + "; ".join(bad)
        results.append((status, msg, worst, fd_worst))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--filter", default="")
    ap.add_argument("--keep", default=None)
    ap.add_argument("--nncc-flag", action="append", default=[], help="passed to nncc (repeatable)")
    args = ap.parse_args()
    NNCC_FLAGS.extend(args.nncc_flag)
    nncc = os.path.abspath(args.nncc)
    work = args.keep or tempfile.mkdtemp(prefix="grad_conv_pool.")
    rng = np.random.default_rng(1234)
    npass = nfail = 0
    gworst = fworst = 0.0
    for case in CASES:
        if args.filter and not re.search(args.filter, case[0]):
            continue
        for status, msg, w, fw in run_case(case, nncc, work, rng):
            print(status, msg, flush=True)
            if status == "PASS":
                npass += 1
            else:
                nfail += 1
            gworst = max(gworst, w)
            fworst = max(fworst, fw)
    print("%d passed, %d failed" % (npass, nfail))
    print("worst grad_err vs autograd %.2e, worst vs finite differences %.2e" % (gworst, fworst))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
