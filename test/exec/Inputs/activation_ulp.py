"""activation_ulp.py - how far nncc's tanh and sigmoid are from the exact values, in units in
the last place of the float32 result, over a dense sweep of [-12, 12], every decade from 1e-30
up, and the special values (+-0, +-inf, NaN, the clamps at |x| = 9 and 88.7).

    activation_ulp.py --nncc NNCC --dir DIR

Builds `output y = tanh(x)` / `sigmoid(x)` executables for one f32 vector of every point,
runs them on a .npy input and compares with float64 references.  Prints one line per op:
its largest error in ulps (the reference's float32 spacing; below the smallest normal, that
normal: a result that underflows may be flushed to 0), where, and PASS or FAIL against the op's bound; then the properties:
|tanh| <= 1, tanh odd, sigmoid in [0, 1], exact 0 / 1 / +-1 at the infinities, NaN in, NaN
out.  The bounds are the formulas' own with a little room, not room for a coarser formula:
tanh, codegen.c's rational fit (scripts/fit_tanh.py), 4.8 ulps measured over every float in
[0, 12] (its first version, the Cephes exp form, 1.2); sigmoid, a Cephes exp and a
division, 2.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

BOUND = {"tanh": 5.0, "sigmoid": 3.0}
TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 9.0, -9.0, 8.999, 9.001, 88.72, -88.72, 88.73,
               -88.73, 87.3, -87.3, 100.0, -100.0, 1e30, -1e30]
    decades = np.geomspace(1e-30, 12, 30000)
    x = np.concatenate([np.linspace(-12, 12, 240001), decades, -decades, special]).astype(np.float32)
    pos = np.arange(240001, 240001 + decades.size)  # x[neg] = -x[pos]
    neg = pos + decades.size
    xin = os.path.join(a.dir, "x.npy")
    np.save(xin, x[None, :])
    xd = x.astype(np.float64)
    ok = True
    with np.errstate(over="ignore", invalid="ignore"):
        refs = {"tanh": np.tanh(xd), "sigmoid": 1.0 / (1.0 + np.exp(-xd))}
    ys = {}
    for op in ("tanh", "sigmoid"):
        src = os.path.join(a.dir, op + ".nn")
        with open(src, "w") as f:
            f.write("model m {\n  input x : f32[%d]\n  output y = %s(x)\n}\n" % (x.size, op))
        exe = os.path.join(a.dir, op)
        subprocess.run([a.nncc, src, "-o", exe], check=True)
        out = os.path.join(a.dir, op + ".npy")
        subprocess.run([exe, "--input", "x=" + xin, "--output", "y=" + out], check=True,
                       stdout=subprocess.DEVNULL)
        y = np.load(out)[0].astype(np.float64)
        ys[op] = y
        ref = refs[op]
        fin = np.isfinite(xd)
        ulp = np.spacing(np.abs(ref[fin]).astype(np.float32)).astype(np.float64)
        ulp = np.where(np.abs(ref[fin]) < TINY, TINY, ulp)  # an underflowed result may be 0
        err = np.abs(y[fin] - ref[fin]) / ulp
        i = int(np.argmax(err))
        worst = float(err[i])
        good = worst <= BOUND[op]
        ok &= good
        print("%s %s: max %.2f ulp at x = %.9g (got %.9g, exact %.9g), bound %g" %
              ("PASS" if good else "FAIL", op, worst, x[fin][i], y[fin][i], ref[fin][i], BOUND[op]))
    t, s = ys["tanh"], ys["sigmoid"]
    # with denormals kept (NNCC_DENORMALS=keep, no flush to zero), sigmoid's limit at -inf is
    # still exactly 0: exp(-x) overflows to inf past the clamp, not to a large finite value
    # whose reciprocal is a denormal (which the default flush would hide)
    out = os.path.join(a.dir, "sigmoid_keep.npy")
    subprocess.run([os.path.join(a.dir, "sigmoid"), "--input", "x=" + xin, "--output", "y=" + out], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, NNCC_DENORMALS="keep"))
    sk = np.load(out)[0].astype(np.float64)
    fin = np.isfinite(x)
    props = [
        ("tanh within [-1, 1]", bool(np.all(np.abs(t[fin]) <= 1.0))),
        ("tanh odd", bool(np.array_equal(t[pos], -t[neg]))),
        ("sigmoid within [0, 1]", bool(np.all((s[fin] >= 0.0) & (s[fin] <= 1.0)))),
        ("tanh(+-inf) = +-1", bool(t[x == np.inf][0] == 1.0 and t[x == -np.inf][0] == -1.0)),
        ("sigmoid(inf) = 1, sigmoid(-inf) = 0", bool(s[x == np.inf][0] == 1.0 and s[x == -np.inf][0] == 0.0)),
        ("sigmoid(-inf) = 0, sigmoid(-100) = 0 with denormals kept",
         bool(sk[x == -np.inf][0] == 0.0 and sk[x == -100.0][0] == 0.0)),
        ("tanh(NaN), sigmoid(NaN) are NaN", bool(np.isnan(t[np.isnan(x)]).all() and np.isnan(s[np.isnan(x)]).all())),
        ("tanh(+-0) = +-0", bool(t[(x == 0) & ~np.signbit(x)][0] == 0.0 and np.signbit(t[(x == 0) & np.signbit(x)][0]))),
    ]
    for name, good in props:
        ok &= good
        print("%s %s" % ("PASS" if good else "FAIL", name))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
