"""grad_misc.py - checks the gradients of the activations, dense, the losses, softmax,
log_softmax, lrn and embedding against
PyTorch autograd (run with %python: torch + numpy).

  grad_misc.py --nncc NNCC --dir DIR [GROUP...]     GROUP: act, softmax, lrn, lrn_conv,
                                                    embedding, fd (default: all)

Each case is one small trainable .nn model (model name `m`, written here) and the torch
function that computes the same loss from the same parameters (state_dict names).  The model
is built once with `nncc m.nn -o m.so` and loaded with ctypes; for each (batch, seq) run the
script writes random parameters through m_param, calls m_gradients on random inputs and
targets, and compares the loss and every trained parameter's gradient (m_grad) with torch
autograd in float64 on the same float32 numbers.  The error per tensor is

    err = max|a - b| / max(max|b|, FLOOR)      (a: nncc's float32, b: the float64 reference)

and a run passes when every a is finite and every err <= 1e-3.

The `fd` group checks each gradient rule itself, in float64 NumPy, against central finite
differences of the forward it differentiates (the forward written as nncc's lowering computes
it: lrn's window [c - size/2, c + (size-1)/2], zero-padded, divided by size), on tiny sizes;
lrn's forward is also compared with torch's F.local_response_norm.

The `lrn_conv` group (lrn on [C, H, W] after a conv2d) prints `SKIP` while conv2d cannot be
differentiated.  Prints `PASS name  err=E` or `FAIL name  reason` per run, then `worst <group> err=E`, and last
`N passed, M failed`; the exit status is 1 when anything failed.
"""
import argparse
import ctypes
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from autograd_compare import compare, verdict

TOL = 1e-3
FLOOR = 1e-3
FD_TOL = 1e-6

# --- the cases -------------------------------------------------------------------------------
# A case: name, source (model m), params {name: shape}, inputs and targets as
# [(name, kind, shape)] (kind: "f32", ("ids", vocab), ("label", classes); "S" in a shape is the
# symbolic length), ref(P, I) -> the loss as torch computes it (P: parameters, I: inputs and
# targets, float64 / int64 tensors), runs [(batch, seq)].


def dense(x, P, name, bias=True):
    y = x @ P[name + ".weight"].T
    return y + P[name + ".bias"] if bias else y


def ce(z, y):
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))


def lrn_t(x, size, alpha, beta, k):
    """torch's LocalResponseNorm over axis 1 of [N, C, ...] (rank 2 gets a trailing axis)."""
    if x.dim() == 2:
        return F.local_response_norm(x.unsqueeze(-1), size, alpha, beta, k).squeeze(-1)
    return F.local_response_norm(x, size, alpha, beta, k)


def softmax_cases():
    cases = []
    # softmax [K] -> mse
    cases.append(dict(
        name="softmax_vec_mse",
        src="""model m {
  input x : f32[6]
  target t : f32[5]
  output y = dense(x, 5) |> softmax
  loss = mse(y, t)
}""",
        params={"y.0.weight": (5, 6), "y.0.bias": (5,)},
        inputs=[("x", "f32", (6,)), ("t", "f32", (5,))],
        ref=lambda P, I: F.mse_loss(torch.softmax(dense(I["x"], P, "y.0"), -1), I["t"]),
        runs=[(1, 0), (4, 0)]))
    # softmax [seq, K] (K = 37: chunks of 16 and a vector remainder) -> mse
    cases.append(dict(
        name="softmax_seq_mse",
        src="""model m {
  input x : f32[seq, 6]
  target t : f32[seq, 37]
  output y = dense(x, 37) |> softmax
  loss = mse(y, t)
}""",
        params={"y.0.weight": (37, 6), "y.0.bias": (37,)},
        inputs=[("x", "f32", ("S", 6)), ("t", "f32", ("S", 37))],
        ref=lambda P, I: F.mse_loss(torch.softmax(dense(I["x"], P, "y.0"), -1), I["t"]),
        runs=[(1, 1), (3, 5)]))
    # softmax [seq, K] -> dense -> cross_entropy per step
    cases.append(dict(
        name="softmax_seq_dense_ce",
        src="""model m {
  input x : f32[seq, 7]
  target lab : label[seq, 4]
  h = dense(x, 20) |> softmax
  output z = dense(h, 4)
  loss = cross_entropy(z, lab)
}""",
        params={"h.0.weight": (20, 7), "h.0.bias": (20,), "z.weight": (4, 20), "z.bias": (4,)},
        inputs=[("x", "f32", ("S", 7)), ("lab", ("label", 4), ("S",))],
        ref=lambda P, I: ce(dense(torch.softmax(dense(I["x"], P, "h.0"), -1), P, "z"), I["lab"]),
        runs=[(1, 3), (5, 7)]))
    # log_softmax [K] -> mse
    cases.append(dict(
        name="log_softmax_vec_mse",
        src="""model m {
  input x : f32[6]
  target t : f32[5]
  output y = dense(x, 5) |> log_softmax
  loss = mse(y, t)
}""",
        params={"y.0.weight": (5, 6), "y.0.bias": (5,)},
        inputs=[("x", "f32", (6,)), ("t", "f32", (5,))],
        ref=lambda P, I: F.mse_loss(torch.log_softmax(dense(I["x"], P, "y.0"), -1), I["t"]),
        runs=[(1, 0), (4, 0)]))
    # log_softmax [seq, K] -> mse
    cases.append(dict(
        name="log_softmax_seq_mse",
        src="""model m {
  input x : f32[seq, 6]
  target t : f32[seq, 37]
  output y = dense(x, 37) |> log_softmax
  loss = mse(y, t)
}""",
        params={"y.0.weight": (37, 6), "y.0.bias": (37,)},
        inputs=[("x", "f32", ("S", 6)), ("t", "f32", ("S", 37))],
        ref=lambda P, I: F.mse_loss(torch.log_softmax(dense(I["x"], P, "y.0"), -1), I["t"]),
        runs=[(1, 1), (3, 5)]))
    # log_softmax [K] -> dense -> cross_entropy
    cases.append(dict(
        name="log_softmax_vec_dense_ce",
        src="""model m {
  input x : f32[9]
  target lab : label[3]
  h = dense(x, 17) |> log_softmax
  output z = dense(h, 3)
  loss = cross_entropy(z, lab)
}""",
        params={"h.0.weight": (17, 9), "h.0.bias": (17,), "z.weight": (3, 17), "z.bias": (3,)},
        inputs=[("x", "f32", (9,)), ("lab", ("label", 3), ())],
        ref=lambda P, I: ce(dense(torch.log_softmax(dense(I["x"], P, "h.0"), -1), P, "z"), I["lab"]),
        runs=[(1, 0), (6, 0)]))
    # log_softmax [seq, K] -> dense -> cross_entropy per step
    cases.append(dict(
        name="log_softmax_seq_dense_ce",
        src="""model m {
  input x : f32[seq, 7]
  target lab : label[seq, 4]
  h = dense(x, 20) |> log_softmax
  output z = dense(h, 4)
  loss = cross_entropy(z, lab)
}""",
        params={"h.0.weight": (20, 7), "h.0.bias": (20,), "z.weight": (4, 20), "z.bias": (4,)},
        inputs=[("x", "f32", ("S", 7)), ("lab", ("label", 4), ("S",))],
        ref=lambda P, I: ce(dense(torch.log_softmax(dense(I["x"], P, "h.0"), -1), P, "z"), I["lab"]),
        runs=[(1, 1), (5, 7)]))
    return cases


def lrn_cases():
    cases = []
    # lrn on [C] after a dense (S = 1) and on [C, L] after a per-step dense (S = L); sizes
    # 1, 2, 3, 5 and wider than the channels; beta 0.5, 0.75, 1 (the square-root forms) and
    # general; then a dense and a loss so dx flows back into the first dense.
    specs = [
        # (C, L or 0, size, alpha, beta, k)
        (6, 0, 1, 0.3, 0.75, 1.0),
        (6, 0, 2, 0.5, 0.6, 2.0),
        (7, 0, 3, 1.0, 1.0, 1.5),
        (5, 0, 5, 0.2, 0.5, 1.0),
        (4, 12, 3, 0.8, 0.75, 1.0),
        (4, 12, 2, 1e-1, 1.3, 0.7),
        (5, 19, 5, 0.6, 0.9, 2.0),
        (3, 9, 7, 0.4, 0.75, 1.2),   # window wider than the channels
    ]
    for C, L, size, alpha, beta, k in specs:
        if L:
            src = f"""model m {{
  input x : f32[{C}, 6]
  target lab : label[{C}, 3]
  h = dense(x, {L}) |> lrn({size}, alpha={alpha}, beta={beta}, k={k})
  output z = dense(h, 3)
  loss = cross_entropy(z, lab)
}}"""
            params = {"h.0.weight": (L, 6), "h.0.bias": (L,), "z.weight": (3, L), "z.bias": (3,)}
            inputs = [("x", "f32", (C, 6)), ("lab", ("label", 3), (C,))]
            name = f"lrn_{C}x{L}_n{size}_a{alpha}_b{beta}_k{k}_dense_ce"

            def ref(P, I, size=size, alpha=alpha, beta=beta, k=k):
                return ce(dense(lrn_t(dense(I["x"], P, "h.0"), size, alpha, beta, k), P, "z"), I["lab"])
        else:
            src = f"""model m {{
  input x : f32[8]
  target t : f32[4]
  h = dense(x, {C}) |> lrn({size}, alpha={alpha}, beta={beta}, k={k})
  output y = dense(h, 4)
  loss = mse(y, t)
}}"""
            params = {"h.0.weight": (C, 8), "h.0.bias": (C,), "y.weight": (4, C), "y.bias": (4,)}
            inputs = [("x", "f32", (8,)), ("t", "f32", (4,))]
            name = f"lrn_{C}_n{size}_a{alpha}_b{beta}_k{k}_mse"

            def ref(P, I, size=size, alpha=alpha, beta=beta, k=k):
                return F.mse_loss(dense(lrn_t(dense(I["x"], P, "h.0"), size, alpha, beta, k), P, "y"), I["t"])
        cases.append(dict(name=name, src=src, params=params, inputs=inputs, ref=ref,
                          runs=[(1, 0), (3, 0)]))
    # lrn straight after an embedding (ids of a fixed length: the positions are the channels)
    cases.append(dict(
        name="lrn_after_embedding_n3",
        src="""model m {
  input ids : i32[7]
  target lab : label[7, 5]
  h = embedding(ids, 11, 6) |> lrn(3, alpha=0.5, beta=0.6, k=1.5)
  output z = dense(h, 5)
  loss = cross_entropy(z, lab)
}""",
        params={"h.0.weight": (11, 6), "z.weight": (5, 6), "z.bias": (5,)},
        inputs=[("ids", ("ids", 11), (7,)), ("lab", ("label", 5), (7,))],
        ref=lambda P, I: ce(dense(lrn_t(P["h.0.weight"][I["ids"]], 3, 0.5, 0.6, 1.5), P, "z"), I["lab"]),
        runs=[(1, 0), (4, 0)]))
    return cases


def lrn_conv_cases():
    """lrn on [C, H, W] after a conv2d (skipped while conv2d has no gradient rule)."""
    cases = []
    for C, H, size, alpha, beta, k in ((6, 5, 3, 0.8, 0.75, 1.0), (5, 4, 5, 0.3, 1.3, 2.0),
                                       (4, 6, 2, 1.0, 0.5, 1.0), (8, 3, 1, 0.5, 1.0, 1.5)):
        src = f"""model m {{
  input x : f32[2, {H + 2}, {H + 2}]
  target lab : label[3]
  h = conv2d(x, {C}, kernel=3) |> lrn({size}, alpha={alpha}, beta={beta}, k={k})
  output z = h |> flatten |> dense(3)
  loss = cross_entropy(z, lab)
}}"""

        def ref(P, I, size=size, alpha=alpha, beta=beta, k=k):
            h = F.conv2d(I["x"], P["h.0.weight"], P["h.0.bias"])
            h = F.local_response_norm(h, size, alpha, beta, k)
            return ce(dense(h.flatten(1), P, "z.1"), I["lab"])
        cases.append(dict(
            name=f"lrn_conv_{C}x{H}x{H}_n{size}_a{alpha}_b{beta}_k{k}", src=src,
            params={"h.0.weight": (C, 2, 3, 3), "h.0.bias": (C,), "z.1.weight": (3, C * H * H),
                    "z.1.bias": (3,)},
            inputs=[("x", "f32", (2, H + 2, H + 2)), ("lab", ("label", 3), ())], ref=ref,
            runs=[(1, 0), (3, 0)], needs_grad_of="conv2d"))
    return cases


def embedding_cases():
    cases = []
    # embedding -> dense per step -> cross_entropy per step; small vocabularies so ids repeat
    # within a sample and across the batch (the scatter-add collides); dim 19 = vectors + a
    # remainder, dim 8
    for vocab, dim in ((5, 19), (9, 8)):
        cases.append(dict(
            name=f"embedding_v{vocab}_d{dim}_dense_ce",
            src=f"""model m {{
  input ids : i32[seq]
  target lab : label[seq, 4]
  e = embedding(ids, {vocab}, {dim})
  output z = dense(e, 4)
  loss = cross_entropy(z, lab)
}}""",
            params={"e.weight": (vocab, dim), "z.weight": (4, dim), "z.bias": (4,)},
            inputs=[("ids", ("ids", vocab), ("S",)), ("lab", ("label", 4), ("S",))],
            ref=lambda P, I: ce(dense(P["e.weight"][I["ids"]], P, "z"), I["lab"]),
            runs=[(b, s) for b in (1, 5) for s in (1, 7, 64)]))
    # embedding -> last -> dense -> cross_entropy (one label per sample)
    cases.append(dict(
        name="embedding_last_dense_ce",
        src="""model m {
  input ids : i32[seq]
  target lab : label[3]
  e = embedding(ids, 6, 10)
  output z = e |> last |> dense(3)
  loss = cross_entropy(z, lab)
}""",
        params={"e.weight": (6, 10), "z.1.weight": (3, 10), "z.1.bias": (3,)},
        inputs=[("ids", ("ids", 6), ("S",)), ("lab", ("label", 3), ())],
        ref=lambda P, I: ce(dense(P["e.weight"][I["ids"]][:, -1], P, "z.1"), I["lab"]),
        runs=[(b, s) for b in (1, 5) for s in (1, 7, 64)]))
    # embedding -> log_softmax -> mse: the embedding's dy straight from another rule
    cases.append(dict(
        name="embedding_log_softmax_mse",
        src="""model m {
  input ids : i32[seq]
  target t : f32[seq, 12]
  output y = embedding(ids, 4, 12) |> log_softmax
  loss = mse(y, t)
}""",
        params={"y.0.weight": (4, 12)},
        inputs=[("ids", ("ids", 4), ("S",)), ("t", "f32", ("S", 12))],
        ref=lambda P, I: F.mse_loss(torch.log_softmax(P["y.0.weight"][I["ids"]], -1), I["t"]),
        runs=[(1, 7), (5, 64)]))
    return cases


ACTS = [  # (nncc spelling, torch function)
    ("relu", torch.relu),
    ("leaky_relu", lambda v: F.leaky_relu(v, 0.01)),
    ("leaky_relu(slope=0.3)", lambda v: F.leaky_relu(v, 0.3)),
    ("leaky_relu(slope=2.5)", lambda v: F.leaky_relu(v, 2.5)),
    ("leaky_relu(slope=0)", lambda v: F.leaky_relu(v, 0.0)),
    ("sigmoid", torch.sigmoid),
    ("tanh", torch.tanh),
]


def act_label(spelling):
    return spelling.replace("(slope=", "_").replace(")", "")


def act_cases():
    """Each activation's rule (_act_grad), fused into the dense before it and standalone on an
    input, with [K] and [seq, K] shapes, into cross_entropy and mse; dense with and without a
    bias; an activation whose dense is itself an output (the fused value must stay unfused)."""
    cases = []
    for spelling, fn in ACTS:
        tag = act_label(spelling)
        # dense |> act -> dense -> cross_entropy (K = 21: vectors + a remainder)
        cases.append(dict(
            name=f"act_{tag}_dense_ce",
            src=f"""model m {{
  input x : f32[9]
  target lab : label[4]
  h = dense(x, 21) |> {spelling}
  output z = dense(h, 4)
  loss = cross_entropy(z, lab)
}}""",
            params={"h.0.weight": (21, 9), "h.0.bias": (21,), "z.weight": (4, 21), "z.bias": (4,)},
            inputs=[("x", "f32", (9,)), ("lab", ("label", 4), ())],
            ref=lambda P, I, fn=fn: ce(dense(fn(dense(I["x"], P, "h.0")), P, "z"), I["lab"]),
            runs=[(1, 0), (7, 0)]))
        # per step: dense (no bias) |> act -> mse against a real target, over [seq, 19]
        cases.append(dict(
            name=f"act_{tag}_seq_nobias_mse",
            src=f"""model m {{
  input x : f32[seq, 5]
  target t : f32[seq, 19]
  output y = dense(x, 19, bias=false) |> {spelling}
  loss = mse(y, t)
}}""",
            params={"y.0.weight": (19, 5)},
            inputs=[("x", "f32", ("S", 5)), ("t", "f32", ("S", 19))],
            ref=lambda P, I, fn=fn: F.mse_loss(fn(dense(I["x"], P, "y.0", bias=False)), I["t"]),
            runs=[(1, 1), (3, 6)]))
    # the dense is an output too and the activation after it is another output: h must reach
    # the second dense unactivated, y = act(h) feeds the loss with h's dense
    cases.append(dict(
        name="act_after_output_dense_ce",
        src="""model m {
  input x : f32[6]
  target lab : label[5]
  output h = dense(x, 11)
  output y = leaky_relu(h, slope=0.2)
  output z = dense(y, 5)
  loss = cross_entropy(z, lab)
}""",
        params={"h.weight": (11, 6), "h.bias": (11,), "z.weight": (5, 11), "z.bias": (5,)},
        inputs=[("x", "f32", (6,)), ("lab", ("label", 5), ())],
        ref=lambda P, I: ce(dense(F.leaky_relu(dense(I["x"], P, "h"), 0.2), P, "z"), I["lab"]),
        runs=[(1, 0), (4, 0)]))
    # two dense layers, cross_entropy per step over [seq, 7]: dense's dx through a chain
    cases.append(dict(
        name="dense_chain_seq_ce",
        src="""model m {
  input x : f32[seq, 33]
  target lab : label[seq, 7]
  h = dense(x, 17) |> tanh
  g = dense(h, 40) |> sigmoid
  output z = dense(g, 7)
  loss = cross_entropy(z, lab)
}""",
        params={"h.0.weight": (17, 33), "h.0.bias": (17,), "g.0.weight": (40, 17),
                "g.0.bias": (40,), "z.weight": (7, 40), "z.bias": (7,)},
        inputs=[("x", "f32", ("S", 33)), ("lab", ("label", 7), ("S",))],
        ref=lambda P, I: ce(dense(torch.sigmoid(dense(torch.tanh(dense(I["x"], P, "h.0")), P, "g.0")),
                                  P, "z"), I["lab"]),
        runs=[(1, 1), (2, 9)]))
    return cases


# --- running a case ----------------------------------------------------------------------------

def build(nncc, d, case):
    src = os.path.join(d, case["name"] + ".nn")
    so = os.path.join(d, case["name"] + ".so")
    with open(src, "w") as f:
        f.write(case["src"] + "\n")
    op = case.get("needs_grad_of")
    if op:
        r = subprocess.run([nncc, src, "--emit=grad"], capture_output=True, text=True)
        if f"cannot differentiate '{op}'" in r.stderr:
            return "skip", f"{op} has no gradient rule yet"
    r = subprocess.run([nncc, src, "-o", so], capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr.strip().splitlines()[0] if r.stderr.strip() else "nncc failed"
    lib = ctypes.CDLL(so)
    P64 = ctypes.POINTER(ctypes.c_int64)
    lib.m_create.restype = ctypes.c_void_p
    for fn in ("m_param", "m_grad"):
        getattr(lib, fn).restype = ctypes.POINTER(ctypes.c_float)
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p, P64]
    lib.m_gradients.restype = ctypes.c_int
    lib.nncc_last_error.restype = ctypes.c_char_p
    lib.m_destroy.argtypes = [ctypes.c_void_p]
    return lib, None


def tensor_view(lib, fn, m, name):
    n = ctypes.c_int64(0)
    p = getattr(lib, fn)(m, name.encode(), ctypes.byref(n))
    if not p:
        return None
    return np.ctypeslib.as_array(p, shape=(n.value,))


def make_array(rng, kind, shape, batch, seq):
    full = (batch,) + tuple(seq if d == "S" else d for d in shape)
    if kind == "f32":
        return rng.standard_normal(full).astype(np.float32)
    what, n = kind
    return rng.integers(0, n, size=full).astype(np.int32)


def misc_scale(name, shape):
    """The standard deviation of the random parameters of grad_misc's cases."""
    return 0.6 if name.endswith("weight") else 0.3


def run(lib, case, batch, seq, rng, scale=misc_scale):
    """m_gradients' loss and every m_grad against torch autograd (case["ref"]), the
    parameters drawn from N(0, scale(name, shape)^2)."""
    m = ctypes.c_void_p(lib.m_create())
    try:
        P = {}
        for name, shape in case["params"].items():
            v = tensor_view(lib, "m_param", m, name)
            if v is None or v.size != int(np.prod(shape)):
                return None, f"m_param({name}) missing or wrong size"
            v[:] = (rng.standard_normal(v.size) * scale(name, shape)).astype(np.float32)
            P[name] = v.reshape(shape).copy()
        arrays = {name: make_array(rng, kind, shape, batch, seq) for name, kind, shape in case["inputs"]}
        args = [ctypes.c_void_p(m.value), ctypes.c_int64(batch)]
        if any("S" in shape for _, _, shape in case["inputs"]):
            args.append(ctypes.c_int64(seq))
        args += [a.ctypes.data_as(ctypes.c_void_p) for a in arrays.values()]
        loss = ctypes.c_float(0)
        args.append(ctypes.byref(loss))
        rc = lib.m_gradients(*args)
        if rc:
            return None, f"m_gradients returned {rc}: {lib.nncc_last_error().decode()}"
        got = {"loss": np.array([loss.value])}
        for name in P:
            gv = tensor_view(lib, "m_grad", m, name)
            if gv is None:
                return None, f"m_grad({name}) is NULL"
            got[name] = gv.copy()
    finally:
        lib.m_destroy(m)
    return compare(case["ref"], P, arrays, got, FLOOR)


# --- the rules in float64 against finite differences -------------------------------------------

def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_lrn(x, size, alpha, beta, k):
    """nncc's lower_lrn on [C, S]: the window [c - size/2, c + (size-1)/2], clipped."""
    C = x.shape[0]
    S = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)
        S[c] = k + alpha / size * (x[lo:hi] ** 2).sum(0)
    return x / S ** beta


def np_lrn_grad(dy, x, size, alpha, beta, k):
    """_lrn_grad as lowered: p = S^-beta, t = dy x p / S, dx = dy p - 2ab/n x sum_j t_j."""
    C = x.shape[0]
    S = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)
        S[c] = k + alpha / size * (x[lo:hi] ** 2).sum(0)
    p = S ** -beta
    t = dy * x * p / S
    dx = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - (size - 1) // 2), min(C, c + size // 2 + 1)
        dx[c] = dy[c] * p[c] - 2 * alpha * beta / size * x[c] * t[lo:hi].sum(0)
    return dx


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), FLOOR))


def fd_checks(rng):
    out = []
    for R, N in ((1, 1), (3, 5), (2, 17)):
        x, dy = rng.standard_normal((R, N)), rng.standard_normal((R, N))
        y = np_softmax(x)
        rule = y * (dy - (dy * y).sum(-1, keepdims=True))
        out.append((f"fd_softmax_{R}x{N}", rel(rule, fd_grad(lambda v: (dy * np_softmax(v)).sum(), x))))
        ly = np.log(np_softmax(x))
        rule = dy - np.exp(ly) * dy.sum(-1, keepdims=True)
        out.append((f"fd_log_softmax_{R}x{N}",
                    rel(rule, fd_grad(lambda v: (dy * np.log(np_softmax(v))).sum(), x))))
    for C, S in ((1, 1), (4, 3), (6, 2)):
        for size in (1, 2, 3, 4, 5, 8):
            for alpha, beta, k in ((0.7, 0.75, 1.0), (1.5, 1.3, 0.5), (0.3, 0.5, 2.0)):
                x, dy = rng.standard_normal((C, S)), rng.standard_normal((C, S))
                ref = lrn_t(torch.tensor(x).unsqueeze(0), size, alpha, beta, k)
                fwd = rel(np_lrn(x, size, alpha, beta, k), ref[0].numpy())
                rule = np_lrn_grad(dy, x, size, alpha, beta, k)
                num = fd_grad(lambda v: (dy * np_lrn(v, size, alpha, beta, k)).sum(), x)
                out.append((f"fd_lrn_{C}x{S}_n{size}_a{alpha}_b{beta}_k{k}", max(rel(rule, num), fwd)))
    for V, D, R in ((3, 2, 7), (5, 4, 1), (4, 3, 12)):
        ids = rng.integers(0, V, size=R)
        W, dy = rng.standard_normal((V, D)), rng.standard_normal((R, D))
        rule = np.zeros((V, D))
        for r in range(R):
            rule[ids[r]] += dy[r]
        out.append((f"fd_embedding_v{V}_d{D}_r{R}", rel(rule, fd_grad(lambda w: (dy * w[ids]).sum(), W))))
    # the activations' rules as _act_grad lowers them: relu and leaky_relu (slope > 0) read y,
    # leaky_relu with slope <= 0 reads x; sigmoid reads y (y(1-y)), tanh reads y (1-y^2)
    x = rng.standard_normal(41) * 2
    x[np.abs(x) < 1e-3] += 0.1   # no point on the kink
    dy = rng.standard_normal(41)
    for slope in (0.01, 0.3, 2.5, 0.0, -0.5):
        f = lambda v, s=slope: np.where(v > 0, v, s * v)
        y = f(x)
        pos = (y > 0) if slope > 0 else (x > 0)
        out.append((f"fd_leaky_relu_{slope}", rel(np.where(pos, dy, dy * slope),
                                                 fd_grad(lambda v: (dy * f(v)).sum(), x.copy()))))
    sig = lambda v: 1 / (1 + np.exp(-v))
    y = sig(x)
    out.append(("fd_sigmoid", rel(dy * y * (1 - y), fd_grad(lambda v: (dy * sig(v)).sum(), x.copy()))))
    y = np.tanh(x)
    out.append(("fd_tanh", rel(dy * (1 - y * y), fd_grad(lambda v: (dy * np.tanh(v)).sum(), x.copy()))))
    y = np.maximum(x, 0)
    out.append(("fd_relu", rel(np.where(y > 0, dy, 0), fd_grad(lambda v: (dy * np.maximum(v, 0)).sum(),
                                                                 x.copy()))))
    # the losses: _ce_grad = (softmax(z) - onehot) / rows, _mse_grad = 2 (y - t) / count
    for R, K in ((1, 3), (6, 10)):
        z, lab = rng.standard_normal((R, K)), rng.integers(0, K, size=R)
        onehot = np.eye(K)[lab]
        ce_np = lambda v: -np.mean(np.log(np_softmax(v))[np.arange(R), lab])
        out.append((f"fd_cross_entropy_{R}x{K}", rel((np_softmax(z) - onehot) / R, fd_grad(ce_np, z))))
        t = rng.standard_normal((R, K))
        mse_np = lambda v: np.mean((v - t) ** 2)
        out.append((f"fd_mse_{R}x{K}", rel(2 * (z - t) / z.size, fd_grad(mse_np, z))))
    # dense: y = x W^T + b over rows; _dense_dx = dy W, _dense_dw = dy^T x, _dense_db = sum dy
    for R, K, U in ((1, 3, 2), (5, 7, 4)):
        x, W, b = rng.standard_normal((R, K)), rng.standard_normal((U, K)), rng.standard_normal(U)
        dy = rng.standard_normal((R, U))
        out.append((f"fd_dense_dx_{R}x{K}x{U}", rel(dy @ W, fd_grad(lambda v: (dy * (v @ W.T + b)).sum(), x))))
        out.append((f"fd_dense_dw_{R}x{K}x{U}", rel(dy.T @ x, fd_grad(lambda w: (dy * (x @ w.T + b)).sum(), W))))
        out.append((f"fd_dense_db_{R}x{K}x{U}", rel(dy.sum(0), fd_grad(lambda c: (dy * (x @ W.T + c)).sum(), b))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("groups", nargs="*",
                    default=["act", "softmax", "lrn", "lrn_conv", "embedding", "fd"])
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(20261128)
    passed = failed = 0
    groups = {"act": act_cases, "softmax": softmax_cases, "lrn": lrn_cases, "lrn_conv": lrn_conv_cases,
              "embedding": embedding_cases}
    for group in args.groups:
        worst = 0.0
        if group == "fd":
            for name, e in fd_checks(rng):
                ok = e <= FD_TOL
                print(f"{'PASS' if ok else 'FAIL'} {name}  err={e:.2e}")
                passed, failed = passed + ok, failed + (not ok)
                worst = max(worst, e)
            print(f"worst fd err={worst:.2e}")
            continue
        for case in groups[group]():
            lib, why = build(args.nncc, args.dir, case)
            if lib == "skip":
                print(f"SKIP {case['name']}  {why}")
                continue
            if lib is None:
                print(f"FAIL {case['name']}  {why}")
                failed += 1
                continue
            for batch, seq in case["runs"]:
                name = f"{case['name']}_b{batch}" + (f"_s{seq}" if seq else "")
                e, detail = run(lib, case, batch, seq, rng)
                if verdict(name, e, detail, TOL):
                    passed += 1
                    worst = max(worst, e)
                else:
                    failed += 1
        print(f"worst {group} err={worst:.2e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
