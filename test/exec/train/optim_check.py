"""optim_check.py - several training steps of every optimizer against torch.optim.

A small model (dense -> tanh -> dense -> cross_entropy, or mse) is trained for STEPS steps
by nncc's M_train_step and by torch.optim with the same settings, from the same weights, on
the same batches; after every step each parameter is compared:
    err = max|nncc - torch| / max(max|torch|, 1e-6)       (limit 1e-4; float32 both)
Cases cover sgd (plain, momentum, nesterov), adagrad, rmsprop, adam, weight_decay,
clip_norm (torch.nn.utils.clip_grad_norm_ before weight decay), freeze, options changed at
run time (M_set_option), a checkpoint saved mid-way and resumed in a fresh object (the next
steps must be identical), and the error paths: a label out of range and an unknown option.
Prints PASS/FAIL lines and 'N passed, M failed'.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nncc_ctypes  # noqa: E402

STEPS = 6
LIMIT = 1e-4

SRC = """
model m {{
  input x : f32[6]
  target y : {target}
  h = dense(x, {hidden}) |> tanh
  output o = dense(h, {nout})
  loss = {loss}
}}
train m {{
  {settings}
}}
"""


class Net(nn.Module):
    def __init__(self, nout, hidden=5):
        super().__init__()
        self.h = nn.Sequential(nn.Linear(6, hidden), nn.Tanh())
        self.o = nn.Linear(hidden, nout)

    def forward(self, x):
        return self.o(self.h(x))


# name: (settings, torch optimizer factory, clip, frozen prefixes, mse?)
CASES = {
    "sgd": ("optimizer = sgd(lr=0.1)", lambda p: torch.optim.SGD(p, lr=0.1), 0, [], False),
    "sgd_momentum": ("optimizer = sgd(lr=0.1, momentum=0.9)",
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 0, [], False),
    "sgd_nesterov_wd": ("optimizer = sgd(lr=0.05, momentum=0.8, nesterov=true)\n  weight_decay = 0.01",
                        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                        0, [], False),
    "adagrad": ("optimizer = adagrad(lr=0.1)", lambda p: torch.optim.Adagrad(p, lr=0.1), 0, [], False),
    "adagrad_eps": ("optimizer = adagrad(lr=0.1, eps=0.001)\n  weight_decay = 0.1",
                    lambda p: torch.optim.Adagrad(p, lr=0.1, eps=0.001, weight_decay=0.1), 0, [], False),
    "rmsprop": ("optimizer = rmsprop(lr=0.01)", lambda p: torch.optim.RMSprop(p, lr=0.01), 0, [], False),
    "rmsprop_decay": ("optimizer = rmsprop(lr=0.01, decay=0.9, eps=1e-6)\n  clip_norm = 0.5",
                      lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6), 0.5, [], False),
    "adam": ("optimizer = adam(lr=0.01)", lambda p: torch.optim.Adam(p, lr=0.01), 0, [], False),
    "adam_all": ("optimizer = adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6)\n  weight_decay = 0.05\n"
                 "  clip_norm = 0.3", lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6,
                                                               weight_decay=0.05), 0.3, [], False),
    "sgd_clip_freeze": ("optimizer = sgd(lr=0.2, momentum=0.5)\n  clip_norm = 0.1\n  freeze = [h]",
                        lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5), 0.1, ["h."], False),
    "adam_mse": ("optimizer = adam(lr=0.01)", lambda p: torch.optim.Adam(p, lr=0.01), 0, [], True),
    "adam_clip_runs": ("optimizer = adam(lr=0.02)\n  clip_norm = 0.2",
                       lambda p: torch.optim.Adam(p, lr=0.02), 0.2, [], False),
}
# hidden units per case (default 5): with 16, h.weight, h.bias and o.weight are multiples of 16
# floats, so the gradients lie end to end and the clip norm sums them in one loop (optim.c)
HIDDEN = {"adam_clip_runs": 16}


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def batches(mse, nout, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        x = rng.standard_normal((4, 6)).astype(np.float32)
        y = (rng.standard_normal((4, nout)).astype(np.float32) if mse
             else rng.integers(0, nout, size=4).astype(np.int32))
        out.append((x, y))
    return out


def build_case(nncc, wd, name):
    settings, _, _, _, mse = CASES[name]
    nout = 2 if mse else 3
    src = SRC.format(target=f"f32[{nout}]" if mse else f"label[{nout}]", nout=nout,
                     hidden=HIDDEN.get(name, 5),
                     loss="mse(o, y)" if mse else "cross_entropy(o, y)", settings=settings)
    d = os.path.join(wd, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "m.nn"), "w") as f:
        f.write(src)
    nncc_ctypes.build(nncc, os.path.join(d, "m.nn"), os.path.join(d, "m.so"))
    return os.path.join(d, "m.so"), nout, mse


def torch_run(name, nout, mse, data, state):
    _, opt_f, clip, frozen, _ = CASES[name]
    net = Net(nout, HIDDEN.get(name, 5))
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    params = []
    for k, p in net.named_parameters():
        if any(k.startswith(f) for f in frozen):
            p.requires_grad_(False)
        else:
            params.append(p)
    opt = opt_f(params)
    history = []
    for x, y in data:
        opt.zero_grad()
        o = net(torch.from_numpy(x))
        loss = F.mse_loss(o, torch.from_numpy(y)) if mse else F.cross_entropy(o, torch.from_numpy(y).long())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        history.append({k: v.detach().numpy().copy() for k, v in net.state_dict().items()})
    return history


def check_case(nncc, wd, name, results):
    so, nout, mse = build_case(nncc, wd, name)
    torch.manual_seed(len(name))
    state = {k: v.numpy().copy() for k, v in Net(nout, HIDDEN.get(name, 5)).state_dict().items()}
    data = batches(mse, nout, len(name) * 31)
    ref = torch_run(name, nout, mse, data, state)
    m = nncc_ctypes.Model(so, "m", ["x"], ["y"])
    m.set_params(state)
    worst = 0.0
    ck = os.path.join(wd, name, "mid.ckpt")
    for i, (x, y) in enumerate(data):
        m.train_step(4, {"x": x}, {"y": y})
        for k in state:
            worst = max(worst, rel_err(m.param(k), ref[i][k].reshape(-1)))
        if i == STEPS // 2 - 1:
            rc = m.c_save_checkpoint(m.m, ck.encode())
            if rc != 0:
                results.append((False, f"{name}: save_checkpoint: {m.last_error()}", 1.0))
    results.append((worst <= LIMIT, f"{name}: {STEPS} steps vs torch.optim", worst))
    final = {k: m.param(k).copy() for k in state}
    m.close()
    # resume from the checkpoint in a fresh object: the remaining steps must be bit-identical
    m2 = nncc_ctypes.Model(so, "m", ["x"], ["y"])
    rc = m2.c_load_checkpoint(m2.m, ck.encode())
    if rc != 0:
        results.append((False, f"{name}: load_checkpoint: {m2.last_error()}", 1.0))
        return
    for x, y in data[STEPS // 2:]:
        m2.train_step(4, {"x": x}, {"y": y})
    same = all(np.array_equal(m2.param(k), final[k]) for k in state)
    results.append((same, f"{name}: checkpoint at step {STEPS // 2} resumes bit-identically", 0.0 if same else 1.0))
    m2.close()


def check_errors(nncc, wd, results):
    so, nout, _ = build_case(nncc, wd, "adam")
    m = nncc_ctypes.Model(so, "m", ["x"], ["y"])
    x = np.zeros((2, 6), np.float32)
    before = m.param("o.weight").copy()
    try:
        m.train_step(2, {"x": x}, {"y": np.array([1, 7], np.int32)})
        results.append((False, "label out of range: no error", 1.0))
    except nncc_ctypes.NnccError as e:
        ok = e.code == -4 and "label 7 of sample 1 is outside [0, 3)" in e.message and "'y'" in e.message
        results.append((ok, f"label out of range: {e.message}", 0.0))
    results.append((np.array_equal(before, m.param("o.weight")), "a failed step leaves the parameters", 0.0))
    for bad, what in (("momentum", "does not use"), ("lrate", "unknown option")):
        try:
            m.option(bad, 0.5)
            results.append((False, f"set_option({bad}): no error", 1.0))
        except nncc_ctypes.NnccError as e:
            results.append((e.code == -1 and what in e.message, f"set_option({bad}): {e.message}", 0.0))
    try:
        m.option("lr", -1)
        results.append((False, "set_option(lr, -1): no error", 1.0))
    except nncc_ctypes.NnccError as e:
        results.append((e.code == -1 and "out of range" in e.message, f"set_option(lr, -1): {e.message}", 0.0))
    m.close()


def check_set_option(nncc, wd, results):
    """lr changed at run time: nncc with lr 0.1 set through M_set_option equals torch with 0.1."""
    so, nout, mse = build_case(nncc, wd, "sgd_momentum")
    torch.manual_seed(5)
    state = {k: v.numpy().copy() for k, v in Net(nout).state_dict().items()}
    data = batches(mse, nout, 77)
    m = nncc_ctypes.Model(so, "m", ["x"], ["y"])
    m.set_params(state)
    m.option("lr", 0.03)
    m.option("momentum", 0.5)
    net = Net(nout)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.5)
    worst = 0.0
    for x, y in data:
        m.train_step(4, {"x": x}, {"y": y})
        opt.zero_grad()
        F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y).long()).backward()
        opt.step()
        for k, v in net.state_dict().items():
            worst = max(worst, rel_err(m.param(k), v.detach().numpy().reshape(-1)))
    results.append((worst <= LIMIT, "set_option(lr, momentum) at run time vs torch.optim", worst))
    m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as wd:
        for name in CASES:
            try:
                check_case(args.nncc, wd, name, results)
            except Exception as ex:
                results.append((False, f"{name}: {ex}", float("inf")))
        for f in (check_errors, check_set_option):
            try:
                f(args.nncc, wd, results)
            except Exception as ex:
                results.append((False, f"{f.__name__}: {ex}", float("inf")))
    for ok, what, e in results:
        print(f"{'PASS' if ok else 'FAIL'}: {what}: rel err {e:.2e}")
    worst = max(r[2] for r in results)
    npass = sum(1 for r in results if r[0])
    print(f"worst relative error: {worst:.2e}")
    print(f"{npass} passed, {len(results) - npass} failed")
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
