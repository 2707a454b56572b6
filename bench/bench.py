#!/usr/bin/python3
"""bench.py - inference latency of nncc-built executables against PyTorch on this machine.

For each example model (examples/*.nn) and batch: build `nncc model.nn -o model`, run
`./model --bench N --batch B [--seq S]` (the runtime times N forward passes after a warm-up
and prints min / median / mean per call), and time the same network in PyTorch (the
modules of test/exec/conformance/models.py, eval mode, no grad, same warm-up and N) with 1
thread and with all cores.  Prints one row per (model, batch, seq): the medians in
microseconds and nncc's speed-up over each PyTorch setting.  Numbers are only checked
by the conformance suite (test/exec); this script measures.

    /usr/bin/python3 bench/bench.py --nncc build/nncc [--filter REGEX] [--runs N] [--quick]

OPENBLAS_CORETYPE is removed from the environment (TOOLCHAIN.md): it would slow the
reference down on this CPU and make the comparison meaningless.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCROOT, "test", "exec", "conformance"))
os.environ.pop("OPENBLAS_CORETYPE", None)
sys.dont_write_bytecode = True

import torch  # noqa: E402

import cases  # noqa: E402
import run as conf  # noqa: E402  (init_module, make_inputs)

# (model case name, [(batch, seq)]): small models at several batches, big ones at batch 1.
PLAN = [
    ("example_lenet5", [(1, None), (64, None)]),
    ("example_mlp", [(1, None), (64, None)]),
    ("example_resnet_mini", [(1, None), (32, None)]),
    ("example_inception", [(1, None), (8, None)]),
    ("example_alexnet", [(1, None)]),
    ("example_vgg16", [(1, None)]),
    ("example_char_rnn", [(1, 25), (32, 25)]),
    ("example_sentiment", [(1, 50), (32, 50)]),
    ("example_tagger", [(1, 50), (32, 50)]),
]
QUICK = {"example_vgg16", "example_alexnet"}

BENCH_RE = re.compile(r"min ([0-9.]+) us, median ([0-9.]+) us, mean ([0-9.]+) us")


def time_torch(mod, inputs, runs, threads):
    torch.set_num_threads(threads)
    kw = {k: torch.from_numpy(v) for k, v in inputs.items()}
    with torch.no_grad():
        mod(**kw)  # warm-up
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            mod(**kw)
            ts.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nncc", default=os.path.join(SRCROOT, "build", "nncc"))
    ap.add_argument("--filter", default="")
    ap.add_argument("--runs", type=int, default=0, help="timed runs (default: by model size)")
    ap.add_argument("--quick", action="store_true", help="skip vgg16 and alexnet")
    args = ap.parse_args()
    filt = re.compile(args.filter)
    models = {m.name: m for m in cases.example_models(os.path.join(SRCROOT, "examples"))}
    ncores = os.cpu_count() or 1
    print("%-20s %5s %4s %12s %12s %12s %8s %8s" % ("model", "batch", "seq", "nncc us", "torch-1t us",
                                                    "torch-%dt us" % ncores, "vs 1t", "vs %dt" % ncores))
    status = 0
    for name, runs in PLAN:
        if not filt.search(name) or (args.quick and name in QUICK):
            continue
        m = models[name]
        with tempfile.TemporaryDirectory(prefix="nncc-bench-") as wd:
            src = os.path.join(wd, "model.nn")
            with open(src, "w") as f:
                f.write(m.source)
            exe = os.path.join(wd, "model")
            p = subprocess.run([args.nncc, src, "-o", exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                print("%-20s build failed: %s" % (name, p.stdout.decode(errors="replace").strip().splitlines()[:1]))
                status = 1
                continue
            mod = conf.init_module(m.make(), 0, m.gain).eval()
            for (batch, seq) in runs:
                n = args.runs or (5 if m.cost >= 40 else 20 if m.cost >= 10 else 200)
                cmd = [exe, "--bench", str(n), "--batch", str(batch)] + ([] if seq is None else ["--seq", str(seq)])
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                mm = BENCH_RE.search(p.stdout.decode(errors="replace"))
                if p.returncode != 0 or not mm:
                    print("%-20s %5d %4s run failed: %s" % (name, batch, seq or "-", p.stdout.decode(errors="replace").strip()[:200]))
                    status = 1
                    continue
                ours = float(mm.group(2))
                inputs = conf.make_inputs(m, batch, seq, 0)
                t1 = time_torch(mod, inputs, n, 1)
                tn = time_torch(mod, inputs, n, ncores)
                print("%-20s %5d %4s %12.1f %12.1f %12.1f %7.2fx %7.2fx" % (
                    name, batch, seq or "-", ours, t1, tn, t1 / ours, tn / ours), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
