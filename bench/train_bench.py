"""train_bench.py - training steps, nncc against PyTorch, for bench/run.py.

A training step = forward + backward + the optimizer's update on one batch:
  nncc     M_train_step of the shared library `nncc model.nn -o libM.so` builds, called
           through ctypes (test/exec/train/nncc_ctypes.py), its thread pool set with the
           library's nncc_set_num_threads(n) (1 and 2 threads),
  PyTorch  the same network and optimizer (torch.optim with the .nn file's train settings):
           opt.zero_grad(); F.cross_entropy(net(x), y).backward(); opt.step(), 1 and 2 threads.
Both in this process, interleaved in rounds (nncc 1t, nncc 2t, torch 1t, torch 2t; reversed
on every other round) on one fixed random batch with random labels; a figure is the median
over rounds of each round's median step time.

Rows: lenet5 (examples/fmnist_lenet5.nn, Adam, batch 64), mlp (SGD momentum 0.9, 64),
resnet_mini (SGD Nesterov, 32), the LSTM and the GRU of bench/models (input 128, hidden 256,
seq 64, a classifier on the last state: bench/models/*_train.nn, SGD momentum, 32) and
examples/char_lstm.nn (bytes, seq 64, Adam with clip_norm 5, 32).
"""
import ctypes
import gc
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCROOT, "test", "exec", "train"))
import nncc_ctypes  # noqa: E402
import roofline  # noqa: E402
import torch_models  # noqa: E402
import weights  # noqa: E402
from train_fmnist_torch import LeNet5 as FmnistLeNet5  # noqa: E402


class TrainSpec:
    def __init__(self, row, src, model, inp, dims, target, classes, batch, net, opt, seq=None,
                 vocab=None, per_step=False, clip=None):
        self.row, self.src, self.model = row, src, model
        self.inp, self.dims, self.target, self.classes = inp, dims, target, classes
        self.batch = batch
        self.net = net      # () -> torch module
        self.opt = opt      # params -> torch optimizer (the .nn file's train block)
        self.seq = seq      # the symbolic length of a sequence model, else None
        self.vocab = vocab  # token inputs (i32 ids below vocab) instead of floats
        self.per_step = per_step  # a label per step ([batch, seq]) instead of per sample
        self.clip = clip    # clip_norm of the train block (torch: clip_grad_norm_)


TRAIN_SPECS = [
    TrainSpec("lenet5", "examples/fmnist_lenet5.nn", "fmnist_lenet5", "image", (1, 28, 28), "label", 10, 64,
              FmnistLeNet5, lambda p: torch.optim.Adam(p, lr=0.001)),
    TrainSpec("mlp", "examples/mlp.nn", "mlp", "pixels", (784,), "digit", 10, 64,
              torch_models.MLP, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    TrainSpec("resnet_mini", "examples/resnet_mini.nn", "resnet_mini", "image", (3, 32, 32), "label", 10, 32,
              torch_models.ResNetMini, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True)),
    TrainSpec("lstm", "bench/models/lstm_train.nn", "lstm_train", "x", (64, 128), "y", 10, 32,
              torch_models.LSTMTrain, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), seq=64),
    TrainSpec("gru", "bench/models/gru_train.nn", "gru_train", "x", (64, 128), "y", 10, 32,
              torch_models.GRUTrain, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), seq=64),
    TrainSpec("char_lstm", "examples/char_lstm.nn", "char_lstm", "chars", (64,), "next", 256, 32,
              torch_models.CharLSTM, lambda p: torch.optim.Adam(p, lr=0.003), seq=64, vocab=256,
              per_step=True, clip=5.0),
]

ENGINES = [("nncc1", 1), ("nncc2", 2), ("torch1", 1), ("torch2", 2)]


class TrainPoint:
    def __init__(self, row, batch):
        self.model, self.batch, self.seq = row, batch, None
        self.t, self.ratio, self.runs = {}, {}, {}
        self.roofline = {}   # threads -> fraction per round
        self.error = None


def _nncc_steps(model, setn, n_threads, x, y, runs, warm, seq=None):
    setn(n_threads)
    ts = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        model.train_step(len(x), {model.inputs[0]: x}, {model.targets[0]: y}, seq)
        if i >= warm:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def _torch_steps(net, opt, set_threads, n_threads, x, y, runs, warm, clip=None):
    set_threads(n_threads)
    net.train()
    ts = []
    gc.disable()
    try:
        for i in range(warm + runs):
            t0 = time.perf_counter()
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            if i >= warm:
                ts.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return statistics.median(ts) * 1e6


def bench_training(nncc, tmp, st, set_threads, warmups, machine, failures, log, only=None, notes=None):
    """TrainPoints for TRAIN_SPECS (those named in `only`, if given)."""
    points = []
    for spec in TRAIN_SPECS:
        if only and spec.row not in only:
            continue
        pt = TrainPoint(spec.row if spec.model == spec.row else "%s (%s)" % (spec.row, spec.model), spec.batch)
        pt.seq = spec.seq
        points.append(pt)
        try:
            src = os.path.join(SRCROOT, spec.src)
            so = os.path.join(tmp, "libtrain_%s.so" % spec.model)
            nncc_ctypes.build(nncc, src, so)
            cost = roofline.model_cost(nncc, src)
            model = nncc_ctypes.Model(so, spec.model, [spec.inp], [spec.target], seq=spec.seq is not None)
            lib_set = model.lib.nncc_set_num_threads
            lib_set.argtypes = [ctypes.c_int]
            lib_set.restype = ctypes.c_int

            def setn(n, _f=lib_set):
                if _f(n) != 0:
                    raise RuntimeError("nncc_set_num_threads(%d) failed" % n)

            rng = np.random.default_rng(0)
            if spec.vocab:
                x = rng.integers(0, spec.vocab, size=(spec.batch,) + spec.dims).astype(np.int32)
            else:
                x = rng.standard_normal((spec.batch,) + spec.dims).astype(np.float32)
            y = rng.integers(0, spec.classes, size=(spec.batch, spec.seq) if spec.per_step else spec.batch)
            y = y.astype(np.int32)
            torch.manual_seed(0)
            net = spec.net()
            opt = spec.opt(net.parameters())
            try:   # the same starting weights (bench/weights.py)
                model.set_params(weights.match(net, weights.nncc_params(nncc, src)))
            except Exception as e:  # noqa: BLE001 - timing does not depend on the values
                if notes is not None:
                    notes.append("training %s: nncc starts from its own initialisation (%s)"
                                 % (spec.row, str(e)[:200]))
            xt = torch.from_numpy(x.astype(np.int64) if spec.vocab else x)
            yt = torch.from_numpy(y.astype(np.int64).reshape(-1))
            # calibration: one step each after one warm-up step
            est = {}
            t0 = time.perf_counter()
            _nncc_steps(model, setn, 1, x, y, 1, 1, spec.seq)
            est["nncc1"] = (time.perf_counter() - t0) / 2
            est["nncc2"] = est["nncc1"] / 1.5
            t0 = time.perf_counter()
            _torch_steps(net, opt, set_threads, 1, xt, yt, 1, 1, spec.clip)
            est["torch1"] = (time.perf_counter() - t0) / 2
            est["torch2"] = est["torch1"] / 1.5
            for name, _ in ENGINES:
                pt.runs[name] = st.runs(est[name])
                pt.t[name] = []
            for r in range(st.rounds):
                order = ENGINES if r % 2 == 0 else ENGINES[::-1]
                if r == 1:
                    for name in pt.t:
                        pt.runs[name] = st.runs(pt.t[name][0] * 1e-6)
                for name, n in order:
                    runs = pt.runs[name]
                    if name.startswith("nncc"):
                        v = _nncc_steps(model, setn, n, x, y, runs, warmups(runs), spec.seq)
                    else:
                        v = _torch_steps(net, opt, set_threads, n, xt, yt, runs, warmups(runs), spec.clip)
                    pt.t[name].append(v)
            pt.ratio["torch1"] = [a / b for a, b in zip(pt.t["torch1"], pt.t["nncc1"])]
            pt.ratio["torch2"] = [a / b for a, b in zip(pt.t["torch2"], pt.t["nncc2"])]
            pt.ratio["nncc2"] = [a / b for a, b in zip(pt.t["nncc1"], pt.t["nncc2"])]   # speed-up
            if machine:
                for n in (1, 2):
                    roof = cost.train_roofline_s(spec.batch, spec.seq, machine["fma_gflops_%dt" % n],
                                                 machine["read_gbs_%dt" % n])
                    pt.roofline[n] = [roof * 1e6 / v for v in pt.t["nncc%d" % n]]
            model.close()
            set_threads(1)
            log("  train %-12s b%-3d nncc1 %.0f  nncc2 %.0f  torch1 %.0f x%.2f  torch2 %.0f x%.2f" % (
                spec.row, spec.batch, statistics.median(pt.t["nncc1"]), statistics.median(pt.t["nncc2"]),
                statistics.median(pt.t["torch1"]), statistics.median(pt.ratio["torch1"]),
                statistics.median(pt.t["torch2"]), statistics.median(pt.ratio["torch2"])))
        except Exception as e:  # noqa: BLE001 - one failing row must not stop the others
            pt.error = str(e)[:500]
            failures.append((spec.row, "training b%d" % spec.batch, pt.error))
            log("  train %s: FAILED: %s" % (spec.row, pt.error))
    return points
