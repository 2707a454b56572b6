"""review_ref.py - execution checks of graphs that stress the lowering's memory plan and
the generated interface: values with several consumers, outputs that later nodes read,
aliases (flatten, dropout) of outputs and inputs, fused activations next to outputs, several
outputs, i32 inputs beside f32 ones, and parameter names of pipes and blocks.

  review_ref.py --nncc NNCC --dir DIR [--filter REGEX]

Each case is one small .nn model with a torch module computing the same function under
the same state_dict names.  It is built with `nncc m.nn -o m` (a model whose state_dict
names differ from nncc's fails at --weights), run on random weights and inputs, and every
output is compared with torch in float64, element by element, with the measure of
conformance/measure.py (err <= 1e-4; PyTorch's own float32 error printed beside).
Prints `PASS name  err=E` or `FAIL name  reason`; last line `N passed, M failed`.
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
from lowering_ref import write_safetensors  # noqa: E402
import measure  # noqa: E402



class Net(nn.Module):
    def __init__(self, mods, fn):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)
        self._fn = fn

    def forward(self, **kw):
        return self._fn(self, **kw)


class Case:
    def __init__(self, name, source, mods, fn, inputs, outputs, runs=((1, None), (3, None)),
                 vocab=0):
        self.name, self.source, self.mods, self.fn = name, source, mods, fn
        self.inputs = inputs      # [(name, shape, dtype)]
        self.outputs = outputs    # [name], declaration order
        self.runs = runs
        self.vocab = vocab


def seqm(*mods):
    return nn.Sequential(*mods)


def cases():
    L = []
    # Several consumers of one value, each of them fusable; a value read after a long gap.
    L.append(Case("multi_consumer", """
model t {
  input x : f32[6]
  a = dense(x, 8)
  b = relu(a)
  c = tanh(a)
  d = dense(b, 8)
  e = d + c
  f = sigmoid(e) * a
  output y = dense(f, 5)
}
""", lambda: {"a": nn.Linear(6, 8), "d": nn.Linear(8, 8), "y": nn.Linear(8, 5)},
        lambda m, x: (lambda a: {"y": m.y(torch.sigmoid(m.d(F.relu(a)) + torch.tanh(a)) * a)})(m.a(x)),
        [("x", (6,), "f32")], ["y"]))
    # An output that later nodes read, through a flatten alias and a fused activation.
    L.append(Case("output_consumed", """
model t {
  input x : f32[2, 3, 3]
  output c = conv2d(x, 4, kernel=2)
  r = relu(c)
  output f = flatten(r)
  output y = dense(f, 3) |> relu
  output z = dropout(c, 0.2) + relu(c)
}
""", lambda: {"c": nn.Conv2d(2, 4, 2), "y": seqm(nn.Linear(16, 3), nn.ReLU())},
        lambda m, x: (lambda c: {"c": c, "f": torch.flatten(F.relu(c), 1),
                                 "y": m.y(torch.flatten(F.relu(c), 1)), "z": c + F.relu(c)})(m.c(x)),
        [("x", (2, 3, 3), "f32")], ["c", "f", "y", "z"]))
    # A dense whose activation is an output, and whose value another node also reads.
    L.append(Case("fused_and_shared", """
model t {
  input x : f32[5]
  h = dense(x, 7)
  output r = relu(h)
  output s = h * r
  g = dense(r, 7)
  output t2 = tanh(g)
}
""", lambda: {"h": nn.Linear(5, 7), "g": nn.Linear(7, 7)},
        lambda m, x: (lambda h: {"r": F.relu(h), "s": h * F.relu(h),
                                 "t2": torch.tanh(m.g(F.relu(h)))})(m.h(x)),
        [("x", (5,), "f32")], ["r", "s", "t2"]))
    # The same value on both sides of + and twice in a concat; an input read by several ops.
    L.append(Case("self_operands", """
model t {
  input x : f32[3, 4, 4]
  a = conv2d(x, 2, kernel=3, pad=1)
  b = a + a
  c = concat(b, a, b)
  d = c * c
  output y = concat(d, x)
  output w = x + x
}
""", lambda: {"a": nn.Conv2d(3, 2, 3, padding=1)},
        lambda m, x: (lambda a: {"y": torch.cat([torch.cat([a + a, a, a + a], 1) ** 2, x], 1),
                                 "w": x + x})(m.a(x)),
        [("x", (3, 4, 4), "f32")], ["y", "w"]))
    # Flatten of an input, dropout of a flatten, the input also an output (copied).
    L.append(Case("input_aliases", """
model t {
  input x : f32[2, 2, 3]
  f = flatten(x)
  g = dropout(f, 0.5)
  output y = dense(g, 4) |> tanh |> dense(3)
  output xo = x
  output h = g
}
""", lambda: {"y": seqm(nn.Linear(12, 4), nn.Tanh(), nn.Linear(4, 3))},
        lambda m, x: {"y": m.y(torch.flatten(x, 1)), "xo": x, "h": torch.flatten(x, 1)},
        [("x", (2, 2, 3), "f32")], ["y", "xo", "h"]))
    # Two inputs, i32 ids first then f32 features, a symbolic length, several outputs.
    L.append(Case("mixed_inputs_seq", """
model t {
  input ids : i32[seq]
  input feats : f32[seq, 3]
  e = embedding(ids, 11, 5)
  h = concat(e, feats)
  output r = lstm(h, 6)
  output l = last(r) |> dense(2)
  output e2 = e + e
}
""", lambda: {"e": nn.Embedding(11, 5), "r": nn.LSTM(8, 6, batch_first=True),
              "l": seqm(nn.Identity(), nn.Linear(6, 2))},
        lambda m, ids, feats: (lambda e: (lambda r: {"r": r, "l": m.l[1](r[:, -1]), "e2": e + e})(
            m.r(torch.cat([e, feats], 2))[0]))(m.e(ids.long())),
        [("ids", ("seq", ), "i32"), ("feats", ("seq", 3), "f32")], ["r", "l", "e2"],
        runs=((1, 1), (2, 5), (3, 17)), vocab=11))
    # Parameter names (docs/language.md, "Parameter names"): a pipe whose head is a call (stage 0), a block
    # inside a pipe, a block returning a single call, nested blocks, bidirectional in a pipe.
    L.append(Case("names_pipes_blocks", """
block unit(x, n) {
  z = dense(x, n)
  return z |> relu
}
block lin(x, n) {
  return dense(x, n)
}
block outer(x, n) {
  a = unit(x, n)
  return a |> lin(n) |> unit(n)
}
model t {
  input x : f32[6]
  input s : f32[seq, 6]
  c = tanh(x) |> dense(4)
  e = x |> unit(5) |> relu
  f = lin(c, 3)
  g = outer(f, 5)
  k = s |> bidirectional(lstm(4, layers=2)) |> dense(3)
  output y = concat(c, e, f, g)
  output w = last(k)
}
""", lambda: {
            "c": seqm(nn.Tanh(), nn.Linear(6, 4)),
            "e": seqm(nn.Module(), nn.ReLU()),
            "f": nn.Linear(4, 3),
            "g": nn.Module(),
            "k": seqm(nn.LSTM(6, 4, num_layers=2, bidirectional=True, batch_first=True),
                      nn.Linear(8, 3)),
        },
        None, [("x", (6,), "f32"), ("s", ("seq", 6), "f32")], ["y", "w"],
        runs=((1, 1), (2, 7))))
    c = L[-1]

    def mods():
        m = c_mods()
        m["e"][0].z = nn.Linear(6, 5)
        m["g"].a = nn.Module()
        m["g"].a.z = nn.Linear(3, 5)
        m["g"].add_module("0", nn.Linear(5, 5))
        m["g"].add_module("1", nn.Module())
        getattr(m["g"], "1").z = nn.Linear(5, 5)
        return m

    def fn(m, x, s):
        c = m.c(x)
        e = F.relu(F.relu(m.e[0].z(x)))
        f = m.f(c)
        g = F.relu(getattr(m.g, "1").z(getattr(m.g, "0")(F.relu(m.g.a.z(f)))))
        k = m.k[1](m.k[0](s)[0])
        return {"y": torch.cat([c, e, f, g], 1), "w": k[:, -1]}

    c_mods = c.mods
    c.mods, c.fn = mods, fn
    return L


def init_weights(mod, seed):
    """Embeddings N(0, 1); everything else U(-b, b), b = 1.5 / sqrt(fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in mod.modules():
            for _, p in m.named_parameters(recurse=False):
                if isinstance(m, nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=g))
                    continue
                fan = m.hidden_size if isinstance(m, nn.RNNBase) else m.weight.shape[1]
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * 1.5 / np.sqrt(fan))


def run_case(nncc, case, root):
    wd = os.path.join(root, case.name)
    os.makedirs(wd, exist_ok=True)
    with open(os.path.join(wd, "m.nn"), "w") as f:
        f.write(case.source)
    p = subprocess.run([nncc, "m.nn", "-o", "m"], cwd=wd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    for batch, seq in case.runs:
        rname = "%s_b%d%s" % (case.name, batch, "_s%d" % seq if seq else "")
        if p.returncode != 0:
            yield rname, False, "nncc failed: " + " | ".join(p.stdout.strip().splitlines()[:3])
            continue
        seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(rname)) % 100003
        torch.manual_seed(seed)
        mod = Net(case.mods(), case.fn)
        init_weights(mod, seed)
        rng = np.random.default_rng(seed)
        inputs = {}
        for name, shape, dt in case.inputs:
            dims = [batch] + [seq if d == "seq" else d for d in shape]
            if dt == "i32":
                inputs[name] = rng.integers(0, case.vocab, size=dims).astype(np.int32)
            else:
                inputs[name] = rng.standard_normal(dims).astype(np.float32)
        write_safetensors(os.path.join(wd, "w.safetensors"), mod.state_dict())
        cmd = ["./m", "--weights", "w.safetensors"]
        for name, a in inputs.items():
            np.save(os.path.join(wd, name + ".npy"), a)
            cmd += ["--input", "%s=%s.npy" % (name, name)]
        for o in case.outputs:
            if os.path.exists(os.path.join(wd, "out_%s.npy" % o)):
                os.remove(os.path.join(wd, "out_%s.npy" % o))
            cmd += ["--output", "%s=out_%s.npy" % (o, o)]
        r = subprocess.run(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            yield rname, False, "exit %d: %s" % (r.returncode, r.stdout.strip()[:300])
            continue
        got = {o: np.load(os.path.join(wd, "out_%s.npy" % o)) for o in case.outputs}
        ok, msg = measure.check_outputs(mod, inputs, got, case.outputs, seed=seed)
        yield rname, ok, msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    npass = nfail = 0
    for case in cases():
        if not re.search(args.filter, case.name):
            continue
        for name, ok, msg in run_case(args.nncc, case, args.dir):
            print("%s %s  %s" % ("PASS" if ok else "FAIL", name, msg), flush=True)
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
