"""big_dense.py - weights and a reference for embedded_weights_big.test (numpy only).

  big_dense.py gen DIR     DIR/w.safetensors (F32 weight, F64 bias), DIR/x.npy
  big_dense.py check DIR   compares DIR/y.npy with numpy's x @ W.T + b
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "exec", "conformance"))
import st  # noqa: E402

K, U = 4096, 2048   # 32 MiB of weights

cmd, d = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
if cmd == "gen":
    w = (rng.standard_normal((U, K)) * 0.02).astype(np.float32)
    b = rng.standard_normal(U).astype(np.float64)
    st.save(os.path.join(d, "w.safetensors"), {"y.weight": w, "y.bias": b})
    np.save(os.path.join(d, "x.npy"), rng.standard_normal((2, K)).astype(np.float32))
else:
    t = st.load(os.path.join(d, "w.safetensors"))
    w, b = t["y.weight"], t["y.bias"]
    x = np.load(os.path.join(d, "x.npy"))
    ref = x.astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float32).astype(np.float64)
    y = np.load(os.path.join(d, "y.npy"))
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print("y: max relative error %.2e %s" % (err, "OK" if err < 1e-5 else "FAIL"))
