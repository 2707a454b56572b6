"""Training throughput on one machine: 1 process x 1 thread, 1 process x 2 threads, 2 processes
x 1 thread (MPI), for LeNet-5 (Fashion-MNIST) and the mlp, so users can see which to pick.

    /usr/bin/python3 bench/mpi_throughput.py [--nncc build/nncc] [--samples 6400] [--rounds 3]
                                             [--output bench/mpi-results.md]

Each configuration trains one epoch on the first --samples images of Fashion-MNIST
(/usr/share/datasets/fashion-mnist, written as plain IDX files first) with the same global
batch (--batch, default 64: the 2-process runs use --batch 32 each, so all three compute the
same thing) and reads the trainer's own figure from its epoch line ("N samples/s": the steps
only, without start-up and data loading; under MPI, process 0's, which includes the gradient
exchange).  Rounds interleave the configurations (ABBA order) and the figure is the median over
rounds.  Threads: the runtime reads NNCC_NUM_THREADS (issue 8) only when the executable
contains that name; otherwise the "2 threads" row runs on one thread and says so.
The Markdown table goes to stdout and to --output.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist"
MODELS = [("fmnist_lenet5", "image", "label"), ("mlp", "pixels", "digit")]
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
          "--mca", "oob_tcp_if_include", "lo"]


def sh(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def rate(out):
    """(samples/s, % of the epoch in the gradient exchange or None) from the epoch line."""
    m = re.search(r"epoch 1/1: loss [0-9.naif]+, [0-9.]+ s, ([0-9.]+) samples/s"
                  r"(?: \(([0-9.]+)% exchanging gradients\))?", out)
    if not m:
        raise RuntimeError("no epoch line in:\n" + out)
    return float(m.group(1)), (float(m.group(2)) if m.group(2) else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nncc", default=os.path.join(ROOT, "build", "nncc"))
    ap.add_argument("--samples", type=int, default=6400)
    ap.add_argument("--batch", type=int, default=64, help="the global batch (even)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", default=os.path.join(ROOT, "bench", "mpi-results.md"))
    args = ap.parse_args()
    if args.batch % 2:
        sys.exit("--batch must be even (two processes share it)")
    if not shutil.which("mpirun"):
        sys.exit("no mpirun: apt-get install openmpi-bin libopenmpi-dev (scripts/install-deps.sh)")
    tmp = tempfile.mkdtemp(prefix="nncc-mpi-bench-")
    sh([sys.executable, os.path.join(ROOT, "test", "exec", "mpi", "subset_idx.py"), str(args.samples),
        tmp, os.path.join(DATA, "train-images-idx3-ubyte.gz"), os.path.join(DATA, "train-labels-idx1-ubyte.gz")])
    images, labels = os.path.join(tmp, "train-images-idx3-ubyte"), os.path.join(tmp, "train-labels-idx1-ubyte")
    load0 = os.getloadavg()
    rows = []
    for model, x, y in MODELS:
        src = os.path.join(ROOT, "examples", model + ".nn")
        exe, exe_mpi = os.path.join(tmp, model), os.path.join(tmp, model + "_mpi")
        sh([args.nncc, src, "-o", exe])
        sh([args.nncc, src, "-o", exe_mpi, "--mpi"])
        with open(exe, "rb") as f:
            threads_read = b"NNCC_NUM_THREADS" in f.read()
        data = ["--data", "%s=%s" % (x, images), "--data", "%s=%s" % (y, labels), "--seed", "1",
                "--progress", "0"]
        env1 = dict(os.environ, NNCC_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env2 = dict(os.environ, NNCC_NUM_THREADS="2", OMP_NUM_THREADS="1")
        configs = [
            ("1 process x 1 thread", [exe, "train", "--batch", str(args.batch)] + data, env1),
            ("1 process x 2 threads", [exe, "train", "--batch", str(args.batch)] + data, env2),
            ("2 processes x 1 thread (MPI)", MPIRUN + ["-np", "2", exe_mpi, "train", "--batch",
                                                      str(args.batch // 2)] + data, env1),
        ]
        got = {c[0]: [] for c in configs}
        wait = {c[0]: [] for c in configs}
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else list(reversed(configs))
            for name, cmd, env in order:
                r_, w_ = rate(sh(cmd, env=env))
                got[name].append(r_)
                if w_ is not None:
                    wait[name].append(w_)
                print("%s %s round %d: %.0f samples/s" % (model, name, r + 1, got[name][-1]),
                      file=sys.stderr)
        base = statistics.median(got[configs[0][0]])
        for name, _, _ in configs:
            v = statistics.median(got[name])
            note = ""
            if "2 threads" in name and not threads_read:
                note = "the runtime has no threads yet (NNCC_NUM_THREADS, issue 8): runs on 1 thread"
            if wait[name]:
                note = "%.0f%% of the epoch in the gradient exchange (waiting for the other process included)" % (
                    statistics.median(wait[name]))
            rows.append((model, name, v, min(got[name]), max(got[name]), v / base, note))
    load1 = os.getloadavg()
    shutil.rmtree(tmp)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Training throughput: threads or processes (bench/mpi_throughput.py)",
        "",
        "%s, nncc %s, %s, %d cores; load average %.2f at start, %.2f at the end." % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, cpu, os.cpu_count() or 0,
            load0[0], load1[0]),
        "One epoch of %d Fashion-MNIST samples, global batch %d (2 processes: %d each), the "
        "trainer's samples/s, median of %d interleaved rounds [min-max]." % (
            args.samples, args.batch, args.batch // 2, args.rounds),
        "",
        "| model | configuration | samples/s | vs 1 x 1 | note |",
        "|---|---|---:|---:|---|",
    ]
    for model, name, v, lo, hi, rel, note in rows:
        lines.append("| %s | %s | %.0f [%.0f-%.0f] | %.2fx | %s |" % (model, name, v, lo, hi, rel, note))
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(args.output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
