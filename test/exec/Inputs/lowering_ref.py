"""lowering_ref.py - execution checks of the lowerings of rnn, lstm, gru, embedding, lrn,
conv1d, concat and last against PyTorch (run with %python: torch + numpy).

  lowering_ref.py --nncc NNCC --dir DIR GROUP...     GROUP: recurrent, embedding, lrn,
                                                     conv1d, concat, last, errors

Each case is one small .nn model (written here) with the torch module that computes the
same function under the same state_dict names.  The model is built once with
`nncc m.nn -o m`; for each (batch, seq) run the script writes random weights as safetensors
and random inputs as .npy, runs `./m --weights w.safetensors --input x=x.npy --output
y=y.npy`, computes the reference with torch in float64 on the same float32 numbers, and
prints `PASS name  err=E  (torch f32: T)` or `FAIL name  reason`.  The error measure is
conformance/measure.py's, element by element (a: nncc's float32 output, b: the float64
reference; T: the same measure for PyTorch's float32 answer):

    err = max_i |a_i - b_i| / max(|b_i|, 1e5 * s_i)     (s_i: b_i's float32 rounding scale)

and a run passes when the shapes match, a is finite and err <= 1e-4.  Embeddings are
copies: their err is max|a - b| and must be exactly 0.  The `errors` group
checks that an out-of-range token id makes the executable exit 1 with the message.
Last line: `N passed, M failed`; the exit status is 1 when anything failed.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
import measure  # noqa: E402
import st  # noqa: E402



def write_safetensors(path, tensors):
    """The weights of a module's state_dict, through the tests' one safetensors writer."""
    st.save(path, tensors)



# --- the reference modules: forward(**inputs) -> {output name: tensor} ---------------------

class Recurrent(nn.Module):
    """output y = [last](bidirectional?(cell(x, units, layers=L)))."""

    def __init__(self, cell, k, units, layers, bidir, act, last):
        super().__init__()
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        kw = {"nonlinearity": act} if cell == "rnn" else {}
        self.y = cls(k, units, num_layers=layers, bidirectional=bidir, batch_first=True, **kw)
        self.last = last

    def forward(self, x):
        h = self.y(x)[0]
        return {"y": h[:, -1] if self.last else h}


class Embedding(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.y = nn.Embedding(vocab, dim)

    def forward(self, ids):
        return {"y": self.y(ids.long())}


class Lrn(nn.Module):
    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.f = nn.LocalResponseNorm(size, alpha, beta, k)

    def forward(self, x):
        return {"y": self.f(x)}


class Conv1d(nn.Module):
    def __init__(self, c, f, k, stride, pad, bias):
        super().__init__()
        self.y = nn.Conv1d(c, f, k, stride=stride, padding=pad, bias=bias)

    def forward(self, x):
        return {"y": self.y(x)}


class Concat(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, **xs):
        return {"y": torch.cat([xs[k] for k in sorted(xs)], dim=self.dim)}


class ConcatRecurrent(nn.Module):
    """output y = concat(gru(x, 3), last-less lstm(x, 2))."""

    def __init__(self, k):
        super().__init__()
        self.a = nn.GRU(k, 3, batch_first=True)
        self.b = nn.LSTM(k, 2, batch_first=True)

    def forward(self, x):
        return {"y": torch.cat([self.a(x)[0], self.b(x)[0]], dim=2)}


class Last(nn.Module):
    def forward(self, x):
        return {"y": x[:, -1]}


# --- the cases --------------------------------------------------------------------------

class Case:
    def __init__(self, name, group, source, make, inputs, runs, vocab=0, scale=1.0, exact=False):
        self.name, self.group, self.source, self.make = name, group, source, make
        self.exact = exact    # the output must equal the reference exactly (a copy)
        self.inputs = inputs  # [(name, per-sample shape with "seq", "f32" | "i32")]
        self.runs = runs      # [(batch, seq)]
        self.vocab = vocab    # i32 inputs: ids in [0, vocab)
        self.scale = scale    # weights: uniform(-scale, scale) * torch's own bound


def model_src(inputs, lines):
    decl = ["  input %s : %s[%s]" % (n, t, ", ".join(str(d) for d in s)) for n, s, t in inputs]
    return "model m {\n" + "\n".join(decl + ["  " + l for l in lines]) + "\n}\n"


def recurrent_cases():
    out = []
    table = [  # cell, K, units, layers, bidir, act, fixed seq (0: symbolic), runs
        ("rnn", 2, 1, 1, False, "tanh", 0, [(1, 1), (3, 5)]),
        ("rnn", 4, 3, 2, True, "tanh", 0, [(3, 13), (1, 1)]),
        ("rnn", 5, 17, 3, False, "tanh", 0, [(17, 5)]),
        ("rnn", 3, 17, 2, True, "relu", 0, [(3, 5)]),
        ("rnn", 3, 3, 1, False, "relu", 6, [(17, 6)]),
        ("lstm", 1, 1, 1, False, None, 0, [(3, 13), (1, 1)]),
        ("lstm", 3, 3, 2, True, None, 0, [(17, 5), (1, 13)]),
        ("lstm", 6, 17, 3, False, None, 0, [(1, 13)]),
        ("lstm", 4, 17, 1, True, None, 5, [(3, 5)]),
        ("lstm", 2, 33, 1, False, None, 0, [(3, 4)]),
        ("gru", 3, 1, 3, False, None, 0, [(3, 5)]),
        ("gru", 2, 3, 2, True, None, 0, [(3, 13), (17, 1)]),
        ("gru", 5, 17, 1, False, None, 0, [(17, 1), (1, 5)]),
        ("gru", 4, 17, 2, True, None, 13, [(1, 13)]),
        ("gru", 3, 20, 1, False, None, 0, [(2, 7)]),
    ]
    for cell, k, u, layers, bidir, act, fixed, runs in table:
        call = "%s(x, %d%s%s)" % (cell, u, ", activation=relu" if act == "relu" else "",
                                  ", layers=%d" % layers if layers > 1 else "")
        if bidir:
            call = "bidirectional(%s)" % call
        seq = fixed or "seq"
        name = "%s%s_k%d_u%d_l%d%s%s" % (cell, "_relu" if act == "relu" else "", k, u, layers,
                                        "_bidir" if bidir else "", "_fixed%d" % fixed if fixed else "")
        w = u * (2 if bidir else 1)
        src = model_src([("x", (seq, k), "f32")], ["output y = %s : [%s, %d]" % (call, seq, w)])
        make = (lambda c=cell, k=k, u=u, l=layers, b=bidir, a=act: Recurrent(c, k, u, l, b, a or "tanh", False))
        out.append(Case(name, "recurrent", src, make, [("x", (seq, k), "f32")], runs, scale=1.5))
    return out


def embedding_cases():
    return [
        Case("embedding_v7_d17", "embedding",
             model_src([("ids", ("seq",), "i32")], ["output y = embedding(ids, 7, 17) : [seq, 17]"]),
             lambda: Embedding(7, 17), [("ids", ("seq",), "i32")], [(1, 1), (3, 5), (17, 13)], vocab=7,
             exact=True),
        Case("embedding_v100_d3_fixed6", "embedding",
             model_src([("ids", (6,), "i32")], ["output y = embedding(ids, 100, 3) : [6, 3]"]),
             lambda: Embedding(100, 3), [("ids", (6,), "i32")], [(3, 6)], vocab=100, exact=True),
        Case("embedding_v1_d1", "embedding",
             model_src([("ids", ("seq",), "i32")], ["output y = embedding(ids, 1, 1) : [seq, 1]"]),
             lambda: Embedding(1, 1), [("ids", ("seq",), "i32")], [(3, 4)], vocab=1, exact=True),
    ]


def lrn_cases():
    out = []
    table = [  # per-sample shape, size, alpha, beta, k, runs
        ((16, 7, 7), 5, 1e-4, 0.75, 2.0, [(1, 0), (3, 0)]),   # AlexNet's parameters
        ((16, 7, 7), 5, 0.5, 0.75, 1.0, [(3, 0)]),
        ((5, 9), 3, 0.3, 0.6, 2.0, [(17, 0)]),
        ((6, 4, 3), 4, 1.0, 1.0, 0.5, [(3, 0)]),
        ((7, 4, 5), 2, 2.0, 0.5, 1.0, [(3, 0)]),
        ((3, 33), 7, 0.7, 1.7, 1.5, [(3, 0)]),              # window wider than C
    ]
    for shape, size, a, be, k, runs in table:
        name = "lrn_%s_n%d_a%g_b%g_k%g" % ("x".join(map(str, shape)), size, a, be, k)
        src = model_src([("x", shape, "f32")],
                        ["output y = lrn(x, %d, alpha=%r, beta=%r, k=%r)" % (size, a, be, k)])
        out.append(Case(name, "lrn", src, lambda s=size, a=a, be=be, k=k: Lrn(s, a, be, k),
                        [("x", shape, "f32")], runs))
    return out


def conv1d_cases():
    out = []
    table = [  # C, L, F, kernel, stride, pad, bias, runs
        (3, 17, 9, 3, 2, 1, False, [(3, 0)]),
        (1, 10, 1, 1, 1, 0, True, [(1, 0)]),
        (4, 20, 4, 5, 1, 2, True, [(17, 0)]),
        (5, 31, 13, 4, 3, 2, False, [(3, 0)]),
        (8, 40, 16, 3, 1, 1, True, [(3, 0)]),
        (2, 6, 5, 6, 1, 0, True, [(3, 0)]),                # kernel = length
    ]
    for c, l, f, k, s, p, bias, runs in table:
        ol = (l + 2 * p - k) // s + 1
        name = "conv1d_c%d_l%d_f%d_k%d_s%d_p%d%s" % (c, l, f, k, s, p, "" if bias else "_nobias")
        args = "x, %d, kernel=%d, stride=%d, pad=%d%s" % (f, k, s, p, "" if bias else ", bias=false")
        src = model_src([("x", (c, l), "f32")], ["output y = conv1d(%s) : [%d, %d]" % (args, f, ol)])
        out.append(Case(name, "conv1d", src,
                        lambda c=c, f=f, k=k, s=s, p=p, b=bias: Conv1d(c, f, k, s, p, b),
                        [("x", (c, l), "f32")], runs))
    return out


def concat_cases():
    def case(name, shapes, out_shape, dim, runs):
        ins = [("x%d" % i, s, "f32") for i, s in enumerate(shapes)]
        args = ", ".join(n for n, _, _ in ins)
        src = model_src(ins, ["output y = concat(%s) : [%s]" % (args, ", ".join(map(str, out_shape)))])
        return Case(name, "concat", src, lambda d=dim: Concat(d), ins, runs)
    out = [
        case("concat_images", [(3, 4, 5), (1, 4, 5), (17, 4, 5)], (21, 4, 5), 1, [(1, 0), (3, 0)]),
        case("concat_seq", [("seq", 3), ("seq", 1), ("seq", 17)], ("seq", 21), 2,
             [(1, 1), (3, 13)]),
        case("concat_fixed_seq", [(4, 2), (4, 3)], (4, 5), 2, [(17, 0)]),
        case("concat_vectors", [(5,), (17,), (1,)], (23,), 1, [(17, 0)]),
        case("concat_one", [(2, 3, 3)], (2, 3, 3), 1, [(3, 0)]),
    ]
    out.append(Case("concat_gru_lstm", "concat",
                    model_src([("x", ("seq", 4), "f32")],
                              ["a = gru(x, 3)", "b = lstm(x, 2)", "output y = concat(a, b) : [seq, 5]"]),
                    lambda: ConcatRecurrent(4), [("x", ("seq", 4), "f32")], [(3, 5)], scale=1.5))
    return out


def last_cases():
    return [
        Case("last_seq", "last", model_src([("x", ("seq", 17), "f32")], ["output y = last(x) : [17]"]),
             Last, [("x", ("seq", 17), "f32")], [(1, 1), (3, 13)]),
        Case("last_fixed", "last", model_src([("x", (6, 4), "f32")], ["output y = last(x) : [4]"]),
             Last, [("x", (6, 4), "f32")], [(17, 0)]),
        Case("last_bidir_lstm", "last",
             model_src([("x", ("seq", 3), "f32")],
                       ["output y = last(bidirectional(lstm(x, 3, layers=2))) : [6]"]),
             lambda: Recurrent("lstm", 3, 3, 2, True, "tanh", True), [("x", ("seq", 3), "f32")],
             [(3, 5), (1, 1)], scale=1.5),
    ]


def all_cases():
    return (recurrent_cases() + embedding_cases() + lrn_cases() + conv1d_cases() + concat_cases()
            + last_cases())


# --- running ------------------------------------------------------------------------------

def build(nncc, case, wd):
    os.makedirs(wd, exist_ok=True)
    with open(os.path.join(wd, "m.nn"), "w") as f:
        f.write(case.source)
    p = subprocess.run([nncc, "m.nn", "-o", "m"], cwd=wd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def init_weights(mod, seed, scale):
    """Recurrent layers: U(-b, b), b = scale / sqrt(units) (torch's own bound times scale,
    so that gates leave the linear region); embeddings N(0, 1); others U(-b, b) with
    b = scale / sqrt(fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in mod.modules():
            for name, p in m.named_parameters(recurse=False):
                if isinstance(m, nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=g))
                    continue
                if isinstance(m, nn.RNNBase):
                    bound = scale / np.sqrt(m.hidden_size)
                else:
                    fan = int(np.prod(m.weight.shape[1:]))
                    bound = scale / np.sqrt(fan)
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)


def make_inputs(case, batch, seq, rng, bad=None):
    arrays = {}
    for name, shape, dt in case.inputs:
        dims = [batch] + [seq if d == "seq" else d for d in shape]
        if dt == "i32":
            a = rng.integers(0, case.vocab, size=dims).astype(np.int32)
            if bad is not None:
                a.flat[min(bad[0], a.size - 1)] = bad[1]
        else:
            a = rng.standard_normal(dims).astype(np.float32)
        arrays[name] = a
    return arrays


def run_case(nncc, case, root):
    """Builds the case once and yields (run name, ok, message) per run."""
    wd = os.path.join(root, case.name)
    rc, out = build(nncc, case, wd)
    names = ["%s_b%d%s" % (case.name, b, "_s%d" % s if s else "") for b, s in case.runs]
    if rc != 0:
        first = " | ".join(out.strip().splitlines()[:3])
        for n in names:
            yield n, False, "nncc failed (%d): %s" % (rc, first)
        return
    for (batch, seq), rname in zip(case.runs, names):
        seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(rname)) % 100003
        torch.manual_seed(seed)
        mod = case.make()
        init_weights(mod, seed, case.scale)
        rng = np.random.default_rng(seed)
        inputs = make_inputs(case, batch, seq, rng)
        write_safetensors(os.path.join(wd, "w.safetensors"), mod.state_dict())
        cmd = ["./m", "--weights", "w.safetensors"]
        for name, a in inputs.items():
            np.save(os.path.join(wd, name + ".npy"), a)
            cmd += ["--input", "%s=%s.npy" % (name, name)]
        cmd += ["--output", "y=y.npy"]
        if os.path.exists(os.path.join(wd, "y.npy")):
            os.remove(os.path.join(wd, "y.npy"))
        p = subprocess.run(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            yield rname, False, "exit %d: %s" % (p.returncode, p.stdout.strip()[:300])
            continue
        got = {"y": np.load(os.path.join(wd, "y.npy"))}
        ok, msg = measure.check_outputs(mod, inputs, got, ["y"], seed=seed,
                                        tol=0 if case.exact else measure.TOL)
        yield rname, ok, msg


def error_runs(nncc, root):
    """An out-of-range token id (negative, and = vocab) makes the executable exit 1."""
    case = embedding_cases()[0]
    wd = os.path.join(root, "errors")
    rc, out = build(nncc, case, wd)
    for label, bad, batch, seq in (("error_token_vocab", (2 * 5 + 3, 7), 3, 5),
                                   ("error_token_negative", (0, -1), 1, 4)):
        if rc != 0:
            yield label, False, "nncc failed: %s" % out.strip()[:200]
            continue
        mod = case.make()
        write_safetensors(os.path.join(wd, "w.safetensors"), mod.state_dict())
        ids = make_inputs(case, batch, seq, np.random.default_rng(1), bad)["ids"]
        np.save(os.path.join(wd, "ids.npy"), ids)
        p = subprocess.run(["./m", "--weights", "w.safetensors", "--input", "ids=ids.npy",
                            "--output", "y=y.npy"], cwd=wd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        pos = divmod(bad[0], seq)
        want = "embedding 'y': token id %d at [batch %d, position %d] is outside [0, 7)" % (
            bad[1], pos[0], pos[1])
        ok = p.returncode == 1 and want in p.stdout
        yield label, ok, "exit %d: %s" % (p.returncode, p.stdout.strip()[:300])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("groups", nargs="+")
    opts = ap.parse_args()
    if os.sep in opts.nncc:
        opts.nncc = os.path.abspath(opts.nncc)  # the builds run in per-case directories
    torch.set_num_threads(1)
    passed = failed = 0
    worst = (0.0, "")
    for group in opts.groups:
        runs = error_runs(opts.nncc, opts.dir) if group == "errors" else (
            r for c in all_cases() if c.group == group for r in run_case(opts.nncc, c, opts.dir))
        for name, ok, msg in runs:
            print("%s %s  %s" % ("PASS" if ok else "FAIL", name, msg), flush=True)
            passed += ok
            failed += not ok
            if ok and msg.startswith("err="):
                e = float(msg[4:].split()[0])
                if e >= worst[0]:
                    worst = (e, name)
    print("%d passed, %d failed" % (passed, failed))
    if worst[1]:
        print("worst err=%.1e in %s" % worst)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
