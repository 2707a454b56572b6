#!/usr/bin/env python3
"""fit_tanh.py - the rational fit behind nncc's tanh (compiler/codegen.c, emit_tanh):

    tanh(x) ~ x P(x^2) / Q(x^2),  P of degree NP, Q of degree NQ (Q(0) = 1),  0 <= x <= C

fitted to the relative error by linearised least squares (P - f Q = 0 weighted by 1 / (f Q),
f = tanh(x) / x), reweighted toward the largest errors until they level out (Lawson's
iteration), in the scaled variable t = x^2 / C^2 so that the system stays well conditioned;
prints the fit's own largest relative error (before float32 rounding) and the coefficients
of x^2.  How close codegen.c's float32 evaluation comes is test/exec/activation_ulp.test's
measurement.

    /usr/bin/python3 scripts/fit_tanh.py [NP NQ C]        (codegen.c: 5 4 9.1)
"""
import sys

import numpy as np


def fit(NP, NQ, C, iters=200):
    S = C * C
    x = np.concatenate([np.linspace(1e-5, 1, 20000), np.linspace(1, C, 40000)])
    t = x * x / S
    f = np.tanh(x) / x

    def powers(n):
        return np.stack([t ** i for i in range(n + 1)], 1)

    w = np.ones_like(x)
    Qprev = np.ones_like(t)
    best = None
    for _ in range(iters):
        A = np.concatenate([powers(NP), -f[:, None] * powers(NQ)[:, 1:]], 1)
        W = w / (np.abs(f) * np.abs(Qprev))
        sol, *_ = np.linalg.lstsq(A * W[:, None], f * W, rcond=None)
        p, q = sol[:NP + 1], np.concatenate([[1.0], sol[NP + 1:]])
        Qprev = powers(NQ) @ q
        err = (x * (powers(NP) @ p) / Qprev - np.tanh(x)) / np.tanh(x)
        m = np.max(np.abs(err))
        if best is None or m < best[2]:
            best = (p, q, m)
        w = w * (np.abs(err) / m) ** 0.3
        w = w / w.max() + 1e-9
    p, q, m = best
    return [p[i] / S ** i for i in range(NP + 1)], [q[i] / S ** i for i in range(NQ + 1)], m


def main():
    NP, NQ, C = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])) if len(sys.argv) > 3 else (5, 4, 9.1)
    p, q, m = fit(NP, NQ, C)
    print("NP %d NQ %d on [0, %g]: largest relative error %.3e" % (NP, NQ, C, m))
    print("p = {%s}" % ", ".join("%.17g" % v for v in p))
    print("q = {%s}" % ", ".join("%.17g" % v for v in q))


if __name__ == "__main__":
    main()
