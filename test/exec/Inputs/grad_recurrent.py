"""grad_recurrent.py - checks backpropagation through time (rnn tanh / relu, lstm, gru; stacked,
bidirectional; after an embedding; dense at every step or last(h)) against PyTorch autograd.

  grad_recurrent.py --nncc NNCC --dir DIR [GROUP...]     GROUP: rnn, lstm, gru, bptt, fd
                                                         (default: all)

Each case is one small trainable .nn model (model name `m`) and the torch function that computes
the same loss from the same parameters: the recurrent layer is torch's own kernel
(torch._VF.rnn_tanh / rnn_relu / lstm / gru, what torch.nn.RNN / LSTM / GRU call, with the
state_dict's parameters in their order; `check_vf` first confirms that these give what the
modules give).  The model is built with `nncc m.nn -o m.so`, loaded with ctypes; for each
(batch, seq) the script writes random parameters through m_param, calls m_gradients on random
inputs and targets, and compares the loss and every parameter's gradient (m_grad) with torch
autograd in float64 on the same float32 numbers:

    err = max|a - b| / max(max|b|, 1e-3)     (a: nncc's float32, b: the float64 reference)

A run passes when every a is finite and every err <= 1e-3.

The `fd` group checks the rules themselves in float64 NumPy: the forward as nncc lowers it
(saving each step's activations) and the backward as nncc lowers it (the reverse loop giving
the gate gradients dG, then the weight gradients as one product over batch x steps), against
central finite differences of that forward (<= 1e-6), for each cell and direction.
Prints `PASS name  err=E` or `FAIL name  reason` per run, `worst <group> err=E`, then
`N passed, M failed`; the exit status is 1 when anything failed.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from autograd_compare import verdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grad_misc import build, run as grad_misc_run  # noqa: E402

TOL = 1e-3
FD_TOL = 1e-6


# --- the torch reference --------------------------------------------------------------------

def vf_run(kind, x, P, prefix, units, layers, bidir, act="tanh", state=None):
    """torch's recurrent kernel on x [B, T, K] (batch first) from `state` (zero when None; lstm:
    (h, c)); the parameters P[prefix + ".weight_ih_l0"] ... in state_dict order.  Returns the
    outputs and the final state."""
    dirs = 2 if bidir else 1
    ws = []
    for l in range(layers):
        for sfx in ([""] + (["_reverse"] if bidir else [])):
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                ws.append(P[f"{prefix}.{w}_l{l}{sfx}"])
    if state is None:
        h0 = torch.zeros(layers * dirs, x.shape[0], units, dtype=x.dtype)
        state = (h0, h0.clone()) if kind == "lstm" else h0
    if kind == "lstm":
        out = torch._VF.lstm(x, state, ws, True, layers, 0.0, True, bidir, True)
        return out[0], (out[1], out[2])
    if kind == "gru":
        out = torch._VF.gru(x, state, ws, True, layers, 0.0, True, bidir, True)
    elif act == "relu":
        out = torch._VF.rnn_relu(x, state, ws, True, layers, 0.0, True, bidir, True)
    else:
        out = torch._VF.rnn_tanh(x, state, ws, True, layers, 0.0, True, bidir, True)
    return out[0], out[1]


def vf_layer(kind, x, P, prefix, units, layers, bidir, act="tanh"):
    return vf_run(kind, x, P, prefix, units, layers, bidir, act)[0]


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def vf_truncated(kind, x, P, prefix, units, layers, act, K, state=None):
    """bptt = K as PyTorch writes it: the sequence in chunks of K steps, the state detached
    between chunks (h = h.detach()), one loss over all the outputs."""
    outs = []
    for start in range(0, x.shape[1], K):
        o, state = vf_run(kind, x[:, start:start + K], P, prefix, units, layers, False, act, state)
        outs.append(o)
        state = detach(state)
    return torch.cat(outs, 1), state


def check_vf():
    """The _VF kernels with state_dict parameters give what nn.RNN / LSTM / GRU give."""
    torch.manual_seed(0)
    worst = 0.0
    for kind, mod in (("rnn", torch.nn.RNN), ("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        m = mod(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
        x = torch.randn(2, 5, 3, dtype=torch.float64)
        P = {"h." + k: v for k, v in m.state_dict().items()}
        a = vf_layer(kind, x, P, "h", 4, 2, True)
        worst = max(worst, float((a - m(x)[0]).abs().max()))
    return worst


def dense(x, P, name):
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def ce(z, y):
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))


def rec_params(prefix, K, units, layers, bidir, gates):
    p = {}
    dirs = 2 if bidir else 1
    for l in range(layers):
        kl = K if l == 0 else units * dirs
        for sfx in ([""] + (["_reverse"] if bidir else [])):
            p[f"{prefix}.weight_ih_l{l}{sfx}"] = (gates * units, kl)
            p[f"{prefix}.weight_hh_l{l}{sfx}"] = (gates * units, units)
            p[f"{prefix}.bias_ih_l{l}{sfx}"] = (gates * units,)
            p[f"{prefix}.bias_hh_l{l}{sfx}"] = (gates * units,)
    return p


GATES = {"rnn": 1, "lstm": 4, "gru": 3}
RUNS = [(1, 1), (5, 7), (1, 64), (5, 64)]


def seq_case(kind, units, layers, bidir, act="tanh", K=3, classes=4, embed=None, last=False,
             bptt=0, runs=None):
    """x (f32 [seq, K] or embedding ids) -> kind -> dense per step (or last) -> cross_entropy."""
    call = f"{kind}(e, {units}" + (f", activation={act}" if kind == "rnn" and act != "tanh" else "") + \
        (f", layers={layers}" if layers > 1 else "") + ")"
    if bidir:
        call = f"bidirectional({call})"
    width = units * (2 if bidir else 1)
    if embed:
        vocab, dim = embed
        head = f"  input ids : i32[seq]\n  e = embedding(ids, {vocab}, {dim})\n"
        inputs = [("ids", ("ids", vocab), ("S",))]
        K = dim
    else:
        head = f"  input e : f32[seq, {K}]\n"
        inputs = [("e", "f32", ("S", K))]
    if last:
        tgt = f"  target lab : label[{classes}]\n"
        body = f"  h = {call}\n  output z = dense(last(h), {classes})\n"
        inputs.append(("lab", ("label", classes), ()))
    else:
        tgt = f"  target lab : label[seq, {classes}]\n"
        body = f"  h = {call}\n  output z = dense(h, {classes})\n"
        inputs.append(("lab", ("label", classes), ("S",)))
    src = "model m {\n" + head + tgt + body + "  loss = cross_entropy(z, lab)\n}"
    if bptt:
        src += f"\ntrain m {{\n  bptt = {bptt}\n}}"
    params = {}
    if embed:
        params["e.weight"] = (embed[0], embed[1])
    params.update(rec_params("h", K, units, layers, bidir, GATES[kind]))
    params["z.weight"] = (classes, width)
    params["z.bias"] = (classes,)

    def ref(P, I):
        x = P["e.weight"][I["ids"]] if embed else I["e"]
        if bptt:
            h = vf_truncated(kind, x, P, "h", units, layers, act, bptt)[0]
        else:
            h = vf_layer(kind, x, P, "h", units, layers, bidir, act)
        if last:
            h = h[:, -1]
        return ce(dense(h, P, "z"), I["lab"])
    name = f"{kind}{'_' + act if kind == 'rnn' else ''}_u{units}_l{layers}" + \
        ("_bi" if bidir else "") + (f"_emb{embed[0]}" if embed else "") + ("_last" if last else "") + \
        (f"_bptt{bptt}" if bptt else "")
    return dict(name=name, src=src, params=params, inputs=inputs, ref=ref, runs=runs or RUNS)


def rnn_cases():
    return [seq_case("rnn", 5, 1, False),
            seq_case("rnn", 6, 2, False, act="relu"),
            seq_case("rnn", 4, 2, True),
            seq_case("rnn", 5, 1, True, act="relu", last=True),
            seq_case("rnn", 19, 1, False, embed=(5, 7))]


def lstm_cases():
    return [seq_case("lstm", 5, 1, False),
            seq_case("lstm", 4, 2, True),
            seq_case("lstm", 18, 1, False, embed=(5, 6)),
            seq_case("lstm", 6, 3, False, last=True),
            seq_case("lstm", 3, 1, True, embed=(4, 5), last=True)]


def gru_cases():
    return [seq_case("gru", 5, 1, False),
            seq_case("gru", 4, 2, True),
            seq_case("gru", 17, 2, False, embed=(5, 6)),
            seq_case("gru", 5, 1, True, last=True)]


TRUNC_RUNS = [(1, 1), (5, 7), (3, 12), (5, 64)]


def bptt_cases():
    """bptt = K against PyTorch with detach() every K steps (K = 1, 3, 4, 5, 100 > seq)."""
    return [seq_case("lstm", 5, 2, False, bptt=3, runs=TRUNC_RUNS),
            seq_case("lstm", 6, 1, False, embed=(5, 4), last=True, bptt=4, runs=TRUNC_RUNS),
            seq_case("gru", 5, 2, False, bptt=5, runs=TRUNC_RUNS),
            seq_case("rnn", 4, 1, False, act="relu", bptt=1, runs=TRUNC_RUNS),
            seq_case("rnn", 4, 2, False, bptt=100, runs=TRUNC_RUNS)]


def rec_scale(name, shape):
    """Weights small enough that 64 steps of a relu rnn neither die nor explode."""
    fan = shape[-1] if len(shape) == 2 else 4
    return 1.0 if name == "e.weight" else 0.9 / np.sqrt(fan)


def run(lib, case, batch, seq, rng):
    """m_gradients' loss and every m_grad against torch autograd (grad_misc.run)."""
    return grad_misc_run(lib, case, batch, seq, rng, scale=rec_scale)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("groups", nargs="*")
    args = ap.parse_args()
    groups = {"rnn": rnn_cases, "lstm": lstm_cases, "gru": gru_cases, "bptt": bptt_cases}
    wanted = args.groups or list(groups) + ["fd"]
    rng = np.random.default_rng(7)
    passed = failed = 0
    vf = check_vf()
    if vf > 1e-12:
        print(f"FAIL vf_matches_modules  err={vf:.2e}")
        failed += 1
    else:
        print(f"PASS vf_matches_modules  err={vf:.2e}")
        passed += 1
    for group in wanted:
        worst = 0.0
        if group == "fd":
            import fd_recurrent
            p, f, worst = fd_recurrent.checks(rng, FD_TOL)
            passed += p
            failed += f
            print(f"worst fd err={worst:.2e}")
            continue
        for case in groups[group]():
            lib, why = build(args.nncc, args.dir, case)
            if lib is None:
                print(f"FAIL {case['name']}  {why}")
                failed += 1
                continue
            for batch, seq in case["runs"]:
                name = f"{case['name']}_b{batch}_s{seq}"
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
