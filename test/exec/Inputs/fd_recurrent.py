"""fd_recurrent.py - the recurrent gradient rules in float64 NumPy against finite differences.

The forward is written as compiler/ops/recurrent.c lowers it (one layer, one direction: the
backward direction visits t = T-1 .. 0; it saves each step's record: rnn [h], lstm
[i, f, g, o, c, h], gru [r, z, n, hn, h]), and the backward as it lowers
_recurrent_bptt / _recurrent_dx / _recurrent_dw: the reverse loop giving the gate
pre-activation gradients dG (gru: [r, z, n, hn]), then dx = dG_ih W_ih and the parameter
gradients as products over the batch x steps rows.  The loss is sum(Y * R) for a random R, so
dY = R; every gradient is compared with central differences (h = 1e-6) of that forward:
err = max|a - b| / max(max|b|, 1e-3) <= tol.
"""
import numpy as np


def sig(x):
    return 1 / (1 + np.exp(-x))


GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def forward(cell, x, Wih, Whh, bih, bhh, backward):
    B, T, _ = x.shape
    U = Whh.shape[1]
    h = np.zeros((B, U))
    c = np.zeros((B, U))
    Y = np.zeros((B, T, U))
    rec = {}
    order = range(T - 1, -1, -1) if backward else range(T)
    for t in order:
        a = x[:, t] @ Wih.T + bih          # W_ih x + b_ih
        hh = h @ Whh.T + bhh               # W_hh h + b_hh
        if cell == "rnn_tanh":
            h = np.tanh(a + hh)
            rec[t] = (h,)
        elif cell == "rnn_relu":
            h = np.maximum(a + hh, 0)
            rec[t] = (h,)
        elif cell == "lstm":
            p = a + hh
            i, f, g, o = sig(p[:, :U]), sig(p[:, U:2 * U]), np.tanh(p[:, 2 * U:3 * U]), sig(p[:, 3 * U:])
            c = f * c + i * g
            h = o * np.tanh(c)
            rec[t] = (i, f, g, o, c, h)
        else:
            r = sig(a[:, :U] + hh[:, :U])
            z = sig(a[:, U:2 * U] + hh[:, U:2 * U])
            hn = hh[:, 2 * U:]
            n = np.tanh(a[:, 2 * U:] + r * hn)
            h = (1 - z) * n + z * h
            rec[t] = (r, z, n, hn, h)
        Y[:, t] = h
    return Y, rec


def backward_rules(cell, x, Wih, Whh, rec, dY, backward):
    """The lowering's reverse loop and products (see recurrent.c)."""
    B, T, K = x.shape
    U = Whh.shape[1]
    G = GATES[cell]
    Gd = 4 if cell == "gru" else G
    hh_slot = [0, 1, 3] if cell == "gru" else list(range(G))
    dG = np.zeros((B, T, Gd, U))
    dh = np.zeros((B, U))
    dc = np.zeros((B, U))
    times = list(range(T)) if backward else list(range(T - 1, -1, -1))   # reverse of forward
    prev = {t: (t + 1 if backward else t - 1) for t in range(T)}
    has_prev = {t: 0 <= prev[t] < T for t in range(T)}
    for t in times:
        d = dY[:, t] + dh
        direct = np.zeros((B, U))
        if cell == "rnn_tanh":
            (h,) = rec[t]
            dG[:, t, 0] = d * (1 - h * h)
        elif cell == "rnn_relu":
            (h,) = rec[t]
            dG[:, t, 0] = np.where(h > 0, d, 0)
        elif cell == "lstm":
            i, f, g, o, c, h = rec[t]
            cp = rec[prev[t]][4] if has_prev[t] else np.zeros_like(c)
            tc = np.tanh(c)
            dcv = d * o * (1 - tc * tc) + dc
            dG[:, t, 0] = dcv * g * i * (1 - i)
            dG[:, t, 1] = dcv * cp * f * (1 - f)
            dG[:, t, 2] = dcv * i * (1 - g * g)
            dG[:, t, 3] = d * tc * o * (1 - o)
            dc = dcv * f
        else:
            r, z, n, hn, h = rec[t]
            hp = rec[prev[t]][4] if has_prev[t] else np.zeros_like(h)
            dn = d * (1 - z) * (1 - n * n)
            dG[:, t, 0] = dn * hn * r * (1 - r)
            dG[:, t, 1] = d * (hp - n) * z * (1 - z)
            dG[:, t, 2] = dn
            dG[:, t, 3] = dn * r
            direct = d * z
        dGhh = dG[:, t, hh_slot].reshape(B, G * U)
        dh = direct + dGhh @ Whh
    dGih = dG[:, :, :G].reshape(B * T, G * U)
    dGhh = dG[:, :, hh_slot].reshape(B, T, G * U)
    dx = (dGih @ Wih).reshape(B, T, K)
    dWih = dGih.T @ x.reshape(B * T, K)
    dbih = dGih.sum(0)
    dbhh = dGhh.reshape(B * T, G * U).sum(0)
    H = np.stack([rec[t][-1] for t in range(T)], 1)          # [B, T, U]
    dWhh = np.zeros_like(Whh)
    for t in range(T):
        if has_prev[t]:
            dWhh += dGhh[:, t].T @ H[:, prev[t]]
    return dict(x=dx, Wih=dWih, Whh=dWhh, bih=dbih, bhh=dbhh)


def fd(f, a, h=1e-6):
    g = np.zeros_like(a)
    fa, ga = a.reshape(-1), g.reshape(-1)
    for i in range(fa.size):
        old = fa[i]
        fa[i] = old + h
        p = f()
        fa[i] = old - h
        m = f()
        fa[i] = old
        ga[i] = (p - m) / (2 * h)
    return g


def checks(rng, tol):
    passed = failed = 0
    worst = 0.0
    B, T, K, U = 2, 5, 3, 3
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
        for backward in (False, True):
            G = GATES[cell]
            P = dict(x=rng.standard_normal((B, T, K)),
                     Wih=rng.standard_normal((G * U, K)) * 0.6,
                     Whh=rng.standard_normal((G * U, U)) * 0.6,
                     bih=rng.standard_normal(G * U) * 0.3,
                     bhh=rng.standard_normal(G * U) * 0.3)
            R = rng.standard_normal((B, T, U))

            def loss():
                Y, _ = forward(cell, P["x"], P["Wih"], P["Whh"], P["bih"], P["bhh"], backward)
                return float((Y * R).sum())
            _, rec = forward(cell, P["x"], P["Wih"], P["Whh"], P["bih"], P["bhh"], backward)
            got = backward_rules(cell, P["x"], P["Wih"], P["Whh"], rec, R, backward)
            e = 0.0
            for k in P:
                want = fd(loss, P[k])
                e = max(e, float(np.max(np.abs(got[k] - want)) / max(float(np.max(np.abs(want))), 1e-3)))
            name = f"fd_{cell}_{'backward' if backward else 'forward'}_b{B}_t{T}_k{K}_u{U}"
            if e <= tol:
                print(f"PASS {name}  err={e:.2e}")
                passed += 1
                worst = max(worst, e)
            else:
                print(f"FAIL {name}  err={e:.2e}")
                failed += 1
    return passed, failed, worst
