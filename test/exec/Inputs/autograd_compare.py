"""autograd_compare.py - the comparison the gradient tests share (grad_misc.py,
grad_recurrent.py): nncc's loss and parameter gradients against torch autograd in float64.

    compare(ref, P, arrays, got, floor) -> (worst, ["name=err", ...]) or (None, reason)
    verdict(name, e, detail, tol) -> prints PASS / FAIL for compare's result; True on PASS

ref(TP, TI) computes the loss from float64 parameters TP (requires_grad) and inputs TI (float
arrays as float64, integer arrays as int64); P holds the parameters nncc used (float32
arrays), arrays the inputs and targets, got nncc's {"loss": [loss], name: flat gradient}.
The error of a tensor is max|a - b| / max(max|b|, floor); a non-finite value of nncc's is a
failure of its own."""
import numpy as np
import torch


def compare(ref, P, arrays, got, floor):
    TP = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    TI = {k: torch.tensor(v, dtype=torch.float64) if v.dtype == np.float32 else torch.tensor(v, dtype=torch.int64)
          for k, v in arrays.items()}
    L = ref(TP, TI)
    L.backward()
    want = {"loss": np.array([L.item()])}
    for k, t in TP.items():
        want[k] = t.grad.numpy().reshape(-1)
    worst, errs = 0.0, []
    for k in want:
        a, b = got[k].astype(np.float64), want[k]
        if not np.all(np.isfinite(a)):
            return None, f"{k}: not finite"
        e = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))
        errs.append(f"{k}={e:.2e}")
        worst = max(worst, e)
    return worst, errs


def verdict(name, e, detail, tol):
    if e is None:
        print(f"FAIL {name}  {detail}")
        return False
    if e > tol:
        print(f"FAIL {name}  err={e:.2e}  {' '.join(detail)}")
        return False
    print(f"PASS {name}  err={e:.2e}")
    return True
