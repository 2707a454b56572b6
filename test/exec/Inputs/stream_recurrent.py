"""stream_recurrent.py - the carried recurrent state: M_step / M_reset streaming and stateful
training (with and without bptt), against M_forward and PyTorch.

  stream_recurrent.py --nncc NNCC --dir DIR [GROUP...]     GROUP: step, stateful, errors

step      For each model (lstm over an embedding, 2 layers, an output per step; gru over f32
          inputs; a relu rnn read by last(h); a 2-layer lstm read by last(h) with two outputs)
          and batches 1 and 3: M_forward on the whole sequence against PyTorch
          (torch._VF, float64), then M_step step by step from M_reset: a per-step output must
          equal M_forward's slice at that step, a many-to-one output must equal M_forward on
          the prefix seen so far; after M_reset the first step again gives the first output.
          err = max|a - b| / max(max|b|, 1e-3) <= 1e-4.
stateful  `stateful = true` (and with `bptt = 3`): a chain of M_gradients calls of different
          lengths, each starting from the state the previous one ended with (detached), with an
          M_forward between them that must not disturb it; each call's loss and gradients
          against PyTorch carrying the detached state the same way (<= 1e-3); after M_reset the
          chain starts from zero again.
errors    a batch that changes between carrying calls without M_reset, a token id out of range
          in M_step, a NULL input, batch 0: an error code and a message, never a crash; the
          header of a bidirectional model declares no M_step (and says why), its library
          exports none.
Prints `PASS name  err=E` / `FAIL name  reason`, `worst <group> err=E`, `N passed, M failed`.
"""
import argparse
import ctypes
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grad_recurrent import GATES, detach, rec_params, vf_run, vf_truncated  # noqa: E402

FWD_TOL = 1e-4
GRAD_TOL = 1e-3
FLOOR = 1e-3
P64 = ctypes.POINTER(ctypes.c_int64)


def err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), FLOOR))


def build(nncc, d, name, src):
    path = os.path.join(d, name + ".nn")
    so = os.path.join(d, name + ".so")
    with open(path, "w") as f:
        f.write(src + "\n")
    r = subprocess.run([nncc, path, "-o", so], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"nncc failed: {r.stderr.strip()}")
    lib = ctypes.CDLL(so)
    lib.m_create.restype = ctypes.c_void_p
    for fn in ("m_param", "m_grad"):
        if hasattr(lib, fn):
            getattr(lib, fn).restype = ctypes.POINTER(ctypes.c_float)
            getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p, P64]
    lib.nncc_last_error.restype = ctypes.c_char_p
    lib.m_destroy.argtypes = [ctypes.c_void_p]
    return lib, os.path.join(d, name + ".h")


def view(lib, fn, m, name):
    n = ctypes.c_int64(0)
    p = getattr(lib, fn)(m, name.encode(), ctypes.byref(n))
    if not p:
        raise RuntimeError(f"{fn}({name}) is NULL")
    return np.ctypeslib.as_array(p, shape=(n.value,))


def set_params(lib, m, params, rng):
    P = {}
    for name, shape in params.items():
        v = view(lib, "m_param", m, name)
        assert v.size == int(np.prod(shape)), name
        scale = 1.0 if name == "e.weight" else 0.9 / np.sqrt(shape[-1] if len(shape) == 2 else 4)
        v[:] = (rng.standard_normal(v.size) * scale).astype(np.float32)
        P[name] = v.reshape(shape).copy()
    return P


def ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def last_error(lib):
    return lib.nncc_last_error().decode()


# --- models -----------------------------------------------------------------------------------

def model(kind, units, layers, act="tanh", embed=None, K=3, last=False, classes=4, two=False,
          train=""):
    call = f"{kind}(e, {units}" + (", activation=relu" if act == "relu" else "") + \
        (f", layers={layers}" if layers > 1 else "") + ")"
    if embed:
        head = f"  input ids : i32[seq]\n  e = embedding(ids, {embed[0]}, {embed[1]})\n"
        K = embed[1]
    else:
        head = f"  input e : f32[seq, {K}]\n"
    if last:
        body = f"  h = {call}\n  output z = dense(last(h), {classes})\n"
        if two:
            body += "  output hl = last(h)\n"
        tgt = f"  target lab : label[{classes}]\n"
    else:
        body = f"  h = {call}\n  output z = dense(h, {classes})\n"
        tgt = f"  target lab : label[seq, {classes}]\n"
    src = "model m {\n" + head + tgt + body + "  loss = cross_entropy(z, lab)\n}"
    if train:
        src += "\ntrain m {\n" + train + "\n}"
    width = units
    params = {}
    if embed:
        params["e.weight"] = embed
    params.update(rec_params("h", K, units, layers, False, GATES[kind]))
    params["z.weight"] = (classes, width)
    params["z.bias"] = (classes,)
    name = f"{kind}{'_relu' if act == 'relu' else ''}_u{units}_l{layers}" + \
        (f"_emb{embed[0]}" if embed else "") + ("_last" if last else "") + ("_two" if two else "")
    return dict(name=name, src=src, kind=kind, units=units, layers=layers, act=act, embed=embed,
                K=K, last=last, classes=classes, two=two, params=params)


def inputs(rng, c, batch, seq):
    if c["embed"]:
        x = rng.integers(0, c["embed"][0], size=(batch, seq)).astype(np.int32)
    else:
        x = rng.standard_normal((batch, seq, c["K"])).astype(np.float32)
    lab = rng.integers(0, c["classes"], size=(batch,) if c["last"] else (batch, seq)).astype(np.int32)
    return x, lab


def torch_forward(c, P, x, state=None, bptt=0):
    xt = P["e.weight"][torch.tensor(x, dtype=torch.int64)] if c["embed"] else torch.tensor(x, dtype=torch.float64)
    if bptt:
        h, st = vf_truncated(c["kind"], xt, P, "h", c["units"], c["layers"], c["act"], bptt, state)
    else:
        h, st = vf_run(c["kind"], xt, P, "h", c["units"], c["layers"], False, c["act"], state)
    hl = h[:, -1] if c["last"] else h
    z = hl @ P["z.weight"].T + P["z.bias"]
    return z, hl, st


def out_arrays(c, batch, seq):
    z = np.zeros((batch, c["classes"]) if c["last"] else (batch, seq, c["classes"]), np.float32)
    outs = [z]
    if c["two"]:
        outs.append(np.zeros((batch, c["units"]), np.float32))
    return outs


def forward(lib, m, c, x, batch, seq):
    outs = out_arrays(c, batch, seq)
    rc = lib.m_forward(m, ctypes.c_int64(batch), ctypes.c_int64(seq), ptr(x), *[ptr(o) for o in outs])
    if rc:
        raise RuntimeError(f"m_forward returned {rc}: {last_error(lib)}")
    return outs


def step(lib, m, c, xt, batch):
    outs = out_arrays(c, batch, 1)
    rc = lib.m_step(m, ctypes.c_int64(batch), ptr(np.ascontiguousarray(xt)), *[ptr(o) for o in outs])
    if rc:
        raise RuntimeError(f"m_step returned {rc}: {last_error(lib)}")
    return [o.reshape(o.shape[0], -1) for o in outs]


# --- step -------------------------------------------------------------------------------------

def step_group(args, rng, report):
    cases = [model("lstm", 6, 2, embed=(7, 5)),
             model("gru", 5, 1, K=3),
             model("rnn", 4, 1, act="relu", K=2, last=True),
             model("lstm", 5, 2, K=3, last=True, two=True)]
    for c in cases:
        lib, _ = build(args.nncc, args.dir, "step_" + c["name"], c["src"])
        for batch, seq in ((1, 1), (3, 9), (3, 40)):
            name = f"step_{c['name']}_b{batch}_s{seq}"
            m = ctypes.c_void_p(lib.m_create())
            try:
                P = set_params(lib, m, c["params"], rng)
                x, _ = inputs(rng, c, batch, seq)
                full = forward(lib, m, c, x, batch, seq)
                TP = {k: torch.tensor(v, dtype=torch.float64) for k, v in P.items()}
                z, hl, _ = torch_forward(c, TP, x)
                e_fwd = err(full[0], z.numpy())
                if c["two"]:
                    e_fwd = max(e_fwd, err(full[1], hl.numpy()))
                report("fwd", name + "_forward_vs_torch", e_fwd, FWD_TOL)
                if lib.m_reset(m):
                    raise RuntimeError(f"m_reset: {last_error(lib)}")
                e = 0.0
                first = None
                for t in range(seq):
                    got = step(lib, m, c, x[:, t], batch)
                    if first is None:
                        first = [g.copy() for g in got]
                    if c["last"]:
                        want = forward(lib, m, c, np.ascontiguousarray(x[:, :t + 1]), batch, t + 1)
                    else:
                        want = [full[0][:, t]]
                    for g, w in zip(got, want):
                        e = max(e, err(g, w.reshape(batch, -1)))
                lib.m_reset(m)
                again = step(lib, m, c, x[:, 0], batch)
                e = max(e, max(err(g, f) for g, f in zip(again, first)))
                report("stream", name, e, FWD_TOL)
            except RuntimeError as ex:
                report("stream", name, None, FWD_TOL, str(ex))
            finally:
                lib.m_destroy(m)


# --- stateful ---------------------------------------------------------------------------------

def stateful_group(args, rng, report):
    variants = [("stateful = true", 0, model("lstm", 5, 2, embed=(6, 4), train="  stateful = true")),
                ("stateful + bptt 3", 3, model("gru", 4, 2, K=3, train="  stateful = true\n  bptt = 3")),
                ("stateful last", 0, model("rnn", 5, 1, K=2, last=True, train="  stateful = true"))]
    for _, bptt, c in variants:
        lib, _ = build(args.nncc, args.dir, "stateful_" + c["name"], c["src"])
        for batch in (1, 3):
            m = ctypes.c_void_p(lib.m_create())
            try:
                P = set_params(lib, m, c["params"], rng)
                TP = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
                state = None
                for rnd in range(2):            # the chain, then again after M_reset
                    for call, seq in enumerate((5, 7, 1, 4)):
                        name = f"stateful_{c['name']}" + (f"_bptt{bptt}" if bptt else "") + \
                            f"_b{batch}_r{rnd}_c{call}_s{seq}"
                        x, lab = inputs(rng, c, batch, seq)
                        if call == 2:           # M_forward between calls leaves the state alone
                            forward(lib, m, c, x, batch, seq)
                        loss = ctypes.c_float(0)
                        rc = lib.m_gradients(m, ctypes.c_int64(batch), ctypes.c_int64(seq), ptr(x),
                                             ptr(lab), ctypes.byref(loss))
                        if rc:
                            raise RuntimeError(f"m_gradients returned {rc}: {last_error(lib)}")
                        for t in TP.values():
                            t.grad = None
                        z, _, st = torch_forward(c, TP, x, state, bptt)
                        L = F.cross_entropy(z.reshape(-1, c["classes"]),
                                            torch.tensor(lab, dtype=torch.int64).reshape(-1))
                        L.backward()
                        e = err([loss.value], [L.item()])
                        for k, t in TP.items():
                            e = max(e, err(view(lib, "m_grad", m, k), t.grad.numpy().reshape(-1)))
                        report("stateful", name, e, GRAD_TOL)
                        state = detach(st)
                    lib.m_reset(m)
                    state = None
            except RuntimeError as ex:
                report("stateful", f"stateful_{c['name']}_b{batch}", None, GRAD_TOL, str(ex))
            finally:
                lib.m_destroy(m)


# --- errors -----------------------------------------------------------------------------------

def errors_group(args, rng, report):
    c = model("lstm", 4, 1, embed=(5, 3), train="  stateful = true")
    lib, _ = build(args.nncc, args.dir, "errors_" + c["name"], c["src"])
    m = ctypes.c_void_p(lib.m_create())

    def expect(name, rc, words):
        msg = last_error(lib)
        ok = rc < 0 and all(w in msg for w in words)
        report("errors", name, 0.0 if ok else None, 1, f"rc={rc} message={msg!r}")
    try:
        x3, lab3 = inputs(rng, c, 3, 4)
        z3 = np.zeros((3, 1, c["classes"]), np.float32)
        lib.m_reset(m)
        if lib.m_step(m, ctypes.c_int64(3), ptr(np.ascontiguousarray(x3[:, 0])), ptr(z3)):
            raise RuntimeError(last_error(lib))
        x2 = np.ascontiguousarray(x3[:2, 0])
        z2 = np.zeros((2, 1, c["classes"]), np.float32)
        expect("step_batch_change", lib.m_step(m, ctypes.c_int64(2), ptr(x2), ptr(z2)),
               ["batch 2", "batch 3", "m_reset"])
        loss = ctypes.c_float(0)
        expect("gradients_batch_change",
               lib.m_gradients(m, ctypes.c_int64(2), ctypes.c_int64(4), ptr(np.ascontiguousarray(x3[:2])),
                               ptr(np.ascontiguousarray(lab3[:2])), ctypes.byref(loss)),
               ["batch 2", "batch 3", "m_reset"])
        lib.m_reset(m)
        rc = lib.m_step(m, ctypes.c_int64(2), ptr(x2), ptr(z2))
        report("errors", "step_after_reset_new_batch", 0.0 if rc == 0 else None, 1, last_error(lib))
        bad = np.array([1, 5], np.int32)
        expect("step_token_out_of_range", lib.m_step(m, ctypes.c_int64(2), ptr(bad), ptr(z2)),
               ["token id 5", "outside [0, 5)"])
        expect("step_null_input", lib.m_step(m, ctypes.c_int64(2), None, ptr(z2)), ["NULL"])
        expect("step_batch_0", lib.m_step(m, ctypes.c_int64(0), ptr(x2), ptr(z2)), ["batch must be >= 1"])
        expect("gradients_seq_0",
               lib.m_gradients(m, ctypes.c_int64(2), ctypes.c_int64(0), ptr(x2), ptr(x2), ctypes.byref(loss)),
               ["seq must be >= 1"])
    except RuntimeError as ex:
        report("errors", "errors", None, 1, str(ex))
    finally:
        lib.m_destroy(m)
    # a bidirectional model: no M_step in the header (a note says why) nor in the library
    src = """model m {
  input x : f32[seq, 3]
  output h = bidirectional(gru(x, 4))
}"""
    lib2, header = build(args.nncc, args.dir, "errors_bidirectional", src)
    text = open(header).read()
    ok = "m_step" not in text and "m_reset" not in text and "bidirectional" in text and \
        not hasattr(lib2, "m_step")
    report("errors", "bidirectional_has_no_step", 0.0 if ok else None, 1, "header or library has m_step")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("groups", nargs="*")
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    counts = {"passed": 0, "failed": 0}
    worst = {}

    def report(group, name, e, tol, why=""):
        if e is None or e > tol:
            print(f"FAIL {name}  " + (f"err={e:.2e}" if e is not None else why))
            counts["failed"] += 1
        else:
            print(f"PASS {name}  err={e:.2e}")
            counts["passed"] += 1
            worst[group] = max(worst.get(group, 0.0), e)
    groups = {"step": step_group, "stateful": stateful_group, "errors": errors_group}
    for g in args.groups or list(groups):
        groups[g](args, rng, report)
    for g, w in worst.items():
        print(f"worst {g} err={w:.2e}")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
