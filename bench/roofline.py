"""roofline.py - what the machine allows and what a model needs, for bench/run.py.

measure_machine() compiles bench/machine.c (cc -O2 -march=native -pthread) and returns its
figures: FMA peak in GFLOP/s and DRAM read / triad bandwidth in GB/s, on 1 and N threads,
each from the threads' CPU time (what the hardware gives a running thread) and from wall time
(what this shared machine gave at that moment).

model_cost() reads `nncc model.nn --summary`: the FLOPs per sample (a + b*seq for a model
with a sequence length) and the parameters, each layer's from the layer table; an embedding
counts as the rows a call can read (batch * seq rows at most), not the whole table.

A roofline time = FLOPs / peak + compulsory weight bytes / bandwidth, where
  inference: FLOPs = batch * per-sample FLOPs; weight bytes = parameters * 4 (each read once),
  training:  FLOPs = 3 * the forward FLOPs (forward, backward-data, weight-gradient);
             weight bytes = parameters * 4 * (2 + 2 * optimizer state tensors): the weights
             read and written once, each state tensor (momentum; Adam's two moments) read and
             written once; gradients are assumed to stay in cache.
The fraction of the roofline = roofline time / measured median (1.0 = at the roofline).
"""
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def measure_machine(tmp, quick=False, threads=2, log=print):
    """{'fma_gflops_1t': .., 'read_gbs_2t': .., 'fma_gflops_1t_wall': .., 'lanes': ..} or raises."""
    exe = os.path.join(tmp, "machine")
    cc = os.environ.get("CC", "cc")
    p = subprocess.run([cc, "-O2", "-march=native", "-pthread", os.path.join(HERE, "machine.c"), "-o", exe],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("cannot compile bench/machine.c: " + p.stderr.strip()[:500])
    cmd = [exe, "--threads", str(threads)] + (["--quick"] if quick else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("bench/machine.c exited %d: %s" % (p.returncode, p.stderr.strip()[:500]))
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = float(parts[1])
    return out


_NUM = r"[0-9][0-9,]*"
_TOTAL_FLOPS = re.compile(r"^Total FLOPs per sample: (%s)(?:\s*\+\s*(%s)\s*\S\s*seq)?" % (_NUM, _NUM), re.M)
_TOTAL_FLOPS_SEQ_ONLY = re.compile(r"^Total FLOPs per sample: (%s)\s*\S\s*seq\b" % _NUM, re.M)
_TOTAL_PARAMS = re.compile(r"^Total parameters: (%s)" % _NUM, re.M)
_OPT = re.compile(r"optimizer=(\w+)(.*)$", re.M)


def _int(s):
    return int(s.replace(",", ""))


class Cost:
    """A model's work: flops(batch, seq), weight_bytes(batch, seq), optimizer state count."""

    def __init__(self, flops_a, flops_b, params, embed_rows, optimizer_states):
        self.flops_a = flops_a          # per sample, constant part
        self.flops_b = flops_b          # per sample, per step of seq
        self.params = params            # all parameters (floats)
        self.embed = embed_rows         # [(vocab, dim)] of the embedding tables
        self.states = optimizer_states  # state tensors per parameter (None: no training)

    def flops(self, batch, seq=None):
        return batch * (self.flops_a + self.flops_b * (seq or 0))

    def weight_bytes(self, batch, seq=None):
        n = self.params
        for vocab, dim in self.embed:   # a call reads at most batch * seq rows of a table
            n -= vocab * dim - min(vocab, batch * (seq or 1)) * dim
        return 4 * n

    def roofline_s(self, batch, seq, peak_gflops, bw_gbs):
        return self.flops(batch, seq) / (peak_gflops * 1e9) + self.weight_bytes(batch, seq) / (bw_gbs * 1e9)

    def train_roofline_s(self, batch, seq, peak_gflops, bw_gbs):
        wbytes = 4 * self.params * (2 + 2 * (self.states or 0))
        return 3 * self.flops(batch, seq) / (peak_gflops * 1e9) + wbytes / (bw_gbs * 1e9)


def parse_summary(text):
    m = _TOTAL_FLOPS_SEQ_ONLY.search(text)
    if m:
        a, b = 0, _int(m.group(1))
    else:
        m = _TOTAL_FLOPS.search(text)
        if not m:
            raise ValueError("no 'Total FLOPs per sample' in nncc --summary")
        a, b = _int(m.group(1)), _int(m.group(2)) if m.group(2) else 0
    m = _TOTAL_PARAMS.search(text)
    if not m:
        raise ValueError("no 'Total parameters' in nncc --summary")
    params = _int(m.group(1))
    embed = []
    for line in text.splitlines():   # the layer table: name  op  shape  params  FLOPs
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) >= 4 and cols[1] == "embedding":
            dim = re.search(r"(\d+)\]$", cols[2])
            rows = _int(cols[3])
            if dim and rows:
                d = int(dim.group(1))
                embed.append((rows // d, d))
    states = None
    m = _OPT.search(text)
    if m:
        opt, rest = m.group(1), m.group(2)
        if opt == "adam":
            states = 2
        elif opt == "sgd":
            mom = re.search(r"momentum=([0-9.e+-]+)", rest)
            states = 1 if mom and float(mom.group(1)) != 0 else 0
        else:   # adagrad, rmsprop: one accumulator
            states = 1
    return Cost(a, b, params, embed, states)


def model_cost(nncc, src):
    p = subprocess.run([nncc, src, "--summary"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("nncc --summary exited %d: %s" % (p.returncode, p.stderr.strip()[:300]))
    return parse_summary(p.stdout)
