"""chart.py - the PNG beside results.md: bench/run.py's ratios and roofline fractions.

Top: peer_time / nncc_time at the same thread count (log scale, > 1: nncc faster) for every
inference row and training row: PyTorch 1t, PyTorch 2t, ONNX Runtime 1t, ONNX Runtime 2t.
Bottom: nncc's fraction of the roofline (roofline time / measured median) on 1 and 2 threads.
matplotlib with the Agg back end (no display needed); python3-matplotlib on Debian.
"""
import re
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = [("torch1", "PyTorch 1t / nncc 1t", "#d62728"), ("torch2", "PyTorch 2t / nncc 2t", "#ff9896"),
          ("ort1", "ORT 1t / nncc 1t", "#1f77b4"), ("ort2", "ORT 2t / nncc 2t", "#aec7e8")]


def _med(v):
    return statistics.median(v) if v else None


def write_chart(points, tpoints, path, meta):
    rows = [(("%s b%d" % (p.model, p.batch)) + (" s%d" % p.seq if p.seq else ""), p)
            for p in points if not p.error]
    rows += [("train %s b%d" % (p.model, p.batch), p) for p in tpoints if not p.error]
    if not rows:
        raise ValueError("nothing to plot")
    n = len(rows)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(10, 0.55 * n + 2), 9), sharex=True)
    x = range(n)
    width = 0.8 / len(SERIES)
    for k, (key, label, color) in enumerate(SERIES):
        vals = [_med(p.ratio.get(key)) for _, p in rows]
        if not any(vals):
            continue
        xs = [i - 0.4 + width * (k + 0.5) for i in x]
        ax1.bar([a for a, v in zip(xs, vals) if v], [v for v in vals if v], width, label=label, color=color)
    ax1.axhline(1.0, color="black", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_ylabel("peer time / nncc time (> 1: nncc faster)")
    ax1.set_title("nncc vs PyTorch and ONNX Runtime at the same thread count (%s, %s run)"
                  % (meta.get("date", ""), (re.findall(r"[a-z]+", meta.get("mode", "")) or ["?"])[0]),
                  fontsize=10)
    ax1.legend(fontsize=8, ncol=4)
    ax1.grid(axis="y", which="both", alpha=0.3)
    for k, (threads, color) in enumerate(((1, "#2ca02c"), (2, "#98df8a"))):
        vals = [_med(p.roofline.get(threads)) for _, p in rows]
        xs = [i - 0.2 + 0.4 * k for i in x]
        ax2.bar([a for a, v in zip(xs, vals) if v is not None], [100 * v for v in vals if v is not None], 0.4,
                label="nncc %d thread%s" % (threads, "s" if threads > 1 else ""), color=color)
    ax2.axhline(100, color="black", linewidth=0.8)
    ax2.set_yscale("log")
    ax2.set_ylabel("% of the roofline\n(FLOPs at peak + weights at DRAM bandwidth)")
    m = meta.get("measured") or {}
    if "fma_gflops_1t" in m:
        ax2.set_title("machine: FMA %.0f / %.0f GFLOP/s, DRAM read %.1f / %.1f GB/s (1 / 2 threads)" % (
            m["fma_gflops_1t"], m.get("fma_gflops_2t", 0), m["read_gbs_1t"], m.get("read_gbs_2t", 0)),
            fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(axis="y", which="both", alpha=0.3)
    ax2.set_xticks(list(x))
    ax2.set_xticklabels([r for r, _ in rows], rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
