"""conv_layers.py - each convolution layer of AlexNet and VGG-16 with at least 64 input channels,
compiled alone and timed on one thread, as a fraction of the machine's measured FMA peak.

    /usr/bin/python3 bench/conv_layers.py [--nncc build/nncc] [--batch 1] [--threads 1]
                                           [--out bench/conv-layers.md]

Each layer is a one-op model `output y = conv2d(x, F, kernel=k, stride=s, pad=p)` on its input
shape in the network (examples/alexnet.nn, examples/vgg16.nn); its FLOPs are nncc's own
(`--summary`: 2 per multiply-add, plus the bias), its time the median of `./layer --bench N`
(weights from the default initialisation: the time does not depend on them).  The peak is
bench/machine.c's FMA figure for the same thread count, measured in the same run.  The issue's
target is >= 85% of the peak on one thread for every such layer: the kernels' quality, so the
fraction is measured on the direct schedule (`--no-winograd`).  Each 3x3 layer at stride 1 is
timed by default too, where inference takes Winograd's F(2x2, 3x3) (2.25x fewer multiply-adds):
its time and the speedup over the direct schedule, its "effective" GFLOP/s counting the direct
schedule's FLOPs (so it can pass the peak).  The two builds run alternately, so the host's
drift moves both alike.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.dirname(HERE)

# (network, layer, C, H, W, F, kernel, stride, pad): the layers' input shapes in the networks
LAYERS = [
    ("alexnet", "conv2", 96, 27, 27, 256, 5, 1, 2),
    ("alexnet", "conv3", 256, 13, 13, 384, 3, 1, 1),
    ("alexnet", "conv4", 384, 13, 13, 384, 3, 1, 1),
    ("alexnet", "conv5", 384, 13, 13, 256, 3, 1, 1),
    ("vgg16", "b1.1", 64, 224, 224, 64, 3, 1, 1),
    ("vgg16", "b2.0", 64, 112, 112, 128, 3, 1, 1),
    ("vgg16", "b2.1", 128, 112, 112, 128, 3, 1, 1),
    ("vgg16", "b3.0", 128, 56, 56, 256, 3, 1, 1),
    ("vgg16", "b3.1", 256, 56, 56, 256, 3, 1, 1),
    ("vgg16", "b4.0", 256, 28, 28, 512, 3, 1, 1),
    ("vgg16", "b4.1", 512, 28, 28, 512, 3, 1, 1),
    ("vgg16", "b5.0", 512, 14, 14, 512, 3, 1, 1),
]


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout)[-400:]))
    return p.stdout


def machine_peak(tmp, threads):
    exe = os.path.join(tmp, "machine")
    run(["cc", "-O2", "-march=native", "-pthread", os.path.join(HERE, "machine.c"), "-o", exe, "-lm"])
    out = run([exe, "--quick"])
    m = re.search(r"^fma_gflops_%dt ([0-9.]+)" % threads, out, re.M)
    if not m:
        raise RuntimeError("machine.c printed no fma_gflops_%dt" % threads)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nncc", default=os.path.join(SRCROOT, "build", "nncc"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "conv-layers.md"))
    a = ap.parse_args()
    env = dict(os.environ, NNCC_NUM_THREADS=str(a.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        peak = machine_peak(tmp, a.threads)
        print("FMA peak, %d thread(s): %.1f GFLOP/s" % (a.threads, peak))
        for (net, name, c, h, w, f, k, s, p) in LAYERS:
            src = os.path.join(tmp, "l.nn")
            with open(src, "w") as fh:
                fh.write("model layer {\n  input x : f32[%d, %d, %d]\n"
                         "  output y = conv2d(x, %d, kernel=%d, stride=%d, pad=%d)\n}\n" % (c, h, w, f, k, s, p))
            summary = run([a.nncc, src, "--summary"])
            m = re.search(r"Total FLOPs per sample: ([0-9,]+)", summary)
            flops = int(m.group(1).replace(",", "")) * a.batch
            exe = os.path.join(tmp, "layer")
            run([a.nncc, src, "--no-winograd", "-o", exe])
            wexe = None
            if k == 3 and s == 1:
                wexe = os.path.join(tmp, "layer_w")
                run([a.nncc, src, "-o", wexe])
            # about a second of calls, in 3 rounds alternating the two builds
            first = run([exe, "--bench", "1", "--batch", str(a.batch)], env)
            t1 = float(re.search(r"median ([0-9.]+) us", first).group(1))
            n = max(3, min(2000, int(1e6 / max(t1, 1.0) / 3)))
            meds, mins, wmeds = [], [], []
            for _ in range(3):
                out = run([exe, "--bench", str(n), "--batch", str(a.batch)], env)
                meds.append(float(re.search(r"median ([0-9.]+) us", out).group(1)))
                mins.append(float(re.search(r"min ([0-9.]+) us", out).group(1)))
                if wexe:
                    out = run([wexe, "--bench", str(n), "--batch", str(a.batch)], env)
                    wmeds.append(float(re.search(r"median ([0-9.]+) us", out).group(1)))
            us, best = sorted(meds)[1], min(mins)
            wus = sorted(wmeds)[1] if wmeds else None
            gflops = flops / us / 1e3
            rows.append((net, name, c, h, w, f, k, us, gflops, gflops / peak, flops / best / 1e3 / peak, wus))
            print("%-8s %-6s %4d x %3d x %3d -> %3d, k%d: %10.1f us  %6.1f GFLOP/s  %5.1f%% of peak (best call %5.1f%%)%s" % (
                net, name, c, h, w, f, k, us, gflops, 100 * gflops / peak, 100 * rows[-1][-2],
                "; Winograd %.1f us, %.2fx" % (wus, us / wus) if wus else ""))
    with open(a.out, "w") as fh:
        fh.write("# Convolution layers alone: fraction of the FMA peak\n\n")
        fh.write("bench/conv_layers.py, batch %d, %d thread(s); FMA peak measured in the same run (bench/machine.c): "
                 "**%.1f GFLOP/s**. Target (issue 8): >= 85%% on one thread for every layer with >= 64 input "
                 "channels.\n\n" % (a.batch, a.threads, peak))
        fh.write("Direct schedule (`--no-winograd`): median us, GFLOP/s and of peak from the median of three rounds' "
                 "medians; best call: the fastest call (the spread between them is this machine's noise: other "
                 "tenants of a shared host slow some calls, not the kernel).  Default build (3x3 at stride 1: "
                 "Winograd F(2x2, 3x3)): its median, the speedup over the direct schedule, and its effective "
                 "GFLOP/s (the direct schedule's FLOPs over its time).\n\n")
        fh.write("| network | layer | C x H x W | F | kernel | median us | GFLOP/s | of peak | best call "
                 "| Winograd us | speedup | effective GFLOP/s |\n")
        fh.write("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for (net, name, c, h, w, f, k, us, g, frac, bfrac, wus) in rows:
            wcols = "%.1f | %.2fx | %.1f" % (wus, us / wus, g * us / wus) if wus else "- | - | -"
            fh.write("| %s | %s | %d x %d x %d | %d | %d | %.1f | %.1f | %.0f%% | %.0f%% | %s |\n"
                     % (net, name, c, h, w, f, k, us, g, 100 * frac, 100 * bfrac, wcols))
    print("written to %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
