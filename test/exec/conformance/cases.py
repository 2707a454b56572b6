"""cases.py - the conformance cases: the examples and generated per-op models.

A Model is one .nn source compiled once, plus the PyTorch module that computes the same
function with the same parameter names, and the runs (batch, seq) to execute it with.  Each
run is one reported case, named `<model>_b<batch>[_s<seq>]`.

Per-op models are generated here from one set of parameters each, which writes both the
.nn text and the torch module, so the two cannot drift apart.  The lists are chosen by
hand to cover every value of each parameter (not the cross product) plus edge cases.

Naming of per-op models follows docs/language.md ("Parameter names"): `output y = conv2d(x, ...)` holds
one parametric call outside a pipe, so its parameters are `y.weight` and `y.bias`.
"""
import os
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

import models as M

SEQ = "seq"  # the symbolic length in per-sample shapes


class Input:
    def __init__(self, name, shape, dtype="f32", vocab=0, scale=1.0, bad_id=False, decades=None):
        self.name = name
        self.shape = tuple(shape)  # per sample; SEQ marks the symbolic length
        self.dtype = dtype         # "f32" | "i32"
        self.vocab = vocab         # i32: ids drawn from [0, vocab)
        self.scale = scale         # f32: standard deviation of the normal inputs
        self.bad_id = bad_id       # i32: one id set to vocab (error cases)
        self.decades = decades     # f32: (lo, hi): magnitudes spread over 10^lo .. 10^hi

    def decl(self):
        dims = ", ".join(str(d) for d in self.shape)
        return "input %s : %s[%s]" % (self.name, self.dtype, dims)


class Model:
    """One compiled artifact and the runs made with it."""

    def __init__(self, name, source, make, inputs, outputs, runs, gain=1.0, kind="exe",
                 has_loss=False, error=None, cost=1.0, example=None):
        self.name = name          # case prefix
        self.source = source      # the .nn text
        self.make = make          # () -> nn.Module; forward(**inputs) -> {output: tensor}
        self.inputs = inputs      # [Input], declaration order
        self.outputs = outputs    # [str], declaration order
        self.runs = runs          # [(batch, seq or None)]
        self.gain = gain          # weight scale for init (see run.py init_module)
        self.kind = kind          # "exe" | "so" (shared library + C program) | "error"
        self.has_loss = has_loss  # trainable: the default build also makes training code
        self.error = error        # kind "error": "bad_token" | "missing_weight" | "extra_weight"
        self.cost = cost          # rough relative run time, to start big ones first
        self.example = example    # examples/*.nn stem, for the name check

    def has_seq(self):
        return any(SEQ in i.shape for i in self.inputs)

    def run_name(self, batch, seq):
        return "%s_b%d%s" % (self.name, batch, "" if seq is None else "_s%d" % seq)


class Net(nn.Module):
    """A generated model: named submodules plus a forward function over them."""

    def __init__(self, mods, fn):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)
        self._fn = fn

    def forward(self, **kw):
        return self._fn(self, **kw)


def _src(inputs, body, name="t"):
    lines = ["model %s {" % name] + ["  " + i.decl() for i in inputs] + ["  " + b for b in body] + ["}"]
    return "\n".join(lines) + "\n"


def _ann(shape):
    return " : [%s]" % ", ".join(str(d) for d in shape)


def _out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


# ---------------------------------------------------------------------------------------
# The examples.

def example_models(examples_dir):
    def src(stem):
        with open(os.path.join(examples_dir, stem + ".nn")) as f:
            return f.read()

    sm = [(1, None), (3, None), (17, None)]
    rec = [(1, 1), (3, 5), (17, 13)]
    ex = []
    ex.append(Model("example_vgg16", src("vgg16"), M.VGG16, [Input("image", (3, 224, 224))],
                    ["logits"], [(1, None)], gain=1.41, cost=100, example="vgg16"))
    ex.append(Model("example_alexnet", src("alexnet"), M.AlexNet, [Input("image", (3, 227, 227))],
                    ["prob"], [(1, None)], gain=1.41, cost=40, example="alexnet"))
    ex.append(Model("example_inception", src("inception"), M.Inception3a, [Input("x", (192, 28, 28))],
                    ["logits"], [(1, None), (3, None)], gain=1.41, has_loss=True, cost=10,
                    example="inception"))
    ex.append(Model("example_resnet_mini", src("resnet_mini"), M.ResNetMini, [Input("image", (3, 32, 32))],
                    ["logits"], sm, gain=1.0, has_loss=True, cost=3, example="resnet_mini"))
    ex.append(Model("example_lenet5", src("lenet5"), M.LeNet5, [Input("image", (1, 32, 32))],
                    ["logits"], sm, gain=1.0, has_loss=True, example="lenet5"))
    ex.append(Model("example_mlp", src("mlp"), M.MLP, [Input("pixels", (784,))],
                    ["logits"], sm, gain=1.41, has_loss=True, example="mlp"))
    ex.append(Model("example_char_rnn", src("char_rnn"), M.CharRNN, [Input("chars", (SEQ, 4))],
                    ["logits"], rec + [(2, 25)], has_loss=True, example="char_rnn"))
    ex.append(Model("example_sentiment", src("sentiment"), M.Sentiment,
                    [Input("words", (SEQ,), "i32", vocab=1000)],
                    ["logits"], rec, has_loss=True, cost=3, example="sentiment"))
    ex.append(Model("example_tagger", src("tagger"), M.Tagger, [Input("words", (SEQ,), "i32", vocab=5000)],
                    ["scores"], rec, has_loss=True, cost=5, example="tagger"))
    return ex


# ---------------------------------------------------------------------------------------
# conv2d: (C, H, W, F, k, s, p, bias, batch)

def _conv2d_params():
    cases = []
    chans = [1, 3, 5, 7, 2, 16]
    filters = [1, 4, 5, 8, 3, 13, 17]
    strides = [1, 2, 3, 4]
    pads = [0, 1, 2, 3]
    batches = [1, 3, 17]
    for i in range(30):
        k = 1 + i % 11
        s = strides[i % 4]
        p = pads[(i // 3) % 4]
        c = chans[i % 6]
        f = filters[i % 7]
        base = max(k - 2 * p, 1)
        h = base + (i * 7) % 13
        w = base + 1 + (i * 5) % 11
        if h == w:
            w += 1
        bias = i % 5 != 2
        cases.append((c, h, w, f, k, s, p, bias, batches[i % 3]))
    cases += [
        (3, 5, 5, 4, 7, 1, 1, True, 3),      # kernel == padded input: output 1x1
        (2, 3, 5, 3, 5, 1, 1, True, 1),      # kernel == padded height: one output row
        (3, 4, 4, 2, 3, 4, 0, True, 3),      # stride past the input: output 1x1
        (5, 9, 7, 6, 1, 2, 0, False, 3),     # 1x1 kernel, stride 2 (skips rows)
        (3, 9, 11, 4, 2, 4, 0, True, 1),     # stride larger than the kernel
        (1, 18, 17, 5, 5, 3, 0, True, 3),    # floor: the last rows/columns never read
        (64, 8, 8, 32, 3, 1, 1, True, 3),    # wide channels (vector paths)
        (7, 6, 5, 33, 3, 1, 1, True, 1),     # filters = 2 vectors + 1
        (16, 10, 12, 16, 3, 2, 1, False, 17),  # vector-width filters
        (3, 1, 40, 5, 1, 1, 0, True, 3),     # a 1-row image
        (2, 40, 1, 3, 3, 1, 1, True, 3),     # a 1-column image, padded
        (1, 1, 1, 1, 1, 1, 0, True, 17),     # everything 1
        (3, 31, 23, 8, 11, 4, 2, True, 1),   # AlexNet-like first layer, small
        (4, 7, 9, 5, 3, 1, 3, True, 3),      # padding larger than kernel/2: border of bias-only outputs
        # 1x1 kernels on every schedule (issue 11: the stride-1 GEMM path taken for stride 2):
        (8, 14, 13, 32, 1, 2, 0, True, 3),   # stride 2, 2 filter vectors (ResNet downsample)
        (16, 9, 10, 16, 1, 2, 0, False, 1),  # stride 2, one AVX-512 vector of filters
        (6, 11, 12, 8, 1, 3, 0, True, 3),    # stride 3, one AVX2 vector of filters
        (5, 10, 9, 20, 1, 2, 1, True, 3),    # stride 2 with padding
        (12, 7, 9, 24, 1, 1, 0, True, 3),    # stride 1: the GEMM path itself
        (16, 20, 20, 16, 3, 1, 1, True, 33),  # a batch of 33 rows on the tiled path
        (3, 9, 10, 10, 3, 1, 1, True, 3),    # 10 filters: one 4-row tile after the 6-row one
        (4, 8, 7, 9, 2, 1, 0, True, 1),      # 9 filters: one 3-row tile
        (32, 7, 19, 32, 3, 1, 1, True, 3),   # transposed copy and write-back: whole blocks + a rest
        # rows of whole pixel vectors: each row block writes y right after its sums (conv.c)
        (16, 32, 32, 32, 3, 1, 1, True, 3),  # 2 filter vectors, one filter block
        (4, 48, 48, 80, 3, 1, 1, False, 2),  # 5 filter vectors in blocks of 2: a last block of 1
        (8, 12, 12, 112, 3, 1, 1, True, 3),  # 7 filter vectors in blocks of 2 on 12-wide rows
        # several kx taps a step (AVX-512, one filter vector: each input column broadcast once
        # for every tap that reads it): 5 taps, padding on a 5 x 5 tile
        (16, 13, 15, 16, 5, 1, 2, True, 3),
        (3, 20, 21, 16, 7, 2, 3, True, 2),    # 7 taps at stride 2: every other column shared
        (3, 40, 41, 16, 11, 4, 2, False, 1),  # 11 taps at stride 4 (AlexNet's conv1 geometry)
        (2, 36, 38, 16, 29, 1, 0, True, 1),   # 29 taps: a step of 15, then one of the other 14
        (1, 34, 35, 16, 27, 1, 0, True, 3),   # 27 taps: a loop of 3 steps of 7, then one of 6
        # several taps a step with several filter vectors (AVX-512: the estimate counts loads
        # on top of FMAs, conv.c conv2d_step_cost): 2 x 2 x 6 tiles of 3 taps with a band row
        # and a 5-column edge; 5 taps; 3 filter vectors; stride 2
        (24, 27, 29, 64, 3, 1, 1, True, 2),
        (16, 15, 17, 32, 5, 1, 2, True, 3),
        (32, 13, 13, 48, 3, 1, 1, False, 1),
        (16, 20, 23, 32, 3, 2, 1, True, 3),
        # 1x1 layers on an input of 32768 floats or more a batch row (AVX-512: 8 x 3 tiles, the
        # first row tiles of each panel prefetching the next panel, gemm.h prefetch_b): 2 tiles
        # and a 5-row one, a partial last vector; one tile and a single row, whole panels; a
        # 3-row tile 7 vectors wide; 6 tiles and one partial vector
        (200, 13, 17, 21, 1, 1, 0, True, 3),
        (64, 24, 24, 9, 1, 1, 0, False, 2),
        (130, 16, 16, 3, 1, 1, 0, True, 1),
        (192, 14, 14, 48, 1, 1, 0, True, 2),
        # AlexNet conv5's plane (13 x 13, 16 filter vectors): 2 x 1 x 9 tiles of 3 taps and a
        # 4-column edge (codegen/conv_edge_tile.nn)
        (48, 13, 13, 256, 3, 1, 1, True, 2),
        # 11 filter vectors in blocks of 2 (AVX-512): each row block writes its pixel vectors
        # right after its sums (conv.c band_write), the last filter block's one vector only
        (16, 16, 16, 176, 3, 1, 1, True, 2),
        # Winograd F(2x2, 3x3) (conv.c lower_conv2d_winograd: inference, 3x3 at stride 1, at
        # least two vectors of channels and of filters).  Planes of at most 256 tiles (each
        # item makes its own U): 4-vector filter blocks over four channel chunks of 64, 28
        # tiles in one block; odd planes (the clamped last tile row and column) with 2-vector
        # filter blocks and no padding; 11 chunks of one vector (176 channels) and 1-vector
        # blocks (48 filters), pad 2; one tile of 2 x 2 outputs per image, a batch of 5 over
        # the workers; 120 tiles in three blocks of 40.  Larger planes (U for the call, per
        # filter block, then blocks of 24 or fewer tiles, the last one partial): 306 tiles;
        # 289 tiles over two chunks of 80 channels
        (256, 8, 14, 64, 3, 1, 1, True, 2),
        (32, 11, 9, 96, 3, 1, 0, False, 3),
        (176, 5, 6, 48, 3, 1, 2, True, 2),
        (64, 2, 2, 32, 3, 1, 1, True, 5),
        (48, 20, 24, 64, 3, 1, 1, True, 2),
        (32, 34, 35, 64, 3, 1, 1, False, 2),
        (160, 34, 34, 32, 3, 1, 1, True, 1),
    ]
    return cases


def conv2d_models():
    out = []
    for (c, h, w, f, k, s, p, bias, b) in _conv2d_params():
        oh, ow = _out(h, k, s, p), _out(w, k, s, p)
        x = Input("x", (c, h, w))
        args = "x, %d, kernel=%d" % (f, k)
        if s != 1:
            args += ", stride=%d" % s
        if p != 0:
            args += ", pad=%d" % p
        if not bias:
            args += ", bias=false"
        src = _src([x], ["output y = conv2d(%s)%s" % (args, _ann((f, oh, ow)))])
        name = "conv2d_k%d_s%d_p%d_c%d_f%d_h%dx%d%s" % (k, s, p, c, f, h, w, "" if bias else "_nobias")

        def make(c=c, f=f, k=k, s=s, p=p, bias=bias):
            return Net({"y": nn.Conv2d(c, f, k, stride=s, padding=p, bias=bias)},
                       lambda m, x: {"y": m.y(x)})
        out.append(Model(name, src, make, [x], ["y"], [(b, None)], gain=1.41))
    return out


def conv1d_models():
    params = [  # (C, L, F, k, s, p, batch)
        (1, 10, 1, 1, 1, 0, 1), (3, 17, 5, 3, 1, 1, 3), (5, 23, 7, 5, 2, 2, 17),
        (2, 9, 4, 9, 1, 0, 3), (7, 31, 3, 4, 3, 1, 1), (4, 12, 16, 7, 4, 3, 3),
        (16, 20, 17, 3, 2, 0, 3), (3, 6, 2, 8, 1, 1, 1),
    ]
    out = []
    for (c, l, f, k, s, p, b) in params:
        x = Input("x", (c, l))
        args = "x, %d, kernel=%d" % (f, k)
        if s != 1:
            args += ", stride=%d" % s
        if p != 0:
            args += ", pad=%d" % p
        src = _src([x], ["output y = conv1d(%s)%s" % (args, _ann((f, _out(l, k, s, p))))])
        name = "conv1d_k%d_s%d_p%d_c%d_f%d_l%d" % (k, s, p, c, f, l)

        def make(c=c, f=f, k=k, s=s, p=p):
            return Net({"y": nn.Conv1d(c, f, k, stride=s, padding=p)}, lambda m, x: {"y": m.y(x)})
        out.append(Model(name, src, make, [x], ["y"], [(b, None)], gain=1.41))
    return out


# ---------------------------------------------------------------------------------------
# Pooling: (C, H, W, size, stride or None (= size), pad, batch)

_POOL = [
    (1, 5, 7, 1, None, 0, 1), (3, 8, 6, 2, None, 0, 3), (5, 9, 11, 3, 2, 1, 17),
    (2, 13, 10, 3, 1, 1, 3), (7, 12, 9, 4, 2, 2, 1), (3, 11, 14, 5, 3, 2, 3),
    (4, 7, 7, 5, 1, 0, 3), (6, 10, 13, 2, 1, 1, 1), (3, 6, 9, 4, 3, 1, 17),
    (16, 9, 8, 3, None, 1, 3), (2, 5, 5, 5, None, 2, 1), (1, 17, 3, 3, 3, 0, 3),
    (8, 4, 4, 4, None, 0, 3),   # output 1x1
    (3, 2, 9, 2, 1, 0, 17),     # one output row
]


def pool_models():
    out = []
    for op in ("maxpool2d", "avgpool2d"):
        for (c, h, w, k, s, p, b) in _POOL:
            ss = k if s is None else s
            x = Input("x", (c, h, w))
            args = "x, %d" % k
            if s is not None:
                args += ", stride=%d" % s
            if p:
                args += ", pad=%d" % p
            src = _src([x], ["output y = %s(%s)%s" % (op, args, _ann((c, _out(h, k, ss, p), _out(w, k, ss, p))))])
            name = "%s_k%d_s%s_p%d_c%d_h%dx%d" % (op, k, "d" if s is None else s, p, c, h, w)
            if op == "maxpool2d":
                fn = lambda m, x, k=k, ss=ss, p=p: {"y": F.max_pool2d(x, k, stride=ss, padding=p)}
            else:
                fn = lambda m, x, k=k, ss=ss, p=p: {"y": F.avg_pool2d(x, k, stride=ss, padding=p,
                                                                      count_include_pad=True)}
            out.append(Model(name, src, lambda fn=fn: Net({}, fn), [x], ["y"], [(b, None)]))
    for (c, h, w, b) in [(1, 1, 1, 3), (3, 5, 7, 1), (16, 8, 8, 17), (33, 3, 2, 3), (16, 16, 16, 3), (8, 28, 28, 1), (2, 64, 56, 3)]:
        x = Input("x", (c, h, w))
        src = _src([x], ["output y = global_avgpool(x)%s" % _ann((c,))])
        out.append(Model("global_avgpool_c%d_h%dx%d" % (c, h, w), src,
                         lambda: Net({}, lambda m, x: {"y": x.mean(dim=(2, 3))}), [x], ["y"], [(b, None)]))
    return out


# ---------------------------------------------------------------------------------------
# dense and flatten

def dense_models():
    params = [  # (K, units, bias, seq-shaped: None | "seq" | fixed length, batch, seqs)
        (1, 1, True, None, 3), (7, 16, True, None, 17), (16, 17, False, None, 1),
        (17, 33, True, None, 3), (33, 100, True, None, 17), (100, 7, False, None, 3),
        (100, 1, True, None, 1), (784, 100, True, None, 3),
        (7, 17, True, SEQ, None), (17, 1, False, SEQ, None), (33, 16, True, SEQ, None),
        (1, 7, True, SEQ, None), (16, 33, True, 5, 3), (100, 17, False, 1, 17),
    ]
    out = []
    for (k, u, bias, sq, b) in params:
        shape = (k,) if sq is None else (sq, k)
        x = Input("x", shape)
        src = _src([x], ["output y = dense(x, %d%s)%s" % (u, "" if bias else ", bias=false",
                                                          _ann(shape[:-1] + (u,)))])
        name = "dense_k%d_u%d%s%s" % (k, u, "" if bias else "_nobias",
                                      "" if sq is None else "_seq" if sq == SEQ else "_t%d" % sq)

        def make(k=k, u=u, bias=bias):
            return Net({"y": nn.Linear(k, u, bias=bias)}, lambda m, x: {"y": m.y(x)})
        runs = [(b, None)] if sq != SEQ else [(1, 1), (3, 7), (17, 2)]
        out.append(Model(name, src, make, [x], ["y"], runs, gain=1.41))
    # at least 64 units and inference: W^T packed, gemm_bcast's batch path (dense.c): rows
    # in chunks of 48 and tiles of 6, then 4, 2, 1 (every remainder of 6 and both sides of a
    # chunk), a panel of 64 units and single vectors past it (100 = 64 + 16 + 16 + 4 lanes),
    # K in one slice (70) or two (400), on [K] and on [seq, K] (rows = batch * seq)
    # more than 2^20 weights (dense.c: W where it is, gemm_dot) over K of several chunks: at a
    # batch of 4 rows or more the row tiles take k a chunk at a time (gemm.h, row_chunks), the
    # rows past the tiles one at a time; K % 16 = 1 (the scalar rest), and on [seq, K]
    for (k, u, bias, sq, batches) in [(400, 100, True, None, [1, 2, 3, 5, 7, 11, 49, 53]),
                                      (70, 64, False, None, [4, 6, 48, 97]),
                                      (33, 80, True, SEQ, None),
                                      (1041, 1024, True, None, [1, 4, 5, 8, 9]),
                                      (1040, 1030, False, SEQ, None)]:
        shape = (k,) if sq is None else (sq, k)
        x = Input("x", shape)
        src = _src([x], ["h = dense(x, %d%s)" % (u, "" if bias else ", bias=false"),
                         "output y = relu(h)%s" % _ann(shape[:-1] + (u,))])
        name = "dense_rows_k%d_u%d%s%s" % (k, u, "" if bias else "_nobias", "" if sq is None else "_seq")

        def make(k=k, u=u, bias=bias):
            return Net({"h": nn.Linear(k, u, bias=bias)}, lambda m, x: {"y": torch.relu(m.h(x))})
        runs = [(b, None) for b in batches] if sq is None else [(1, 1), (3, 7), (17, 2), (5, 13)]
        out.append(Model(name, src, make, [x], ["y"], runs, gain=1.41))
    # flatten alone, and flatten feeding dense
    for (shape, b) in [((3, 4, 5), 3), ((1, 1, 7), 1), ((7, 3), 17)]:
        x = Input("x", shape)
        n = 1
        for d in shape:
            n *= d
        src = _src([x], ["output y = flatten(x)%s" % _ann((n,))])
        out.append(Model("flatten_%s" % "x".join(map(str, shape)), src,
                         lambda: Net({}, lambda m, x: {"y": torch.flatten(x, 1)}), [x], ["y"], [(b, None)]))
    x = Input("x", (5, 3, 7))
    src = _src([x], ["output y = x |> flatten |> dense(9) : [9]"])
    out.append(Model("flatten_dense_pipe_5x3x7", src,
                     lambda: Net({"y": nn.Sequential(nn.Flatten(), nn.Linear(105, 9))},
                                 lambda m, x: {"y": m.y(x)}), [x], ["y"], [(3, None)], gain=1.41))
    return out


# ---------------------------------------------------------------------------------------
# Activations, softmax, lrn

def misc_models():
    out = []
    acts = [
        ("relu", "relu(x)", lambda x: F.relu(x)),
        ("leaky_relu", "leaky_relu(x)", lambda x: F.leaky_relu(x, 0.01)),
        ("leaky_relu_0.2", "leaky_relu(x, slope=0.2)", lambda x: F.leaky_relu(x, 0.2)),
        ("leaky_relu_pipe_0.3", "x |> leaky_relu(0.3)", lambda x: F.leaky_relu(x, 0.3)),
        ("sigmoid", "sigmoid(x)", torch.sigmoid),
        ("tanh", "tanh(x)", torch.tanh),
        # a slope above 1: max(x, slope * x) is not leaky_relu there (issue 11)
        ("leaky_relu_2.5", "leaky_relu(x, slope=2.5)", lambda x: F.leaky_relu(x, 2.5)),
    ]
    shapes = [((5, 7, 3), None, 3), ((17,), None, 17), ((SEQ, 9), 1, None)]
    for i, (an, expr, fn) in enumerate(acts):
        for j, (shape, _, b) in enumerate(shapes):
            x = Input("x", shape, scale=4.0)
            src = _src([x], ["output y = %s" % expr])
            runs = [(b, None)] if SEQ not in shape else [(3, 5)]
            name = "act_%s_%s" % (an, "x".join(str(d) for d in shape))
            out.append(Model(name, src, lambda fn=fn: Net({}, lambda m, x, fn=fn: {"y": fn(x)}),
                             [x], ["y"], runs))
    # magnitudes from 1e-7 to 10 (each element is held to its own size: tanh and sigmoid
    # near 0, where tanh's polynomial branch works, issue 11)
    for (an, expr, fn) in [("tanh", "tanh(x)", torch.tanh), ("sigmoid", "sigmoid(x)", torch.sigmoid),
                           ("leaky_relu_0.2", "leaky_relu(x, slope=0.2)", lambda x: F.leaky_relu(x, 0.2))]:
        x = Input("x", (7, 40), decades=(-7, 1))
        out.append(Model("act_%s_decades_7x40" % an, _src([x], ["output y = %s" % expr]),
                         lambda fn=fn: Net({}, lambda m, x, fn=fn: {"y": fn(x)}), [x], ["y"], [(3, None)]))
    for op, tfn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        for (shape, scale, b) in [((10,), 1.0, 3), ((33,), 60.0, 17), ((1,), 5.0, 3),
                                  ((1000,), 30.0, 1), ((SEQ, 7), 60.0, None), ((3, 4, 5), 10.0, 3)]:
            x = Input("x", shape, scale=scale)
            src = _src([x], ["output y = %s(x)" % op])
            runs = [(b, None)] if SEQ not in shape else [(1, 1), (3, 6)]
            name = "%s_%s_scale%g" % (op, "x".join(str(d) for d in shape), scale)
            out.append(Model(name, src, lambda tfn=tfn: Net({}, lambda m, x, tfn=tfn: {"y": tfn(x, dim=-1)}),
                             [x], ["y"], runs))
    lrns = [  # (C, H, W, size, alpha, beta, k, batch)
        (7, 5, 6, 1, 0.5, 0.75, 1.0, 3), (7, 5, 6, 2, 1e-4, 0.75, 1.0, 1), (7, 4, 3, 3, 0.3, 0.5, 2.0, 17),
        (3, 6, 5, 4, 1.0, 1.3, 0.5, 3), (16, 3, 3, 5, 0.1, 0.75, 2.0, 3), (1, 4, 4, 5, 2.0, 0.75, 1.0, 1),
        (9, 2, 7, 3, 1e-2, 2.0, 1.5, 3),
    ]
    for (c, h, w, size, a, be, k, b) in lrns:
        x = Input("x", (c, h, w), scale=3.0)
        src = _src([x], ["output y = lrn(x, %d, alpha=%r, beta=%r, k=%r)" % (size, a, be, k)])
        name = "lrn_n%d_a%g_b%g_k%g_c%d" % (size, a, be, k, c)
        out.append(Model(name, src, lambda size=size, a=a, be=be, k=k: Net(
            {}, lambda m, x: {"y": F.local_response_norm(x, size, alpha=a, beta=be, k=k)}),
            [x], ["y"], [(b, None)]))
    # dropout is the identity at inference
    x = Input("x", (6, 5))
    out.append(Model("dropout_identity_6x5", _src([x], ["output y = dropout(x, 0.5) |> relu"]),
                     lambda: Net({}, lambda m, x: {"y": F.relu(x)}), [x], ["y"], [(3, None)]))
    return out


# ---------------------------------------------------------------------------------------
# Embedding and recurrent layers

def _rec_module(cell, k, units, layers, bidir, act="tanh"):
    if cell == "rnn":
        return nn.RNN(k, units, num_layers=layers, nonlinearity=act, batch_first=True, bidirectional=bidir)
    if cell == "lstm":
        return nn.LSTM(k, units, num_layers=layers, batch_first=True, bidirectional=bidir)
    return nn.GRU(k, units, num_layers=layers, batch_first=True, bidirectional=bidir)


def recurrent_models():
    out = []
    for (vocab, dim, runs) in [(1, 1, [(3, 4)]), (10, 3, [(1, 1), (17, 5)]), (1000, 64, [(3, 7)]),
                               (7, 17, [(1, 6), (3, 2)])]:
        ids = Input("ids", (SEQ,), "i32", vocab=vocab)
        src = _src([ids], ["output y = embedding(ids, %d, %d)%s" % (vocab, dim, _ann((SEQ, dim)))])
        out.append(Model("embedding_v%d_d%d" % (vocab, dim), src,
                         lambda vocab=vocab, dim=dim: Net({"y": nn.Embedding(vocab, dim)},
                                                          lambda m, ids: {"y": m.y(ids.long())}),
                         [ids], ["y"], runs))
    params = [  # (cell, K, units, layers, bidir, act, runs)
        ("rnn", 1, 1, 1, False, "tanh", [(1, 1), (3, 7)]),
        ("rnn", 5, 3, 2, False, "tanh", [(17, 4)]),
        ("rnn", 3, 17, 1, True, "tanh", [(3, 5)]),
        ("rnn", 9, 3, 1, False, "relu", [(3, 6), (1, 1)]),
        ("rnn", 5, 17, 3, False, "relu", [(3, 3)]),
        ("rnn", 7, 3, 2, True, "relu", [(1, 7)]),
        ("lstm", 1, 1, 1, False, None, [(3, 7)]),
        ("lstm", 3, 3, 1, False, None, [(1, 1), (17, 5)]),
        ("lstm", 5, 17, 2, False, None, [(3, 6)]),
        ("lstm", 9, 3, 3, False, None, [(3, 4)]),
        ("lstm", 3, 17, 1, True, None, [(1, 7), (3, 2)]),
        ("lstm", 7, 3, 2, True, None, [(17, 3)]),
        ("gru", 1, 1, 1, False, None, [(3, 7)]),
        ("gru", 3, 3, 1, False, None, [(1, 1), (17, 5)]),
        ("gru", 5, 17, 2, False, None, [(3, 6)]),
        ("gru", 9, 3, 3, False, None, [(3, 4)]),
        ("gru", 3, 17, 1, True, None, [(1, 7), (3, 2)]),
        ("gru", 7, 3, 3, True, None, [(3, 3)]),
    ]
    for (cell, k, u, layers, bidir, act, runs) in params:
        x = Input("x", (SEQ, k))
        args = "x, %d" % u
        if act and act != "tanh":
            args += ", activation=%s" % act
        if layers != 1:
            args += ", layers=%d" % layers
        call = "%s(%s)" % (cell, args)
        if bidir:
            call = "bidirectional(%s)" % call
        src = _src([x], ["output y = %s%s" % (call, _ann((SEQ, u * (2 if bidir else 1))))])
        name = "%s%s_k%d_u%d_l%d%s" % (cell, "_relu" if act == "relu" else "", k, u, layers, "_bidir" if bidir else "")

        def make(cell=cell, k=k, u=u, layers=layers, bidir=bidir, act=act):
            return Net({"y": _rec_module(cell, k, u, layers, bidir, act or "tanh")},
                       lambda m, x: {"y": m.y(x)[0]})
        out.append(Model(name, src, make, [x], ["y"], runs))
    # last(h): alone, around a layer, and as the last stage of a pipe
    x = Input("x", (SEQ, 5))
    out.append(Model("last_k5", _src([x], ["output y = last(x) : [5]"]),
                     lambda: Net({}, lambda m, x: {"y": x[:, -1]}), [x], ["y"], [(1, 1), (3, 7)]))
    x = Input("x", (SEQ, 3))
    out.append(Model("last_gru_k3_u5", _src([x], ["output y = last(gru(x, 5)) : [5]"]),
                     lambda: Net({"y": nn.GRU(3, 5, batch_first=True)}, lambda m, x: {"y": m.y(x)[0][:, -1]}),
                     [x], ["y"], [(3, 6), (17, 1)]))
    x = Input("x", (SEQ, 4))
    out.append(Model("last_lstm_pipe_k4_u7", _src([x], ["output y = x |> lstm(7) |> last |> dense(3) : [3]"]),
                     lambda: Net({"y": nn.ModuleList([nn.LSTM(4, 7, batch_first=True), nn.Identity(),
                                                      nn.Linear(7, 3)])},
                                 lambda m, x: {"y": m.y[2](m.y[0](x)[0][:, -1])}),
                     [x], ["y"], [(3, 5)]))
    return out


# ---------------------------------------------------------------------------------------
# concat, +, *, several outputs, naming rules

def structure_models():
    out = []
    a, b, c = Input("a", (3, 5, 7)), Input("b", (2, 5, 7)), Input("c", (1, 5, 7))
    out.append(Model("concat_images_3_2_1", _src([a, b, c], ["output y = concat(a, b, c) : [6, 5, 7]"]),
                     lambda: Net({}, lambda m, a, b, c: {"y": torch.cat([a, b, c], 1)}),
                     [a, b, c], ["y"], [(1, None), (3, None)]))
    a, b = Input("a", (SEQ, 3)), Input("b", (SEQ, 4))
    out.append(Model("concat_seq_3_4", _src([a, b], ["output y = concat(a, b) : [seq, 7]"]),
                     lambda: Net({}, lambda m, a, b: {"y": torch.cat([a, b], 2)}),
                     [a, b], ["y"], [(1, 1), (3, 6)]))
    # conv2d layers that write their value straight into their part of the concatenation
    # (structural.c plan_concat, conv.c conv_y_at): a tiled layer of 32 filters on 90-pixel
    # planes (the transposed write-back and its partial block), a 1x1 one (its GEMM writes y),
    # a tiled one of 18 filters (the lane-by-lane write-back); beside them inputs that are
    # copied (a pool, a conv of 5 filters, a conv that z reads too), so the offsets add up over
    # both kinds
    x = Input("x", (8, 9, 10))
    out.append(Model("concat_convs_in_place", _src([x], ["a = x |> conv2d(32, kernel=3, pad=1) |> relu",
                                                       "b = x |> conv2d(20, kernel=1) |> relu",
                                                       "c = conv2d(x, 18, kernel=3, pad=1)",
                                                       "d = x |> maxpool2d(3, stride=1, pad=1)",
                                                       "e = x |> conv2d(5, kernel=3, pad=1) |> tanh",
                                                       "f = x |> conv2d(16, kernel=1)",
                                                       "output y = concat(a, b, c, d, e, f) : [99, 9, 10]",
                                                       "output z = relu(f)"]),
                     lambda: Net({"a": nn.Sequential(nn.Conv2d(8, 32, 3, padding=1)),
                                  "b": nn.Sequential(nn.Conv2d(8, 20, 1)), "c": nn.Conv2d(8, 18, 3, padding=1),
                                  "e": nn.Sequential(nn.Conv2d(8, 5, 3, padding=1)),
                                  "f": nn.Sequential(nn.Conv2d(8, 16, 1))},
                                 lambda m, x: (lambda f: {"y": torch.cat([F.relu(m.a(x)), F.relu(m.b(x)), m.c(x),
                                                                          F.max_pool2d(x, 3, 1, 1), torch.tanh(m.e(x)), f], 1),
                                                          "z": F.relu(f)})(m.f(x))),
                     [x], ["y", "z"], [(1, None), (3, None)], gain=1.41))
    # every part written in place (no concat kernel), 32-wide rows (the write-back of each row
    # block inside the tile loop), the joined value read by a conv
    x = Input("x", (16, 6, 32))
    out.append(Model("concat_convs_all_in_place", _src([x], ["a = x |> conv2d(16, kernel=1) |> relu",
                                                           "b = x |> conv2d(32, kernel=3, pad=1) |> relu",
                                                           "h = concat(a, b)",
                                                           "output y = conv2d(h, 16, kernel=3, pad=1) : [16, 6, 32]"]),
                     lambda: Net({"a": nn.Sequential(nn.Conv2d(16, 16, 1)),
                                  "b": nn.Sequential(nn.Conv2d(16, 32, 3, padding=1)),
                                  "y": nn.Conv2d(48, 16, 3, padding=1)},
                                 lambda m, x: {"y": m.y(torch.cat([F.relu(m.a(x)), F.relu(m.b(x))], 1))}),
                     [x], ["y"], [(1, None), (3, None)], gain=1.41))
    a, b = Input("a", (5,)), Input("b", (17,))
    out.append(Model("concat_vectors_5_17", _src([a, b], ["output y = concat(a, b) : [22]"]),
                     lambda: Net({}, lambda m, a, b: {"y": torch.cat([a, b], 1)}),
                     [a, b], ["y"], [(17, None)]))
    a, b = Input("a", (4, 5, 6)), Input("b", (4, 5, 6))
    out.append(Model("add_4x5x6", _src([a, b], ["output y = a + b"]),
                     lambda: Net({}, lambda m, a, b: {"y": a + b}), [a, b], ["y"], [(3, None)]))
    a, b = Input("a", (SEQ, 3)), Input("b", (SEQ, 3))
    out.append(Model("mul_seq_3", _src([a, b], ["output y = a * b"]),
                     lambda: Net({}, lambda m, a, b: {"y": a * b}), [a, b], ["y"], [(3, 4)]))
    a, b = Input("a", (7,)), Input("b", (7,))
    out.append(Model("add_mul_chain_7", _src([a, b], ["output y = relu(a * b + a) * b"]),
                     lambda: Net({}, lambda m, a, b: {"y": F.relu(a * b + a) * b}), [a, b], ["y"], [(17, None)]))
    x = Input("x", (5, 6, 7))
    out.append(Model("add_residual_conv_c5", _src([x], ["output y = relu(x + conv2d(x, 5, kernel=3, pad=1))"]),
                     lambda: Net({"y": nn.Conv2d(5, 5, 3, padding=1)}, lambda m, x: {"y": F.relu(x + m.y(x))}),
                     [x], ["y"], [(3, None)], gain=1.41))
    # conv2d layers that write their value straight into the next layer's blocked input copy
    # (conv.c, plan_conv2d): through a fused activation or none, into a padded / strided
    # consumer, 32 filters (two vectors per tile) and a chain of three; 24 channels (blocks of
    # 12, not chained) and a value read three times (by a conv, a residual add fused into the
    # next conv, and a pool: not chained, the pool reads the value's own buffer) beside them
    x = Input("x", (3, 9, 11))
    out.append(Model("conv2d_chain_relu_s2", _src([x], ["h = x |> conv2d(32, kernel=3, pad=1) |> relu",
                                                      "output y = conv2d(h, 32, kernel=3, stride=2, pad=2) : [32, 6, 7]"]),
                     lambda: Net({"h": nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()),
                                  "y": nn.Conv2d(32, 32, 3, stride=2, padding=2)},
                                 lambda m, x: {"y": m.y(m.h(x))}),
                     [x], ["y"], [(1, None), (3, None)], gain=1.41))
    x = Input("x", (5, 12, 10))
    out.append(Model("conv2d_chain_three", _src([x], ["a = conv2d(x, 16, kernel=3)",
                                                    "b = a |> conv2d(48, kernel=5, pad=2) |> tanh",
                                                    "c = b |> conv2d(16, kernel=3, pad=1) |> leaky_relu(0.1)",
                                                    "output y = conv2d(c, 24, kernel=2, stride=2) : [24, 5, 4]"]),
                     lambda: Net({"a": nn.Conv2d(5, 16, 3), "b": nn.Sequential(nn.Conv2d(16, 48, 5, padding=2)),
                                  "c": nn.Sequential(nn.Conv2d(48, 16, 3, padding=1)), "y": nn.Conv2d(16, 24, 2, stride=2)},
                                 lambda m, x: {"y": m.y(F.leaky_relu(m.c(torch.tanh(m.b(m.a(x)))), 0.1))}),
                     [x], ["y"], [(1, None), (2, None)], gain=1.41))
    x = Input("x", (4, 7, 7))
    out.append(Model("conv2d_chain_not_taken", _src([x], ["a = x |> conv2d(24, kernel=3, pad=1) |> relu",
                                                        "b = a |> conv2d(16, kernel=3, pad=1) |> relu",
                                                        "c = b |> conv2d(16, kernel=3, pad=1)",
                                                        "output y = relu(b + c)",
                                                        "output z = maxpool2d(b, 2)"]),
                     lambda: Net({"a": nn.Sequential(nn.Conv2d(4, 24, 3, padding=1)),
                                  "b": nn.Sequential(nn.Conv2d(24, 16, 3, padding=1)),
                                  "c": nn.Sequential(nn.Conv2d(16, 16, 3, padding=1))},
                                 lambda m, x: (lambda b: {"y": F.relu(b + m.c(b)), "z": F.max_pool2d(b, 2)})(
                                     F.relu(m.b(F.relu(m.a(x)))))),
                     [x], ["y", "z"], [(3, None)], gain=1.41))
    # a residual add fused into a conv2d's write-back (lower.c fused_add): the conv as the add's
    # first operand, and two convs (fused into the later one: the earlier is computed first)
    x = Input("x", (5, 6, 7))
    out.append(Model("add_conv_first", _src([x], ["output y = conv2d(x, 5, kernel=3, pad=1) + x"]),
                     lambda: Net({"y": nn.Conv2d(5, 5, 3, padding=1)}, lambda m, x: {"y": m.y(x) + x}),
                     [x], ["y"], [(1, None), (3, None)], gain=1.41))
    x = Input("x", (3, 8, 9))
    out.append(Model("add_two_convs", _src([x], ["a = conv2d(x, 16, kernel=3, pad=1)",
                                                 "b = conv2d(x, 16, kernel=1)",
                                                 "output y = relu(a + b)"]),
                     lambda: Net({"a": nn.Conv2d(3, 16, 3, padding=1), "b": nn.Conv2d(3, 16, 1)},
                                 lambda m, x: {"y": F.relu(m.a(x) + m.b(x))}),
                     [x], ["y"], [(2, None)], gain=1.41))
    # a residual stream kept in the blocked copies (conv.c plan_conv2d, conv_residual): s is
    # written into f1's first conv's copy (pad 1) and read from there as f1's residual; r1 is
    # written, its residual added, into f2's first conv's copy (pad 2, 5x5) and read from there
    # as f2's residual, which y, 100 pixels a plane, adds 16 x 16 before the transposition and
    # lane by lane in its last, partial block
    x = Input("x", (16, 10, 10))
    out.append(Model("conv2d_residual_stream", _src([x], [
        "s = conv2d(x, 32, kernel=3, pad=1) |> relu",
        "f1 = s |> conv2d(32, kernel=3, pad=1) |> relu |> conv2d(32, kernel=5, pad=2)",
        "r1 = relu(s + f1)",
        "f2 = r1 |> conv2d(32, kernel=5, pad=2) |> relu |> conv2d(32, kernel=3, pad=1)",
        "output y = relu(f2 + r1)"]),
        lambda: Net({"s": nn.Sequential(nn.Conv2d(16, 32, 3, padding=1)),
                     "f1": nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 5, padding=2)),
                     "f2": nn.Sequential(nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))},
                    lambda m, x: (lambda r1: {"y": F.relu(m.f2(r1) + r1)})(
                        (lambda s: F.relu(s + m.f1(s)))(F.relu(m.s(x))))),
        [x], ["y"], [(1, None), (3, None)], gain=1.41))
    # a block whose result is chained into the next conv's copy, its residual (the model's
    # input) read from its own NCHW buffer in that chained write-back
    x = Input("x", (16, 6, 7))
    out.append(Model("conv2d_chain_residual_input", _src([x], [
        "f = x |> conv2d(16, kernel=3, pad=1) |> relu |> conv2d(16, kernel=3, pad=1)",
        "r = relu(x + f)",
        "output y = conv2d(r, 16, kernel=3, pad=1)"]),
        lambda: Net({"f": nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)),
                     "y": nn.Conv2d(16, 16, 3, padding=1)},
                    lambda m, x: {"y": m.y(F.relu(x + m.f(x)))}),
        [x], ["y"], [(1, None), (3, None)], gain=1.41))
    # the same at 16 x 16 with 48 channels: y's write-back in row blocks of whole pixel vectors
    # (the band write), three filter vectors, the residual from the stream's copy
    x = Input("x", (8, 16, 16))
    out.append(Model("conv2d_residual_stream_band", _src([x], [
        "s = conv2d(x, 48, kernel=3, pad=1) |> relu",
        "f = s |> conv2d(48, kernel=3, pad=1) |> relu |> conv2d(48, kernel=3, pad=1)",
        "output y = relu(s + f)"]),
        lambda: Net({"s": nn.Sequential(nn.Conv2d(8, 48, 3, padding=1)),
                     "f": nn.Sequential(nn.Conv2d(48, 48, 3, padding=1), nn.ReLU(), nn.Conv2d(48, 48, 3, padding=1))},
                    lambda m, x: (lambda s: {"y": F.relu(s + m.f(s))})(F.relu(m.s(x)))),
        [x], ["y"], [(1, None), (3, None)], gain=1.41))
    # several outputs, in declaration order; an intermediate that is also an output
    x = Input("x", (6,))
    out.append(Model("multi_output_3", _src([x], ["h = dense(x, 7)",
                                                  "output y1 = relu(h)",
                                                  "output y2 = h |> sigmoid",
                                                  "output y3 = dense(h, 2)"]),
                     lambda: Net({"h": nn.Linear(6, 7), "y3": nn.Linear(7, 2)},
                                 lambda m, x: (lambda h: {"y1": F.relu(h), "y2": torch.sigmoid(h),
                                                          "y3": m.y3(h)})(m.h(x))),
                     [x], ["y1", "y2", "y3"], [(1, None), (3, None)], gain=1.41))
    # a dense / conv2d that is an output and also feeds an activation (issue 11: the
    # activation fused into the producer made the producer's output act(h))
    x = Input("x", (6,))
    out.append(Model("multi_output_fused_dense", _src([x], ["output h = dense(x, 7)",
                                                           "output y = relu(h)"]),
                     lambda: Net({"h": nn.Linear(6, 7)},
                                 lambda m, x: (lambda h: {"h": h, "y": F.relu(h)})(m.h(x))),
                     [x], ["h", "y"], [(1, None), (5, None)], gain=1.41))
    x = Input("x", (3, 6, 5))
    out.append(Model("multi_output_fused_conv", _src([x], ["output c = conv2d(x, 16, kernel=3, pad=1)",
                                                          "output y = c |> leaky_relu(0.1)"]),
                     lambda: Net({"c": nn.Conv2d(3, 16, 3, padding=1)},
                                 lambda m, x: (lambda c: {"c": c, "y": F.leaky_relu(c, 0.1)})(m.c(x))),
                     [x], ["c", "y"], [(3, None)], gain=1.41))
    # The naming rules of docs/language.md ("Parameter names"), each on its own.
    x = Input("x", (10,))
    out.append(Model("naming_pipe_stages", _src([x], ["h = x |> dense(16) |> relu |> dense(8)",
                                                      "output y = h"]),
                     lambda: Net({"h": nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8))},
                                 lambda m, x: {"y": m.h(x)}), [x], ["y"], [(3, None)], gain=1.41))
    out.append(Model("naming_pipe_call_head", _src([x], ["h1 = dense(x, 6) |> relu |> dense(4)",
                                                         "output y = tanh(h1)"]),
                     lambda: Net({"h1": nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 4))},
                                 lambda m, x: {"y": torch.tanh(m.h1(x))}), [x], ["y"], [(3, None)], gain=1.41))
    blk = ("block unit(x, n) {\n  z = dense(x, n)\n  w = z |> relu |> dense(n)\n  return w + z\n}\n")
    out.append(Model("naming_block_nested",
                     blk + _src([x], ["u = unit(x, 5)", "v = u |> unit(3)", "output y = v"]),
                     lambda: Net({"u": nn.ModuleDict({"z": nn.Linear(10, 5),
                                                      "w": nn.Sequential(nn.ReLU(), nn.Linear(5, 5))}),
                                  "v": nn.ModuleList([nn.ModuleDict({"z": nn.Linear(5, 3),
                                                                     "w": nn.Sequential(nn.ReLU(), nn.Linear(3, 3))})])},
                                 lambda m, x: {"y": _unit(m.v[0], _unit(m.u, x))}),
                     [x], ["y"], [(3, None)], gain=1.0))
    return out


def _unit(d, x):
    z = d["z"](x)
    return d["w"](z) + z


# ---------------------------------------------------------------------------------------
# Error handling of the standalone executable, and the shared library.

def error_models(examples_dir):
    with open(os.path.join(examples_dir, "mlp.nn")) as f:
        mlp = f.read()
    ids = Input("ids", (SEQ,), "i32", vocab=10, bad_id=True)
    out = [
        Model("error_token_out_of_range", _src([ids], ["output y = embedding(ids, 10, 3)"]),
              lambda: Net({"y": nn.Embedding(10, 3)}, lambda m, ids: {"y": m.y(ids.long())}),
              [ids], ["y"], [(3, 5)], kind="error", error="bad_token"),
        Model("error_missing_weight", mlp, M.MLP, [Input("pixels", (784,))], ["logits"], [(1, None)],
              kind="error", error="missing_weight", has_loss=True),
        Model("error_extra_weight", mlp, M.MLP, [Input("pixels", (784,))], ["logits"], [(1, None)],
              kind="error", error="extra_weight", has_loss=True),
        Model("error_misshaped_weight", mlp, M.MLP, [Input("pixels", (784,))], ["logits"], [(1, None)],
              kind="error", error="misshaped_weight", has_loss=True),
    ]
    return out


def shared_models(examples_dir):
    with open(os.path.join(examples_dir, "lenet5.nn")) as f:
        src = f.read()
    return [Model("shared_lenet5", src, M.LeNet5, [Input("image", (1, 32, 32))], ["logits"],
                  [(1, None), (3, None), (17, None)], kind="so", has_loss=True, example="lenet5")]


def all_models(examples_dir):
    ms = (example_models(examples_dir) + conv2d_models() + conv1d_models() + pool_models()
          + dense_models() + misc_models() + recurrent_models() + structure_models()
          + error_models(examples_dir) + shared_models(examples_dir))
    names = set()
    for m in ms:
        assert re.match(r"^[A-Za-z0-9_.]+$", m.name), m.name
        assert m.name not in names, "duplicate case " + m.name
        names.add(m.name)
    return ms
