"""grad_examples.py - the loss and every parameter gradient of the spec's trainable example
models (examples/*.nn), computed by nncc's generated M_gradients, against PyTorch autograd
on the same weights and inputs (float64 reference).

For each model and batch: build examples/M.nn into M.so, give the torch module of
conformance/models.py random weights, copy them into nncc through M_param, draw inputs and
labels, run M_gradients and torch's backward, and compare per tensor:
    err = max|nncc - torch| / max(max|torch|, 1e-6)       (limit 1e-3)
Prints one PASS/FAIL line per (model, batch, tensor) and 'N passed, M failed'.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
sys.path.insert(0, HERE)
import models  # noqa: E402
import nncc_ctypes  # noqa: E402
from run import init_module, seed_of  # noqa: E402

LIMIT = 1e-3

# file: (model name, torch module, inputs {name: per-sample shape}, target, classes, gain)
EXAMPLES = {
    "mlp": ("mlp", models.MLP, {"pixels": (784,)}, "digit", 10, 1.41),
    "lenet5": ("lenet5", models.LeNet5, {"image": (1, 32, 32)}, "digit", 10, 1.0),
    "resnet_mini": ("resnet_mini", models.ResNetMini, {"image": (3, 32, 32)}, "label", 10, 1.41),
    "inception": ("inception3a", models.Inception3a, {"x": (192, 28, 28)}, "label", 10, 1.41),
}


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6)) if b.size else 0.0


def check(nncc, name, batch, wd, results):
    model, mod_cls, inputs, target, classes, gain = EXAMPLES[name]
    src = os.path.join(HERE, "..", "..", "..", "examples", f"{name}.nn")
    so = os.path.join(wd, f"{name}.so")
    if not os.path.exists(so):
        nncc_ctypes.build(nncc, src, so)
    mod = init_module(mod_cls(), seed_of(name) + batch, gain).double()
    m = nncc_ctypes.Model(so, model, list(inputs), [target])
    m.set_params({k: v.float().numpy() for k, v in mod.state_dict().items()})
    rng = np.random.default_rng(seed_of(name) * 7 + batch)
    xs = {k: rng.standard_normal((batch,) + s).astype(np.float32) for k, s in inputs.items()}
    y = rng.integers(0, classes, size=batch).astype(np.int32)
    loss = m.gradients(batch, xs, {target: y})
    # the reference: float32 weights and inputs, computed in float64
    out = mod(**{k: torch.from_numpy(v).double() for k, v in xs.items()})
    ref = F.cross_entropy(out["logits"], torch.from_numpy(y).long())
    ref.backward()
    e = abs(loss - ref.item()) / max(abs(ref.item()), 1e-6)
    results.append((e <= LIMIT, f"{name} b{batch} loss", e))
    for k, p in mod.named_parameters():
        g = m.grad_of(k)
        if g is None:
            results.append((False, f"{name} b{batch} {k}: no gradient ({m.last_error()})", 1.0))
            continue
        e = rel_err(g.astype(np.float64), p.grad.numpy().reshape(-1))
        results.append((e <= LIMIT, f"{name} b{batch} grad {k}", e))
    m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--models", default=",".join(EXAMPLES))
    ap.add_argument("--batches", default="1,3")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as wd:
        for name in args.models.split(","):
            for b in [int(x) for x in args.batches.split(",")]:
                try:
                    check(args.nncc, name, b, wd, results)
                except Exception as ex:  # a build or a call that fails is a failure
                    results.append((False, f"{name} b{b}: {ex}", float("inf")))
    worst = max((r[2] for r in results), default=0.0)
    for ok, what, e in results:
        print(f"{'PASS' if ok else 'FAIL'}: {what}: rel err {e:.2e}")
    npass = sum(1 for r in results if r[0])
    print(f"worst relative error: {worst:.2e}")
    print(f"{npass} passed, {len(results) - npass} failed")
    return 0 if npass == len(results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
