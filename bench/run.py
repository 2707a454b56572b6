#!/usr/bin/python3
"""run.py - nncc against PyTorch (and ONNX Runtime) on the example models, side by side.

    /usr/bin/python3 bench/run.py [--nncc build-bench/nncc] [--quick] [--only lenet5,mlp]
        [--no-ort] [--omp-active] [--output FILE]

For each example model: compile it with `nncc model.nn -o model` (timed, median of a few
compilations; the executable's and the shared library's sizes are recorded), then measure
forward latency at batch 1 and a larger batch (seq 32 for the recurrent models):

  nncc      `./model --bench N --input NAME=x.npy` (one thread; the runtime warms up, times
            N calls and prints the median per call),
  PyTorch   the same network (bench/torch_models.py), eval mode, float32, the same input
            array, warm-up then the median of N calls: torch.no_grad() with 1 and 2 threads,
            and torch.inference_mode() with 1 thread,
  ORT       optionally, onnxruntime-node on a torch.onnx.export (opset 13) of the module,
            intra-op threads 1 and 2 (bench/ort_server.js; needs bench/.onnx, see README.md).

The engines are interleaved within each round (nncc, torch..., ORT...; the order reversed on
every other round) and the rounds repeated, so that the drift of this shared machine hits all
of them alike.  A figure is the median over rounds of the per-round medians; a ratio is
the median over rounds of the per-round torch_time / nncc_time (> 1: nncc is faster),
with the range over rounds beside it.  The table goes to stdout and to bench/results.md
(bench/results-quick.md with --quick).  Exit status 1 when a model failed to build or run.

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
import torch_models  # noqa: E402

SEQ = 32


class Spec:
    """One example model: its single input and the (batch, seq) points to measure."""

    def __init__(self, name, input_name, dims, dtype, vocab, points):
        self.name = name              # examples/<name>.nn and torch_models.MODELS key
        self.input_name = input_name  # the .nn input's name
        self.dims = dims              # per-sample dims; None is the symbolic length (seq)
        self.dtype = dtype            # "f32" or "i32" (token ids)
        self.vocab = vocab            # id range for i32 inputs
        self.points = points          # [(batch, seq or None)]


SPECS = [
    Spec("lenet5", "image", (1, 32, 32), "f32", 0, [(1, None), (32, None)]),
    Spec("mlp", "pixels", (784,), "f32", 0, [(1, None), (32, None)]),
    Spec("resnet_mini", "image", (3, 32, 32), "f32", 0, [(1, None), (32, None)]),
    Spec("inception", "x", (192, 28, 28), "f32", 0, [(1, None), (8, None)]),
    Spec("alexnet", "image", (3, 227, 227), "f32", 0, [(1, None), (8, None)]),
    Spec("vgg16", "image", (3, 224, 224), "f32", 0, [(1, None), (8, None)]),
    Spec("char_rnn", "chars", (None, 4), "f32", 0, [(1, SEQ), (32, SEQ)]),
    Spec("sentiment", "words", (None,), "i32", 1000, [(1, SEQ), (32, SEQ)]),
    Spec("tagger", "words", (None,), "i32", 5000, [(1, SEQ), (32, SEQ)]),
]
QUICK = ["lenet5", "mlp", "char_rnn", "resnet_mini"]

BENCH_RE = re.compile(r"(\d+) runs: min ([0-9.]+) us, median ([0-9.]+) us, mean ([0-9.]+) us")


class Settings:
    def __init__(self, quick):
        self.budget = 0.2 if quick else 0.4   # seconds of timed calls per measurement
        self.rounds = 3                        # rounds for a point whose call is < slow
        self.slow_rounds = 2
        self.slow = 0.3                        # seconds per call
        self.min_runs = 3
        self.max_runs = 2000
        self.compiles = 3                      # compilations timed per model

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
    src = os.path.join(SRCROOT, "examples", spec.name + ".nn")
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


def time_nncc(exe, npy, spec, runs):
    """Median microseconds per call, from the executable's own --bench timing."""
    cmd = [exe, "--bench", str(runs), "--input", "%s=%s" % (spec.input_name, npy)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    m = BENCH_RE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                 (p.stderr or p.stdout).strip()[:500]))
    return float(m.group(3))


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
    src = os.path.join(HERE, "torch_models.py")
    if os.path.exists(path) and os.path.getmtime(path) > os.path.getmtime(src):
        return path
    axes = {0: "batch"}
    if None in spec.dims:
        axes[1 + spec.dims.index(None)] = "seq"
    out_axes = {0: "batch", 1: "seq"} if spec.name in ("char_rnn", "tagger") else {0: "batch"}
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
        self.ratio = {}   # engine -> [per-round nncc-relative ratio]
        self.runs = {}
        self.error = None


ENGINES_TORCH = [("torch1", 1, "no_grad"), ("torch2", 2, "no_grad"), ("torch1_im", 1, "inference_mode")]


def bench_model(spec, exe, st, ort, tmp, failures, log, spin):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    mod = torch_models.MODELS[spec.name]().eval()
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
                nncc_per_sample = time_nncc(exe, npy, spec, 1) * 1e-6 / batch
            est_nncc = nncc_per_sample * batch
            engines = [("nncc", None, None)] + ENGINES_TORCH
            est = {"nncc": est_nncc, "torch1": est_torch, "torch2": est_torch / 1.5,
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
                    if name == "nncc":
                        v = time_nncc(exe, npy, spec, pt.runs[name])
                    elif name.startswith("torch"):
                        v = time_torch(mod, xt, pt.runs[name], threads, mode)
                    else:
                        v = ort.request({"model": onnx_path, "inputs": ort_feed, "threads": threads, "spin": spin,
                                         "runs": pt.runs[name], "warmup": warmups(pt.runs[name])})
                    pt.t[name].append(v)
            for name in pt.t:
                if name != "nncc":
                    pt.ratio[name] = [a / b for a, b in zip(pt.t[name], pt.t["nncc"])]
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


def format_point(pt):
    parts = ["  %-12s b%-3d%s" % (pt.model, pt.batch, " s%d" % pt.seq if pt.seq else "    ")]
    for name in ("nncc", "torch1", "torch2", "torch1_im", "ort1", "ort2"):
        if name in pt.t:
            parts.append("%s %s%s" % (name, fmt_us(med(pt.t[name])),
                                      "" if name == "nncc" else " x%.2f" % med(pt.ratio[name])))
    return "  ".join(parts)


def report(points, builds, failures, meta, with_ort):
    out = []
    out.append("# nncc benchmark: %s\n" % meta["date"])
    for k in ("cpu", "machine", "load", "nncc", "torch", "numpy", "blas", "onnxruntime", "threads", "mode"):
        out.append("- %s: %s" % (k, meta[k]))
    out.append("")
    out.append("Latency per forward call in microseconds (median over rounds of each round's median). "
               "Ratio = torch_time / nncc_time, median over rounds (min-max); > 1 means nncc is "
               "faster. nncc runs on one thread.\n")
    out.append("| model | batch | seq | nncc | torch 1t | ratio 1t | torch 2t | ratio 2t | "
               "torch 1t inference_mode | ratio |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pt in points:
        if pt.error:
            out.append("| %s | %d | %s | FAILED | | | | | | |" % (pt.model, pt.batch, pt.seq or "-"))
            continue
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            pt.model, pt.batch, pt.seq or "-", fmt_us(med(pt.t["nncc"])),
            fmt_us(med(pt.t["torch1"])), fmt_ratio(pt.ratio["torch1"]),
            fmt_us(med(pt.t["torch2"])), fmt_ratio(pt.ratio["torch2"]),
            fmt_us(med(pt.t.get("torch1_im"))), fmt_ratio(pt.ratio.get("torch1_im"), False)))
    if with_ort:
        out.append("\nONNX Runtime (onnxruntime-node, torch.onnx.export opset 13), same rounds; "
                   "ratio = ort_time / nncc_time.\n")
        out.append("| model | batch | seq | nncc | ORT 1t | ratio 1t | ORT 2t | ratio 2t |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for pt in points:
            if pt.error or "ort1" not in pt.t:
                continue
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
                pt.model, pt.batch, pt.seq or "-", fmt_us(med(pt.t["nncc"])),
                fmt_us(med(pt.t["ort1"])), fmt_ratio(pt.ratio["ort1"]),
                fmt_us(med(pt.t["ort2"])), fmt_ratio(pt.ratio["ort2"])))
    out.append("\nCompilation (`nncc model.nn -o model`, median of %d, wall clock) and artifact sizes "
               "(no embedded weights: the parameters are initialised at run time).\n" % meta["compiles"])
    out.append("| model | compile s | executable KiB | shared library KiB |")
    out.append("|---|---:|---:|---:|")
    for name, b in builds.items():
        if b.get("error"):
            out.append("| %s | FAILED | | |" % name)
            continue
        out.append("| %s | %.2f | %.0f | %s |" % (name, b["time"], b["exe"] / 1024,
                                                  "%.0f" % (b["so"] / 1024) if b["so"] else "-"))
    if failures:
        out.append("\nFailures:\n")
        for model, stage, msg in failures:
            out.append("- %s (%s): %s" % (model, stage, msg.replace("\n", " ")))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_nncc = next((p for p in (os.path.join(SRCROOT, d, "nncc") for d in ("build-bench", "build"))
                         if os.path.exists(p)), os.path.join(SRCROOT, "build", "nncc"))
    ap.add_argument("--nncc", default=default_nncc, help="the compiler (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="lenet5, mlp, char_rnn, resnet_mini; shorter")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--omp-active", action="store_true",
                    help="let idle OpenMP / ORT threads spin (the libraries' default; see README.md)")
    ap.add_argument("--output", help="the Markdown file (default: bench/results.md, "
                                     "bench/results-quick.md with --quick)")
    args = ap.parse_args()
    st = Settings(args.quick)
    names = [s.name for s in SPECS]
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in want if n not in names]
        if bad:
            ap.error("unknown model(s) %s; known: %s" % (", ".join(bad), ", ".join(names)))
    else:
        want = QUICK if args.quick else names
    specs = [s for s in SPECS if s.name in want]
    nncc = os.path.abspath(args.nncc)
    if not os.access(nncc, os.X_OK):
        ap.error("no nncc at %s (build it, or pass --nncc)" % nncc)
    output = args.output or os.path.join(HERE, "results-quick.md" if args.quick else "results.md")

    def log(s):
        print(s, file=sys.stderr, flush=True)

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
        "mode": "quick" if args.quick else "full",
        "threads": "OMP_WAIT_POLICY=%s, ORT allow_spinning=%s, OpenBLAS threads = torch threads"
                   % (os.environ.get("OMP_WAIT_POLICY", "(default)"), "1" if args.omp_active else "0"),
        "load": "1-minute load average at the start %.1f" % os.getloadavg()[0],
        "compiles": 1,
    }
    st.compiles = 2 if args.quick else 3
    meta["compiles"] = st.compiles
    t_start = time.perf_counter()
    failures, points, builds = [], [], {}
    tmp = tempfile.mkdtemp(prefix="nncc-bench-")
    try:
        for spec in specs:
            log("%s: compiling" % spec.name)
            secs, exe_size, so_size, err = compile_model(nncc, spec, tmp, st.compiles)
            builds[spec.name] = {"time": secs, "exe": exe_size, "so": so_size, "error": err}
            if err:
                failures.append((spec.name, "build", err))
                log("  FAILED: " + err)
                continue
            points += bench_model(spec, os.path.join(tmp, spec.name), st, ort, tmp, failures, log,
                                  args.omp_active)
    finally:
        if ort:
            ort.close()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["mode"] += ", %.0f s" % (time.perf_counter() - t_start)
    meta["load"] += ", at the end %.1f" % os.getloadavg()[0]
    text = report(points, builds, failures, meta, bool(ort and ort.ok()))
    sys.stdout.write(text)
    with open(output, "w") as f:
        f.write(text)
    log("written to %s" % os.path.relpath(output))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
