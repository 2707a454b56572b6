#!/usr/bin/python3
"""run.py - nncc against PyTorch and ONNX Runtime on the example models, side by side.

    bench/run.sh [options]          (sets itself up first: README.md)
    /usr/bin/python3 bench/run.py [--nncc build/nncc] [--quick] [--only lenet5,mlp] [--no-ort]
        [--no-train] [--no-machine] [--no-chart] [--dry-run] [--omp-active] [--output FILE]

First the machine (bench/machine.c through bench/roofline.py: FMA peak and DRAM bandwidth on
1 and 2 threads).  Then for each model (examples/*.nn, bench/models/lstm.nn and gru.nn):
compile it with `nncc model.nn -o model` (timed, median of a few compilations; the
executable's and the shared library's sizes are recorded), then measure forward latency at
batch 1 and a larger batch (seq 32 for the recurrent examples, 64 for lstm and gru):

  nncc      `NNCC_NUM_THREADS=n ./model --bench N --input NAME=x.npy --weights twin.safetensors`
            at n = 1 and 2 (the runtime warms up, times N calls and prints the median per
            call), under GNU time for the peak resident memory,
  PyTorch   the same network (bench/torch_models.py) with the same weights (bench/weights.py),
            eval mode, float32, the same input array, warm-up then the median of N calls:
            torch.no_grad() with 1 and 2 threads, and torch.inference_mode() with 1 thread,
  ORT       onnxruntime-node on a torch.onnx.export (opset 13) of the module, intra-op
            threads 1 and 2 (bench/ort_server.js; needs bench/.onnx, which run.sh installs).

Then the training steps (bench/train_bench.py): M_train_step through ctypes against PyTorch's
backward + optimizer step, 1 and 2 threads each.

The engines are interleaved within each round (the order reversed on every other round) and
the rounds repeated, so that the drift of this shared machine hits all of them alike.  A
figure is the median over rounds of the per-round medians; a ratio is the median over rounds
of the per-round peer_time / nncc_time at the same thread count (> 1: nncc is faster), with
the range over rounds beside it; the roofline fraction is the row's roofline time (FLOPs at
the peak + weights at the bandwidth, bench/roofline.py) / nncc's median.  The tables go to
stdout and to bench/results.md, the chart to bench/results.png (bench/chart.py;
results-quick.* with --quick, a smoke run of every row).  Exit status 1 when a model failed
to build or run.

Invariants: the measurement order never depends on the results; OPENBLAS_CORETYPE is removed
before torch is imported (it halves OpenBLAS on this AVX-512 machine, TOOLCHAIN.md), and the
OpenBLAS thread count is set along with torch's, because Debian's torch (BLAS_INFO=generic)
does not do it itself; idle OpenMP and ORT threads sleep rather than spin (see README.md).
"""
import os
import sys

os.environ.pop("OPENBLAS_CORETYPE", None)
# Waiting OpenMP threads sleep instead of spinning: on this shared 2-core machine a spinning
# barrier whose partner thread is descheduled made torch's 2-thread runs 10-100x slower than
# its 1-thread runs.  --omp-active keeps libgomp's default (read when torch is imported).
if "--omp-active" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import roofline  # noqa: E402
import torch_models  # noqa: E402
import train_bench  # noqa: E402
import weights  # noqa: E402

SEQ = 32


class Spec:
    """One model: its single input and the (batch, seq) points to measure."""

    def __init__(self, name, input_name, dims, dtype, vocab, points, src=None):
        self.name = name              # examples/<name>.nn and torch_models.MODELS key
        self.src = src or os.path.join("examples", name + ".nn")   # relative to the source root
        self.input_name = input_name  # the .nn input's name
        self.dims = dims              # per-sample dims; None is the symbolic length (seq)
        self.dtype = dtype            # "f32" or "i32" (token ids)
        self.vocab = vocab            # id range for i32 inputs
        self.points = points          # [(batch, seq or None)]


SPECS = [
    Spec("lenet5", "image", (1, 32, 32), "f32", 0, [(1, None), (32, None), (64, None)]),
    Spec("mlp", "pixels", (784,), "f32", 0, [(1, None), (32, None), (64, None)]),
    Spec("resnet_mini", "image", (3, 32, 32), "f32", 0, [(1, None), (32, None)]),
    Spec("inception", "x", (192, 28, 28), "f32", 0, [(1, None), (8, None)]),
    Spec("alexnet", "image", (3, 227, 227), "f32", 0, [(1, None), (8, None)]),
    Spec("vgg16", "image", (3, 224, 224), "f32", 0, [(1, None), (8, None)]),
    Spec("char_rnn", "chars", (None, 4), "f32", 0, [(1, SEQ), (32, SEQ)]),
    Spec("sentiment", "words", (None,), "i32", 1000, [(1, SEQ), (32, SEQ)]),
    Spec("tagger", "words", (None,), "i32", 5000, [(1, SEQ), (32, SEQ)]),
    Spec("lstm", "x", (None, 128), "f32", 0, [(1, 64), (32, 64)], "bench/models/lstm.nn"),
    Spec("gru", "x", (None, 128), "f32", 0, [(1, 64), (32, 64)], "bench/models/gru.nn"),
]

# compiled for the compilation table only (not run)
COMPILE_ONLY = [Spec("deep100", "image", (16, 32, 32), "f32", 0, [], "bench/models/deep100.nn")]

BENCH_RE = re.compile(r"(\d+) runs: min ([0-9.]+) us, median ([0-9.]+) us, mean ([0-9.]+) us")


class Settings:
    def __init__(self, quick):
        # --quick is a smoke run: every row, one round, a few calls each
        self.budget = 0.03 if quick else 0.4   # seconds of timed calls per measurement
        self.rounds = 1 if quick else 3        # rounds for a point whose call is < slow
        self.slow_rounds = 1 if quick else 2
        self.slow = 0.3                        # seconds per call
        self.min_runs = 1 if quick else 3
        self.max_runs = 2000
        self.compiles = 1 if quick else 3      # compilations timed per model

    def runs(self, est):
        return int(min(self.max_runs, max(self.min_runs, round(self.budget / max(est, 1e-7)))))


def warmups(runs):
    """The nncc runtime's warm-up policy (runtime/standalone.c), used for every engine."""
    return max(1, min(runs // 10, 10))


# --- environment ---------------------------------------------------------------------------

def _openblas():
    """The OpenBLAS torch loaded (through libblas.so.3), or None with the reference BLAS."""
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))
    with open("/proc/self/maps") as f:
        maps = f.read()
    for line in maps.splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if "libblas.so" in path or "libopenblas" in path:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            if hasattr(lib, "openblas_set_num_threads"):
                return lib, path
    return None, None


OPENBLAS, OPENBLAS_PATH = _openblas()


def set_threads(n):
    torch.set_num_threads(n)
    if OPENBLAS is not None:
        OPENBLAS.openblas_set_num_threads(n)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    m = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
    name = m.group(1).strip() if m else "unknown"
    if flags:
        fl = flags.group(1).split()
        isa = "avx512f" if "avx512f" in fl else "avx2" if "avx2" in fl else "no avx2"
        name += " (%s)" % isa
    return name


def cache_sizes():
    """'L2 1 MiB per core, L3 32 MiB' from lscpu; else from getconf (glibc's CPUID reading,
    for a VM whose lscpu shows no caches); else '?'."""
    out = sh(["lscpu"])
    found = []
    for lvl in ("L2", "L3"):
        m = re.search(r"^%s cache:\s*(.*)$" % lvl, out, re.M)
        if m:
            found.append("%s %s" % (lvl, m.group(1).strip()))
    if not found:
        for lvl in ("2", "3"):
            v = sh(["getconf", "LEVEL%s_CACHE_SIZE" % lvl])
            if v.isdigit() and int(v) > 0:
                found.append("L%s %s KiB (getconf)" % (lvl, int(v) // 1024))
    return ", ".join(found) or "?"


def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def dpkg_version(pkg):
    v = sh(["dpkg-query", "-W", "-f=${Status} ${Version}", pkg])
    return v.split()[-1] if v.startswith("install ok installed") else None


# --- nncc ----------------------------------------------------------------------------------

def compile_model(nncc, spec, tmp, n):
    """Compiles examples/<name>.nn n times; (median seconds, exe size, .so size, error)."""
    src = os.path.join(SRCROOT, spec.src)
    exe = os.path.join(tmp, spec.name)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run([nncc, src, "-o", exe], capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0 or not os.path.exists(exe):
            return None, None, None, "nncc -o exited %d: %s" % (p.returncode, p.stderr.strip()[:500])
    so = os.path.join(tmp, "lib" + spec.name + ".so")
    p = subprocess.run([nncc, src, "-o", so], capture_output=True, text=True, timeout=600)
    so_size = os.path.getsize(so) if p.returncode == 0 and os.path.exists(so) else None
    return statistics.median(times), os.path.getsize(exe), so_size, None


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None   # Debian's `time`


def time_nncc(exe, npy, spec, runs, threads, wfile=None):
    """Median microseconds per call on `threads` threads (NNCC_NUM_THREADS), from the
    executable's own --bench timing; the weights from `wfile` (safetensors) when given."""
    cmd = [exe, "--bench", str(runs), "--input", "%s=%s" % (spec.input_name, npy)]
    if wfile:
        cmd += ["--weights", wfile]
    env = dict(os.environ, NNCC_NUM_THREADS=str(threads))
    # GNU time reports the executable's peak resident memory (loading the weights included);
    # the child's own ru_maxrss through os.wait4 would count this big Python process, which
    # the child is a fork of until its exec.
    rss_file = os.path.join(os.path.dirname(npy), "maxrss.txt")
    wrap = [GNU_TIME, "-f", "%M", "-o", rss_file] if GNU_TIME else []
    p = subprocess.run(wrap + cmd, capture_output=True, text=True, timeout=1200, env=env)
    m = BENCH_RE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                 (p.stderr or p.stdout).strip()[:500]))
    rss = None
    if GNU_TIME:
        try:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
    return float(m.group(3)), rss


# --- PyTorch -------------------------------------------------------------------------------

def time_torch(mod, x, runs, threads, mode):
    set_threads(threads)
    ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
    ts = []
    gc.disable()
    try:
        with ctx:
            for _ in range(warmups(runs)):
                mod(x)
            for _ in range(runs):
                t0 = time.perf_counter()
                mod(x)
                ts.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return statistics.median(ts) * 1e6


# --- ONNX Runtime --------------------------------------------------------------------------

ORT_DIR = os.path.join(HERE, ".onnx")


class Ort:
    """onnxruntime-node behind bench/ort_server.js; None-safe: every failure disables it."""

    def __init__(self):
        self.proc = None
        self.version = None
        pkg = os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")
        node = shutil.which("node")
        if not node or not os.path.exists(pkg):
            self.why = "onnxruntime-node is not installed in bench/.onnx (see README.md)"
            return
        with open(pkg) as f:
            self.version = json.load(f).get("version")
        env = dict(os.environ, NODE_PATH=os.path.join(ORT_DIR, "node_modules"))
        self.proc = subprocess.Popen([node, os.path.join(HERE, "ort_server.js")], cwd=ORT_DIR, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.why = None

    def ok(self):
        return self.proc is not None

    def request(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("ort_server.js died")
        rep = json.loads(line)
        if "error" in rep:
            raise RuntimeError("onnxruntime: " + rep["error"])
        return rep["median_us"]

    def close(self):
        if self.proc:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def export_onnx(spec, mod, x):
    """bench/.onnx/models/<name>.onnx with dynamic batch (and seq); reused when up to date."""
    d = os.path.join(ORT_DIR, "models")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, spec.name + ".onnx")
    srcs = [os.path.join(HERE, f) for f in ("torch_models.py", "run.py")]
    if os.path.exists(path) and os.path.getmtime(path) > max(os.path.getmtime(f) for f in srcs):
        return path
    axes = {0: "batch"}
    out_axes = {0: "batch"}
    if None in spec.dims:
        axes[1 + spec.dims.index(None)] = "seq"
        with torch.no_grad():
            y = mod(x)
        if y.dim() >= 3 or (y.dim() == 2 and y.shape[1] == x.shape[1]):   # one output per step
            out_axes[1] = "seq"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, (x,), path + ".tmp", opset_version=13, input_names=[spec.input_name],
                          output_names=["out"], dynamic_axes={spec.input_name: axes, "out": out_axes})
    os.replace(path + ".tmp", path)
    return path


# --- one model -----------------------------------------------------------------------------

def make_input(spec, batch, seq, rng):
    shape = (batch,) + tuple(seq if d is None else d for d in spec.dims)
    if spec.dtype == "i32":
        return rng.integers(0, spec.vocab, size=shape, dtype=np.int32)
    return rng.standard_normal(shape).astype(np.float32)


class Point:
    """The measurements of one (model, batch, seq): engine -> [per-round median us]."""

    def __init__(self, model, batch, seq):
        self.model, self.batch, self.seq = model, batch, seq
        self.t = {}
        self.ratio = {}   # engine -> [per-round ratio engine_time / nncc_time at the same threads]
        self.runs = {}
        self.roofline = {}   # threads -> [per-round roofline_time / nncc_time]
        self.flops = None
        self.params = None   # parameters (floats), for the memory target
        self.rss = {}        # nncc engine -> peak resident MiB of its process (max over rounds)
        self.error = None


ENGINES_TORCH = [("torch1", 1, "no_grad"), ("torch2", 2, "no_grad"), ("torch1_im", 1, "inference_mode")]
# each peer is compared with nncc at its own thread count; "nncc2" -> nncc1 / nncc2, the speed-up
BASE = {"torch1": "nncc1", "torch2": "nncc2", "torch1_im": "nncc1", "ort1": "nncc1", "ort2": "nncc2",
        "nncc2": "nncc1"}


def ratios(pt):
    for name in pt.t:
        if name == "nncc2":
            pt.ratio[name] = [a / b for a, b in zip(pt.t["nncc1"], pt.t["nncc2"])]
        elif name in BASE:
            pt.ratio[name] = [a / b for a, b in zip(pt.t[name], pt.t[BASE[name]])]


def same_weights(nncc, spec, mod, tmp, notes):
    """A safetensors file of the twin's weights for nncc (bench/weights.py), or None (noted)."""
    try:
        tensors = weights.match(mod, weights.nncc_params(nncc, os.path.join(SRCROOT, spec.src)))
        path = os.path.join(tmp, spec.name + ".safetensors")
        weights.write_safetensors(path, tensors)
        return path
    except Exception as e:  # noqa: BLE001 - timing does not depend on the values: go on
        notes.append("%s: nncc runs its own initialisation (%s)" % (spec.name, str(e)[:200]))
        return None


def bench_model(spec, exe, st, ort, tmp, failures, log, spin, cost, machine, nncc, notes):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    mod = torch_models.MODELS[spec.name]().eval()
    wfile = same_weights(nncc, spec, mod, tmp, notes)
    onnx_path = None
    if ort is not None and ort.ok():
        try:
            x0 = make_input(spec, 1, SEQ, rng)
            xt = torch.from_numpy(x0.astype(np.int64) if spec.dtype == "i32" else x0)
            onnx_path = export_onnx(spec, mod, xt)
        except Exception as e:  # noqa: BLE001 - ORT is optional: report, go on without it
            failures.append((spec.name, "onnx export", str(e)[:300]))
    points = []
    nncc_per_sample = None   # seconds per sample, from batch 1, to size the larger batches
    for batch, seq in spec.points:
        pt = Point(spec.name, batch, seq)
        points.append(pt)
        x = make_input(spec, batch, seq or SEQ, rng)
        npy = os.path.join(tmp, "%s_b%d.npy" % (spec.name, batch))
        np.save(npy, x)
        xt = torch.from_numpy(x.astype(np.int64) if spec.dtype == "i32" else x)
        try:
            # calibration: one torch call (after one more), one nncc call at batch 1
            set_threads(1)
            with torch.no_grad():
                mod(xt)
                t0 = time.perf_counter()
                mod(xt)
                est_torch = time.perf_counter() - t0
            if nncc_per_sample is None:
                nncc_per_sample = time_nncc(exe, npy, spec, 1, 1, wfile)[0] * 1e-6 / batch
            est_nncc = nncc_per_sample * batch
            engines = [("nncc1", 1, None), ("nncc2", 2, None)] + ENGINES_TORCH
            est = {"nncc1": est_nncc, "nncc2": est_nncc / 1.5, "torch1": est_torch, "torch2": est_torch / 1.5,
                   "torch1_im": est_torch}
            ort_feed = None
            if onnx_path:
                bin_path = npy[:-4] + ".bin"
                (x.astype(np.int64) if spec.dtype == "i32" else x).tofile(bin_path)
                ort_feed = [{"name": spec.input_name, "dtype": "int64" if spec.dtype == "i32" else "float32",
                             "shape": list(x.shape), "file": bin_path}]
                try:
                    base = {"model": onnx_path, "inputs": ort_feed, "threads": 1, "spin": spin,
                            "runs": 1, "warmup": 1}
                    est["ort1"] = ort.request(base) * 1e-6
                    est["ort2"] = est["ort1"] / 1.5
                    engines += [("ort1", 1, None), ("ort2", 2, None)]
                except Exception as e:  # noqa: BLE001
                    failures.append((spec.name, "onnxruntime b%d" % batch, str(e)[:300]))
            slow = max(est.values()) > st.slow
            rounds = st.slow_rounds if slow else st.rounds
            if slow:   # inference_mode only saves per-op overhead: invisible at this size
                engines = [e for e in engines if e[0] != "torch1_im"]
            for name, _, _ in engines:
                pt.runs[name] = st.runs(est[name])
                pt.t[name] = []
            for r in range(rounds):
                order = engines if r % 2 == 0 else engines[::-1]
                if r == 1:   # size the later rounds on what round 0 measured
                    for name in pt.t:
                        pt.runs[name] = st.runs(pt.t[name][0] * 1e-6)
                for name, threads, mode in order:
                    if name.startswith("nncc"):
                        v, rss = time_nncc(exe, npy, spec, pt.runs[name], threads, wfile)
                        if rss:
                            pt.rss[name] = max(pt.rss.get(name, 0), rss)
                    elif name.startswith("torch"):
                        v = time_torch(mod, xt, pt.runs[name], threads, mode)
                    else:
                        v = ort.request({"model": onnx_path, "inputs": ort_feed, "threads": threads, "spin": spin,
                                         "runs": pt.runs[name], "warmup": warmups(pt.runs[name])})
                    pt.t[name].append(v)
            ratios(pt)
            if cost is not None:
                pt.flops = cost.flops(batch, seq)
                pt.params = cost.params
            if cost is not None and machine and "error" not in machine:
                for n in (1, 2):
                    roof = cost.roofline_s(batch, seq, machine["fma_gflops_%dt" % n], machine["read_gbs_%dt" % n])
                    pt.roofline[n] = [roof * 1e6 / v for v in pt.t["nncc%d" % n]]
            log(format_point(pt))
        except Exception as e:  # noqa: BLE001 - one failing point must not stop the others
            pt.error = str(e)[:500]
            failures.append((spec.name, "run b%d%s" % (batch, " s%d" % seq if seq else ""), pt.error))
            log("  %s batch %d: FAILED: %s" % (spec.name, batch, pt.error))
    set_threads(1)
    return points


# --- report --------------------------------------------------------------------------------

def med(v):
    return statistics.median(v) if v else None


def fmt_us(v):
    if v is None:
        return "-"
    if v >= 100000:
        return "%.0f ms" % (v / 1000)
    if v >= 10000:
        return "%.1f ms" % (v / 1000)
    return "%.1f" % v if v < 100 else "%.0f" % v


def fmt_ratio(v, with_range=True):
    if not v:
        return "-"
    s = "%.2f" % statistics.median(v)
    if with_range and len(v) > 1:
        s += " (%.2f-%.2f)" % (min(v), max(v))
    return s


def fmt_frac(v):
    return "%.0f%%" % (100 * statistics.median(v)) if v else "-"


def format_point(pt):
    parts = ["  %-12s b%-3d%s" % (pt.model, pt.batch, " s%d" % pt.seq if pt.seq else "    ")]
    for name in ("nncc1", "nncc2", "torch1", "torch2", "torch1_im", "ort1", "ort2"):
        if name in pt.t:
            parts.append("%s %s%s" % (name, fmt_us(med(pt.t[name])),
                                      " x%.2f" % med(pt.ratio[name]) if pt.ratio.get(name) else ""))
    for n in (1, 2):
        if pt.roofline.get(n):
            parts.append("roof%d %s" % (n, fmt_frac(pt.roofline[n])))
    return "  ".join(parts)


def machine_brief(m):
    """'FMA a / b GFLOP/s, read c / d GB/s' (1 / 2 threads) of a measurement."""
    return "FMA %.1f / %.1f GFLOP/s, read %.1f / %.1f GB/s" % (
        m.get("fma_gflops_1t", 0), m.get("fma_gflops_2t", 0), m.get("read_gbs_1t", 0), m.get("read_gbs_2t", 0))


def drift_lines(m, end):
    """The measurement at the end of the run beside the one at the start (which the fractions use)."""
    if not m or not end or "error" in m:
        return []
    keys = [k for k in ("fma_gflops_1t", "fma_gflops_2t", "read_gbs_1t", "read_gbs_2t") if k in m and k in end]
    change = max((abs(end[k] / m[k] - 1) for k in keys if m[k] > 0), default=0.0)
    line = "- at the end of the run: %s; the largest change against the start %.0f%%" % (machine_brief(end),
                                                                                          100 * change)
    if change > 0.05:
        line += (" (**the host's speed changed during the run**: its fractions compare less well with "
                 "another run's)")
    return [line]


def machine_lines(m):
    if not m:
        return []
    if "error" in m:
        return ["- measured: not available (%s); no roofline fractions" % m["error"]]

    def fig(key, unit, fmt):
        return " / ".join((fmt % m[key % n]) if key % n in m else "-" for n in (1, 2)) + " " + unit

    return [
        "- FMA peak, 1 / 2 threads: **%s** (%d-float vectors, %d independent FMA chains per thread; "
        "thread CPU time; by wall clock at that moment: %s)"
        % (fig("fma_gflops_%dt", "GFLOP/s", "%.1f"), m.get("lanes", 0), m.get("fma_accumulators", 0),
           fig("fma_gflops_%dt_wall", "GFLOP/s", "%.1f")),
        "- DRAM read bandwidth, 1 / 2 threads: **%s** (sum over %d MiB; by wall clock %s); "
        "triad: %s" % (fig("read_gbs_%dt", "GB/s", "%.1f"), m.get("buffer_mib", 0),
                       fig("read_gbs_%dt_wall", "GB/s", "%.1f"), fig("triad_gbs_%dt", "GB/s", "%.1f")),
    ]


# --- issue 8's targets, checked against this run's figures ---------------------------------
ROOF_MODELS = ("alexnet", "vgg16", "inception", "resnet_mini")   # >= 80% (1t), >= 75% (2t)
COMPUTE_BOUND = (("vgg16", None), ("alexnet", 8), ("inception", 8), ("resnet_mini", 32), ("lenet5", 64))
TRAIN_ROOF = ("lenet5", "resnet_mini")    # the conv models' training steps: >= 60%


def targets(points, tpoints, builds):
    """One line per target of issue 8: met, or not met with the rows that miss it (medians
    over rounds, as in the tables).  The conv layers' own target is bench/conv_layers.py's."""
    pts = [p for p in points if not p.error]
    out = ["## Targets (issue 8)\n",
           "Each target against this run's medians; a row that misses it is listed with its figure.\n"]

    def line(what, misses, checked):
        if not checked:
            out.append("- %s: not measured in this run" % what)
        elif misses:
            out.append("- %s: **not met** (%s)" % (what, ", ".join(misses)))
        else:
            out.append("- %s: met" % what)

    def row(p):
        return "%s b%d" % (p.model, p.batch)

    for n, goal in ((1, 0.80), (2, 0.75)):
        sel = [p for p in pts if p.model in ROOF_MODELS and p.roofline.get(n)]
        line("roofline >= %d%% on %d thread%s (%s)" % (goal * 100, n, "s" if n > 1 else "", ", ".join(ROOF_MODELS)),
             ["%s %s" % (row(p), fmt_frac(p.roofline[n])) for p in sel if med(p.roofline[n]) < goal], sel)
    sel = [p for p in pts if any(p.model == m and (b is None or p.batch == b) for m, b in COMPUTE_BOUND)
           and p.ratio.get("nncc2")]
    line("2 threads >= 1.8x 1 thread on the compute-bound rows",
         ["%s %.2f" % (row(p), med(p.ratio["nncc2"])) for p in sel if med(p.ratio["nncc2"]) < 1.8], sel)
    for peer, name in (("ort", "ONNX Runtime"), ("torch", "PyTorch")):
        sel = [(p, n) for p in pts for n in (1, 2) if p.ratio.get("%s%d" % (peer, n))]
        line("ahead of %s on every inference row, 1 and 2 threads" % name,
             ["%s %dt %.2f" % (row(p), n, med(p.ratio["%s%d" % (peer, n)])) for p, n in sel
              if med(p.ratio["%s%d" % (peer, n)]) <= 1.0], sel)
    sel = [p for p in pts if p.model == "lenet5" and p.batch == 1]
    miss = []
    for p in sel:
        for peer, goal in (("torch1", 12.0), ("ort1", 3.0)):
            if p.ratio.get(peer) and med(p.ratio[peer]) < goal:
                miss.append("%s %.2f" % (peer[:-1], med(p.ratio[peer])))
    line("lenet5 b1 >= 12x PyTorch and >= 3x ONNX Runtime (1 thread)", miss, sel)
    tps = [p for p in tpoints if not p.error]
    sel = [(p, n) for p in tps for n in (1, 2) if p.ratio.get("torch%d" % n)]
    line("training steps >= 2x PyTorch, 1 and 2 threads",
         ["%s %dt %.2f" % (p.model, n, med(p.ratio["torch%d" % n])) for p, n in sel
          if med(p.ratio["torch%d" % n]) < 2.0], sel)
    sel = [(p, n) for p in tps for n in (1, 2) if p.model.split(" ")[0] in TRAIN_ROOF and p.roofline.get(n)]
    line("conv models' training steps >= 60% of their training roofline",
         ["%s %dt %s" % (p.model, n, fmt_frac(p.roofline[n])) for p, n in sel if med(p.roofline[n]) < 0.60], sel)
    sel = [p for p in pts if p.model == "vgg16" and p.batch == 1 and p.rss.get("nncc1") and p.params]
    line("vgg16 b1 peak resident memory <= its weights + 64 MiB",
         ["%.0f MiB against %.0f" % (p.rss["nncc1"], p.params * 4 / 2**20 + 64) for p in sel
          if p.rss["nncc1"] > p.params * 4 / 2**20 + 64], sel)
    comp = [(m, lim) for m, lim in (("vgg16", 2.0), ("deep100", 5.0)) if m in builds and not builds[m].get("error")]
    line("vgg16 compiles in under 2 s, deep100 in under 5 s",
         ["%s %.2f s" % (m, builds[m]["time"]) for m, lim in comp if builds[m]["time"] >= lim], comp)
    out.append("- every AlexNet and VGG-16 convolution with >= 64 input channels at >= 85% of the FMA peak: "
               "bench/conv-layers.md (bench/conv_layers.py)")
    out.append("")
    return out


def report(points, tpoints, builds, failures, meta, with_ort):
    out = []
    out.append("# nncc benchmark: %s\n" % meta["date"])
    for k in ("cpu", "machine", "load", "nncc", "torch", "numpy", "blas", "onnxruntime", "threads", "weights",
              "mode"):
        if k in meta:
            out.append("- %s: %s" % (k, meta[k]))
    out.append("")
    out.append("## The machine (bench/machine.c)\n")
    out += machine_lines(meta.get("measured")) or ["- not measured (--no-machine): no roofline fractions"]
    out += drift_lines(meta.get("measured"), meta.get("measured_end"))
    out.append("")
    if meta.get("measured"):
        out.append("The roofline time of a row = its FLOPs at the FMA peak + its weights (parameters x 4 "
                   "bytes, read once) at the read bandwidth, with the 1-thread figures for 1 thread and the "
                   "2-thread figures for 2; **roofline = roofline time / nncc's median** (100%% = at the "
                   "roofline). FLOPs from `nncc --summary`. See bench/roofline.py. A row whose weights fit "
                   "in the caches (here: %s) can pass 100%%: its weights then come from cache, not DRAM, on "
                   "every call after the first. On a busy machine the fractions are understated: the peak "
                   "is the hardware's (CPU time), the medians are wall clock.\n" % cache_sizes())
    out.append("## Inference\n")
    out.append("Latency per forward call in microseconds (median over rounds of each round's median). "
               "Every ratio is peer_time / nncc_time **at the same thread count**, median over rounds "
               "(min-max); > 1 means nncc is faster. nncc MiB: the peak resident memory of nncc's "
               "process (`--bench` with the weights loaded from a file), max over the rounds.\n")
    out.append("### 1 thread\n")
    out.append("| model | batch | seq | MFLOP | nncc | roofline | nncc MiB | torch | torch/nncc | "
               "torch inference_mode | ratio | ORT | ORT/nncc |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pt in points:
        if pt.error:
            out.append("| %s | %d | %s | | FAILED | | | | | | | | |" % (pt.model, pt.batch, pt.seq or "-"))
            continue
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            pt.model, pt.batch, pt.seq or "-", "%.1f" % (pt.flops / 1e6) if pt.flops else "-",
            fmt_us(med(pt.t["nncc1"])), fmt_frac(pt.roofline.get(1)),
            "%.0f" % pt.rss["nncc1"] if pt.rss.get("nncc1") else "-",
            fmt_us(med(pt.t["torch1"])), fmt_ratio(pt.ratio["torch1"]),
            fmt_us(med(pt.t.get("torch1_im"))), fmt_ratio(pt.ratio.get("torch1_im"), False),
            fmt_us(med(pt.t.get("ort1"))), fmt_ratio(pt.ratio.get("ort1"))))
    out.append("\n### 2 threads\n")
    out.append("| model | batch | seq | nncc | nncc 1t/2t | roofline | torch | torch/nncc | ORT | ORT/nncc |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pt in points:
        if pt.error:
            continue
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            pt.model, pt.batch, pt.seq or "-", fmt_us(med(pt.t["nncc2"])), fmt_ratio(pt.ratio["nncc2"], False),
            fmt_frac(pt.roofline.get(2)), fmt_us(med(pt.t["torch2"])), fmt_ratio(pt.ratio["torch2"]),
            fmt_us(med(pt.t.get("ort2"))), fmt_ratio(pt.ratio.get("ort2"))))
    if not with_ort:
        out.append("\nONNX Runtime: %s.\n" % meta["onnxruntime"])
    if tpoints:
        out.append("\n## Training steps\n")
        out.append("One step = forward + backward + the optimizer's update on one batch, microseconds "
                   "(bench/train_bench.py: nncc's M_train_step through ctypes, PyTorch's "
                   "zero_grad/backward/step with the same optimizer). Roofline: 3x the forward FLOPs at the "
                   "peak + the weights and optimizer state read and written once at the bandwidth. "
                   "The LSTM, GRU and char-LSTM rows run at seq 64.\n")
        out.append("| model | batch | nncc 1t | roofline | torch 1t | torch/nncc | nncc 2t | nncc 1t/2t | "
                   "roofline | torch 2t | torch/nncc |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for pt in tpoints:
            if pt.error:
                out.append("| %s | %d | FAILED | | | | | | | | |" % (pt.model, pt.batch))
                continue
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                pt.model, pt.batch, fmt_us(med(pt.t["nncc1"])), fmt_frac(pt.roofline.get(1)),
                fmt_us(med(pt.t["torch1"])), fmt_ratio(pt.ratio["torch1"]),
                fmt_us(med(pt.t["nncc2"])), fmt_ratio(pt.ratio["nncc2"], False), fmt_frac(pt.roofline.get(2)),
                fmt_us(med(pt.t["torch2"])), fmt_ratio(pt.ratio["torch2"])))
    out.append("")
    out += targets(points, tpoints, builds)
    out.append("## Compilation\n")
    out.append("`nncc model.nn -o model`, median of %d, wall clock, and artifact sizes "
               "(no embedded weights: the parameters are initialised at run time).\n" % meta["compiles"])
    out.append("| model | compile s | executable KiB | shared library KiB |")
    out.append("|---|---:|---:|---:|")
    for name, b in builds.items():
        if b.get("error"):
            out.append("| %s | FAILED | | |" % name)
            continue
        out.append("| %s | %.2f | %.0f | %s |" % (name, b["time"], b["exe"] / 1024,
                                                  "%.0f" % (b["so"] / 1024) if b["so"] else "-"))
    if meta.get("chart"):
        out.append("\nChart: [%s](%s)" % (meta["chart"], meta["chart"]))
    if failures:
        out.append("\nFailures:\n")
        for model, stage, msg in failures:
            out.append("- %s (%s): %s" % (model, stage, msg.replace("\n", " ")))
    return "\n".join(out) + "\n"


def dry_run(specs, tspecs, st, args, log, nncc):
    """--dry-run: the plan, without compiling or timing anything.  With a compiler at hand it
    also checks what the run relies on: `nncc --summary` gives FLOPs (bench/roofline.py) and
    the torch twin's parameters match nncc's in order and shape (bench/weights.py)."""
    have_nncc = os.access(nncc, os.X_OK)
    if not have_nncc:
        print("(no nncc at %s: summaries and weight matching not checked)" % nncc)
    print("bench/run.py --dry-run: %s mode, %d round(s) (%d for calls > %.1f s), ~%.2f s of timed calls "
          "per measurement" % ("quick" if args.quick else "full", st.rounds, st.slow_rounds, st.slow, st.budget))
    print("machine: bench/machine.c, FMA peak and DRAM bandwidth on 1 and 2 threads%s"
          % (" (skipped: --no-machine)" if args.no_machine else ""))
    engines = ["nncc1", "nncc2"] + [e[0] for e in ENGINES_TORCH] + ([] if args.no_ort else ["ort1", "ort2"])
    for spec in specs:
        src = os.path.join(SRCROOT, spec.src)
        if not os.path.exists(src):
            raise SystemExit("missing model source %s" % spec.src)
        if spec.name not in torch_models.MODELS:
            raise SystemExit("no torch twin for %s in bench/torch_models.py" % spec.name)
        note = ""
        if have_nncc:
            cost = roofline.model_cost(nncc, src)
            torch.manual_seed(0)
            weights.match(torch_models.MODELS[spec.name](), weights.nncc_params(nncc, src))
            flops = " + ".join(f for f in ("{:,}".format(cost.flops_a) if cost.flops_a else "",
                                            "{:,} x seq".format(cost.flops_b) if cost.flops_b else "") if f)
            note = "  (%s FLOP/sample, %.2f MiB of weights, twin's weights match)" % (
                flops or "0", cost.params * 4 / 2**20)
        for batch, seq in spec.points:
            print("infer %-12s %-28s batch %-3d seq %-4s %s%s" % (spec.name, spec.src, batch, seq or "-",
                                                                   " ".join(engines), note))
            note = ""
    for t in tspecs:
        if not os.path.exists(os.path.join(SRCROOT, t.src)):
            raise SystemExit("missing model source %s" % t.src)
        if have_nncc:
            torch.manual_seed(0)
            weights.match(t.net(), weights.nncc_params(nncc, os.path.join(SRCROOT, t.src)))
        print("train %-12s %-28s batch %-3d          nncc1 nncc2 torch1 torch2" % (t.row, t.src, t.batch))
    if not args.no_machine:   # bench/machine.c still compiles (checked, not run)
        p = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-march=native", "-pthread", "-fsyntax-only",
                            os.path.join(HERE, "machine.c")], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit("bench/machine.c does not compile: " + p.stderr.strip()[:500])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_nncc = next((p for p in (os.path.join(SRCROOT, d, "nncc") for d in ("build-bench", "build"))
                         if os.path.exists(p)), os.path.join(SRCROOT, "build", "nncc"))
    ap.add_argument("--nncc", default=default_nncc, help="the compiler (default: %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: every row, one round of a few calls, a short machine measurement")
    ap.add_argument("--only", default="", help="comma-separated model names (inference and training rows)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--no-train", action="store_true", help="skip the training rows")
    ap.add_argument("--no-machine", action="store_true",
                    help="skip the machine measurement (and so the roofline fractions)")
    ap.add_argument("--no-chart", action="store_true", help="no PNG chart")
    ap.add_argument("--dry-run", action="store_true", help="print the rows and engines, run nothing")
    ap.add_argument("--omp-active", action="store_true",
                    help="let idle OpenMP / ORT threads spin (the libraries' default; see README.md)")
    ap.add_argument("--output", help="the Markdown file (default: bench/results.md, "
                                     "bench/results-quick.md with --quick); the chart goes beside it (.png)")
    args = ap.parse_args()
    st = Settings(args.quick)
    names = [s.name for s in SPECS]
    tnames = [t.row for t in train_bench.TRAIN_SPECS]
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in want if n not in names and n not in tnames]
        if bad:
            ap.error("unknown model(s) %s; known: %s" % (", ".join(bad), ", ".join(names)))
    else:
        want = names + tnames   # a training-only row (char_lstm) has no inference spec
    specs = [s for s in SPECS if s.name in want]
    tspecs = [] if args.no_train else [t for t in train_bench.TRAIN_SPECS if t.row in want]

    def log(s):
        print(s, file=sys.stderr, flush=True)

    nncc = os.path.abspath(args.nncc)
    if args.dry_run:
        return dry_run(specs, tspecs, st, args, log, nncc)
    if not os.access(nncc, os.X_OK):
        ap.error("no nncc at %s (build it, or pass --nncc)" % nncc)
    output = args.output or os.path.join(HERE, "results-quick.md" if args.quick else "results.md")

    blas_pkg = dpkg_version("libopenblas0-pthread")
    if OPENBLAS is None:
        log("WARNING: torch is not using OpenBLAS (libopenblas0-pthread %s): its dense and recurrent "
            "layers run on the reference BLAS and the comparison is meaningless"
            % ("installed" if blas_pkg else "not installed"))
    commit = sh(["git", "-C", SRCROOT, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", SRCROOT, "status", "--porcelain", "--untracked-files=no"])
    ort = None if args.no_ort else Ort()
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": "%s, %d logical CPUs" % (cpu_model(), os.cpu_count() or 0),
        "machine": "%s %s" % (platform.system(), platform.release()),
        "nncc": "%s (%s; commit %s%s)" % (sh([nncc, "--version"]).splitlines()[0] if sh([nncc, "--version"])
                                          else "?", os.path.relpath(nncc, SRCROOT), commit or "?",
                                          " + local changes" if dirty else ""),
        "torch": "%s (eager; %d intra-op threads by default)" % (torch.__version__, os.cpu_count() or 0),
        "numpy": np.__version__,
        "blas": ("OpenBLAS %s (%s)" % (blas_pkg or "?", OPENBLAS_PATH)) if OPENBLAS is not None
        else "REFERENCE BLAS: torch numbers are meaningless",
        "onnxruntime": ("onnxruntime-node %s" % ort.version) if ort and ort.ok()
        else ("not measured: %s" % (ort.why if ort else "--no-ort")),
        "mode": "quick (a smoke run: one round of a few calls; not figures to quote)" if args.quick else "full",
        "threads": "nncc NNCC_NUM_THREADS / nncc_set_num_threads = the column's thread count; "
                   "OMP_WAIT_POLICY=%s, ORT allow_spinning=%s, OpenBLAS threads = torch threads"
                   % (os.environ.get("OMP_WAIT_POLICY", "(default)"), "1" if args.omp_active else "0"),
        "load": "1-minute load average at the start %.1f" % os.getloadavg()[0],
        "compiles": st.compiles,
    }
    t_start = time.perf_counter()
    failures, points, tpoints, builds, weight_notes = [], [], [], {}, []
    machine = None
    tmp = tempfile.mkdtemp(prefix="nncc-bench-")
    try:
        if not args.no_machine:
            log("machine: measuring the FMA peak and the DRAM bandwidth (bench/machine.c)")
            try:
                machine = roofline.measure_machine(tmp, quick=args.quick, threads=2)
                log("  " + machine_brief(machine) + " (1 / 2 threads)")
            except Exception as e:  # noqa: BLE001 - the figures are then reported without rooflines
                machine = {"error": str(e)[:300]}
                failures.append(("machine", "measurement", machine["error"]))
                log("  FAILED: " + machine["error"])
            meta["measured"] = machine
        def build(spec, what="compiling"):
            """Compiles spec into tmp and records it in the compilation table; its error or None."""
            log("%s: %s" % (spec.name, what))
            secs, exe_size, so_size, err = compile_model(nncc, spec, tmp, st.compiles)
            builds[spec.name] = {"time": secs, "exe": exe_size, "so": so_size, "error": err}
            if err:
                failures.append((spec.name, "build", err))
                log("  FAILED: " + err)
            return err

        for spec in specs:
            if build(spec):
                continue
            try:
                cost = roofline.model_cost(nncc, os.path.join(SRCROOT, spec.src))
            except Exception as e:  # noqa: BLE001
                cost = None
                failures.append((spec.name, "summary", str(e)[:300]))
            points += bench_model(spec, os.path.join(tmp, spec.name), st, ort, tmp, failures, log,
                                  args.omp_active, cost, machine, nncc, weight_notes)
        for spec in COMPILE_ONLY:
            build(spec, "compiling (compile time only)")
        if tspecs:
            log("training steps")
            tpoints = train_bench.bench_training(nncc, tmp, st, set_threads, warmups,
                                                 machine if machine and "error" not in machine else None,
                                                 failures, log, only=[t.row for t in tspecs],
                                                 notes=weight_notes)
        if machine and "error" not in machine:
            # the same measurement again at the end: a host whose speed changed during the run
            # (a neighbour on the shared machine) shows as two different peaks, and the fractions
            # of that run are then less comparable with another run's
            log("machine: measuring again at the end")
            try:
                end = roofline.measure_machine(tmp, quick=args.quick, threads=2)
                meta["measured_end"] = end
                log("  " + machine_brief(end) + " (1 / 2 threads)")
            except Exception as e:  # noqa: BLE001 - only a check of the host
                log("  FAILED: %s" % e)
    finally:
        if ort:
            ort.close()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["mode"] += ", %.0f s" % (time.perf_counter() - t_start)
    meta["load"] += ", at the end %.1f" % os.getloadavg()[0]
    meta["weights"] = ("the same in every engine: the PyTorch twin's (seeded default initialisation), copied "
                       "into nncc by bench/weights.py" + ("; except " + "; ".join(weight_notes) if weight_notes
                                                          else ""))
    if not args.no_chart:
        try:
            import chart   # matplotlib, imported only here
            chart.write_chart(points, tpoints, chart_path := chart_path_for(output), meta)
            meta["chart"] = os.path.basename(chart_path)
            log("chart written to %s" % os.path.relpath(chart_path))
        except Exception as e:  # noqa: BLE001 - the table matters more than the picture
            failures.append(("chart", "matplotlib", str(e)[:300]))
            log("chart: FAILED: %s" % e)
    text = report(points, tpoints, builds, failures, meta, bool(ort and ort.ok()))
    sys.stdout.write(text)
    with open(output, "w") as f:
        f.write(text)
    log("written to %s" % os.path.relpath(output))
    return 1 if failures else 0


def chart_path_for(output):
    return os.path.splitext(output)[0] + ".png"


if __name__ == "__main__":
    sys.exit(main())
