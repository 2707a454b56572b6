"""measure.py - the element-wise error measure of the execution tests (run.py, and the
reference scripts in test/exec/Inputs).

a is nncc's float32 output, b the reference: the same network in PyTorch, in float64, on
the same float32 weights and inputs.  Each element is held to a relative error, with an
absolute floor of its own: how much float32 rounding can move that element.

    err_i   = |a_i - b_i| / max(|b_i|, FACTOR * s_i, 1e-30)
    max_rel_err = max_i err_i  <=  TOL = 1e-4

s_i, the element's rounding scale, is measured, not guessed: the float64 reference is run
RUNS more times with every float weight, every float input and every layer's output (each
leaf module's, through a forward hook, and every torch function's result, through a
TorchFunctionMode) multiplied by (1 + u * 2^-24), u uniform in (-1, 1) - the relative error
of rounding each of them to float32 - and s_i is the largest |b'_i - b_i| over those runs.
A dense or convolution layer's output moves by 2^-24 * sum_j |w_ij x_j| + |b_i| instead
(its sum's rounding grows with its terms, not with the possibly cancelled result), and
log_softmax's by 2^-24 * (1 + |y|) (its log(sum) is O(1)).  So s_i follows the element's own magnitude and
conditioning: a dot product's s_i grows with its terms (not with its possibly cancelled
sum), a softmax tail's or a small tanh's shrinks with the value, a chaotic recurrent
state's grows with the sensitivity of the recurrence.  Nothing depends on the largest
value of the output: a small element wrong by 5% of itself fails even when a large one
sits beside it (tanh without its small-|x| branch is 4.6% off at x = 1e-6).

FACTOR (= 1e5, so that an element near zero may be off by TOL * FACTOR = 10 rounding
scales) covers what one perturbation cannot show: a float32 sum's rounding error grows
with the number of its terms (the perturbation's with their root-sum-square), and three
random draws can all land small.  Measured with run.py --calibrate (the factor each case
would need): PyTorch's own float32 output needs up to ~1e3 on this suite, nncc up to ~2e3;
see docs/internals.md.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

EPS32 = 2.0 ** -24   # float32 unit roundoff
TINY = 4 * 2.0 ** -126 / 1e-4   # |a - b| <= 4 FLT_MIN always passes (values flushed to zero)
TOL = 1e-4
FACTOR = 1e5
RUNS = 3


def _perturb(x, g):
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        u = torch.rand(x.shape, generator=g, dtype=torch.float64) * 2 - 1
        return x * (1 + EPS32 * u.to(x.dtype))
    if isinstance(x, tuple):
        return tuple(_perturb(v, g) for v in x)
    if isinstance(x, list):
        return [_perturb(v, g) for v in x]
    if isinstance(x, dict):
        return {k: _perturb(v, g) for k, v in x.items()}
    return x


def _sum_abs_terms(m, x):
    """For a dense or convolution layer m on input x: sum_j |w_ij x_j| + |b_i| per output."""
    b = m.bias.abs() if m.bias is not None else None
    if isinstance(m, nn.Linear):
        return F.linear(x.abs(), m.weight.abs(), b)
    return m._conv_forward(x.abs(), m.weight.abs(), b)


def _layer_hook(g):
    """Perturbs a leaf module's output like a float32 rounding of it; a dense or convolution
    layer's by 2^-24 * sum|terms| with a random sign (the scale of its sum's rounding)."""
    def hook(m, inp, out):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and isinstance(out, torch.Tensor):
            sign = torch.randint(0, 2, out.shape, generator=g).to(out.dtype) * 2 - 1
            return out + EPS32 * sign * _sum_abs_terms(m, inp[0])
        return _perturb(out, g)
    return hook


class _Rounding(TorchFunctionMode):
    """Rounds (perturbs) the result of every torch function the reference calls, as a float32
    evaluation would: relatively, by up to 2^-24; log_softmax by +-2^-24 * (1 + |y|) (its
    log(sum) is O(1) whatever the result: at a row's maximum the result is -log(sum), which
    float32 rounds to the nearest multiple of its 1e-7 spacing near 1)."""

    def __init__(self, g):
        super().__init__()
        self.g = g

    def __torch_function__(self, func, types, args=(), kwargs=None):
        r = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") == "log_softmax" and isinstance(r, torch.Tensor):
            sign = torch.randint(0, 2, r.shape, generator=self.g).to(r.dtype) * 2 - 1
            return r + EPS32 * sign * (1 + r.abs())
        return _perturb(r, self.g)


def rounding_scale(forward, mod64, inputs, ref, runs=RUNS, seed=0):
    """s for every output: forward(mod64, inputs) -> {name: np.ndarray}; inputs are the
    float64 (or integer) tensors the reference ran on; ref its outputs.  mod64 is restored."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in mod64.parameters()]
    saved = [p.detach().clone() for p in params]
    hook = _layer_hook(g)
    hooks = [m.register_forward_hook(hook)
             for m in mod64.modules() if not list(m.children()) and m is not mod64]
    spread = {k: np.zeros(np.shape(v)) for k, v in ref.items()}
    try:
        for _ in range(runs):
            with torch.no_grad():
                for p, p0 in zip(params, saved):
                    p.copy_(_perturb(p0, g))
                ins = {k: _perturb(v, g) for k, v in inputs.items()}
                with _Rounding(g):
                    out = forward(mod64, ins)
            for k in spread:
                d = np.abs(np.asarray(out[k], dtype=np.float64) - np.asarray(ref[k], dtype=np.float64))
                spread[k] = np.maximum(spread[k], d)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved):
                p.copy_(p0)
        for h in hooks:
            h.remove()
    return spread


def element_errors(a, b, s, factor=FACTOR, floor=0.0):
    """err_i (see above) as float64; floor > 0 adds the old global floor floor * max|b|."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = np.maximum(np.abs(b64), factor * np.asarray(s, dtype=np.float64))
    if floor > 0 and b64.size:
        den = np.maximum(den, floor * np.max(np.abs(b64)))
    return np.abs(a64 - b64) / np.maximum(den, TINY)


def needed_factor(a, b, s, tol=TOL):
    """The smallest FACTOR with which max_rel_err(a) <= tol (0 when |b| alone suffices)."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = np.abs(a64 - b64)
    over = d > tol * np.maximum(np.abs(b64), TINY)
    if not np.any(over):
        return 0.0
    return float(np.max(d[over] / (tol * np.maximum(np.asarray(s)[over], 1e-300))))


def _forward_numpy(mod, kw):
    with torch.no_grad():
        res = mod(**kw)
    return {k: v.detach().cpu().numpy() for k, v in res.items()}


def check_outputs(mod, inputs, got, names, seed=0, tol=TOL):
    """For the reference scripts: mod is the float32 torch module (forward(**inputs) ->
    {name: tensor}), inputs its numpy inputs, got nncc's outputs {name: array}.  Runs the
    reference in float64 and PyTorch in float32, and returns (ok, message): message is
    `err=E  (torch f32: T)` (max_rel_err of nncc, and of PyTorch's float32 answer) or why
    the outputs are wrong.  tol = 0 asks for exact equality."""
    import copy
    mod = mod.eval()
    mod64 = copy.deepcopy(mod).double()
    t32 = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    t64 = {k: (v.double() if v.is_floating_point() else v) for k, v in t32.items()}
    want32 = _forward_numpy(mod, t32)
    want = _forward_numpy(mod64, t64)
    scale = rounding_scale(_forward_numpy, mod64, t64, want, seed=seed)
    worst = torch_err = 0.0
    for o in names:
        a, b = np.asarray(got[o]), want[o]
        if a.shape != b.shape:
            return False, "%s: shape %s, expected %s" % (o, list(a.shape), list(b.shape))
        if a.dtype != np.float32:
            return False, "%s: dtype %s, expected float32" % (o, a.dtype)
        if not np.all(np.isfinite(a)):
            return False, "%s: non-finite output" % o
        if a.size == 0:
            continue
        if tol == 0:
            err = float(np.max(np.abs(a.astype(np.float64) - b)))
        else:
            err = float(np.max(element_errors(a, b, scale[o])))
        torch_err = max(torch_err, float(np.max(element_errors(want32[o], b, scale[o]))))
        if err > tol:
            rel = element_errors(a, b, scale[o])
            i = np.unravel_index(np.argmax(rel), rel.shape)
            return False, "%s: err=%.1e > %g at %s: nncc %.7g, reference %.7g (rounding scale %.2g)" % (
                o, err, tol, list(map(int, i)), float(a[i]), float(b[i]), float(scale[o][i]))
        worst = max(worst, err)
    return True, "err=%.1e  (torch f32: %.1e)" % (worst, torch_err)
