"""check_init.py - checks the default initialisation of default_init.nn's parameters
against the documented distributions (docs/language.md, "Default initialisation"):
conv and dense weights U(-b, b) with b = sqrt(6 / fan_in) (He uniform; fan_in = C*k*k for
conv2d, C*k for conv1d, K for dense), their biases 0; recurrent weights and biases
U(-1/sqrt(units), 1/sqrt(units)); embeddings N(0, 1).

  check_init.py CREATE.safetensors SEED7.safetensors SEED0.safetensors

For each parameter: the bounds (every value inside, the extremes near them), the mean and
the variance (within 5 standard errors), then `OK name ...` or `BAD name: why`.  Also: seed 0
by initm_init equals initm_create's values, seed 7 differs.  Last line `N parameters OK`
or `N BAD`; exit 1 on any BAD.
"""
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "exec",
                                "conformance"))
import st  # noqa: E402

# binding -> (kind, fan_in or units), from default_init.nn
LAYERS = {
    "c2": ("he", 16 * 3 * 3), "c2b": ("he", 16 * 5 * 5), "c1": ("he", 24 * 5), "d": ("he", 200),
    "r": ("rec", 48), "l": ("rec", 32), "g": ("rec", 24), "e": ("normal", None),
}
EXPECTED = {  # every parameter the model must have, with its shape
    "c2.weight": (32, 16, 3, 3), "c2.bias": (32,), "c2b.weight": (20, 16, 5, 5), "c2b.bias": (20,),
    "c1.weight": (48, 24, 5), "c1.bias": (48,), "d.weight": (64, 200), "d.bias": (64,),
    "r.weight_ih_l0": (48, 40), "r.weight_hh_l0": (48, 48), "r.bias_ih_l0": (48,), "r.bias_hh_l0": (48,),
    "e.weight": (300, 16),
}
for l in (0, 1):
    k = 40 if l == 0 else 32
    EXPECTED.update({"l.weight_ih_l%d" % l: (128, k), "l.weight_hh_l%d" % l: (128, 32),
                     "l.bias_ih_l%d" % l: (128,), "l.bias_hh_l%d" % l: (128,)})
for sfx in ("", "_reverse"):
    EXPECTED.update({"g.weight_ih_l0" + sfx: (72, 40), "g.weight_hh_l0" + sfx: (72, 24),
                     "g.bias_ih_l0" + sfx: (72,), "g.bias_hh_l0" + sfx: (72,)})


def check_uniform(w, b):
    n = w.size
    a = np.abs(w)
    if a.max() > b * (1 + 1e-6):
        return "max|w| = %.5g is above the bound %.5g (%.2fx)" % (a.max(), b, a.max() / b)
    if a.max() < b * (1 - 20.0 / n):   # P(max below) = (1 - 20/n)^n ~ e^-20
        return "max|w| = %.5g is well below the bound %.5g" % (a.max(), b)
    se = b / math.sqrt(3 * n)
    if abs(w.mean()) > 5 * se:
        return "mean %.4g, expected 0 +- %.3g" % (w.mean(), 5 * se)
    var, want = float((w.astype(np.float64) ** 2).mean()), b * b / 3
    if abs(var / want - 1) > 5 * math.sqrt(0.8 / n):
        return "variance %.5g, expected b^2/3 = %.5g" % (var, want)
    return None


def check_normal(w):
    n = w.size
    if abs(w.mean()) > 5 / math.sqrt(n):
        return "mean %.4g, expected 0" % w.mean()
    var = float(w.astype(np.float64).var())
    if abs(var - 1) > 5 * math.sqrt(2.0 / n):
        return "variance %.4g, expected 1" % var
    inside = float(np.mean(np.abs(w) < 1))
    if abs(inside - 0.6827) > 5 * math.sqrt(0.6827 * 0.3173 / n):
        return "%.3f of the values within 1 standard deviation, expected 0.683" % inside
    return None


def main():
    create, seed7, seed0 = (st.load(p) for p in sys.argv[1:4])
    bad = 0
    if sorted(create) != sorted(EXPECTED):
        print("BAD names: missing %s, extra %s" % (sorted(set(EXPECTED) - set(create)),
                                                   sorted(set(create) - set(EXPECTED))))
        bad += 1
    for name in sorted(create):
        w = np.asarray(create[name])
        binding, pname = name.split(".", 1)
        kind, fan = LAYERS[binding]
        if name in EXPECTED and tuple(w.shape) != EXPECTED[name]:
            why = "shape %s, expected %s" % (list(w.shape), list(EXPECTED[name]))
        elif kind == "he" and pname == "bias":
            why = None if not np.any(w) else "bias not zero (max |b| %.3g)" % np.abs(w).max()
            desc = "zero"
        elif kind == "he":
            why, desc = check_uniform(w, math.sqrt(6.0 / fan)), "U(+-sqrt(6/%d))" % fan
        elif kind == "rec":
            why, desc = check_uniform(w, 1 / math.sqrt(fan)), "U(+-1/sqrt(%d))" % fan
        else:
            why, desc = check_normal(w), "N(0, 1)"
        if why is None and not np.array_equal(w, seed0[name]):
            why = "init(0) differs from create()"
        if why is None and (np.any(w) and np.array_equal(w, seed7[name])):
            why = "init(7) equals init(0)"
        if why:
            print("BAD %s: %s" % (name, why))
            bad += 1
        else:
            print("OK  %s %s n=%d" % (name, desc, w.size))
    print("%d parameters OK" % len(create) if not bad else "%d BAD" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
