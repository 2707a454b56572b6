"""Helpers for the runtime's lit tests: safetensors through the tests' one reader/writer
(test/exec/conformance/st.py: numpy only, written independently of the runtime's C reader,
since the `safetensors` package is not installed) and the scenarios of standalone*.test.

  st.py read FILE.safetensors     print each tensor: name dtype shape first values
  st.py make-demo DIR             weights + inputs for standalone_demo (and bad variants)
  st.py check-demo DIR            compare DIR/y.npy, DIR/s.npy with numpy
  st.py make-seq DIR / check-seq DIR   the same for standalone_seq_demo
  st.py make-wide DIR             Inputs/wide.nn's weights as F16 and F32 (the same values), an input
  st.py close A B TOL             the same tensors in A and B, every one within TOL of the other
                                  relative to its largest magnitude; prints whether the bits are
                                  the same (exit status 1 when a tensor is further apart)
"""
import importlib.util
import json
import os
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}

# The tests' one safetensors reader/writer (loaded by path: this file is called st.py too).
_spec = importlib.util.spec_from_file_location(
    "safetensors_io", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "exec",
                                   "conformance", "st.py"))
safetensors_io = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(safetensors_io)


def save(path, tensors, dtype="F32"):
    safetensors_io.save(path, {name: np.asarray(a, dtype=DTYPES[dtype]) for name, a in tensors.items()})


def load(path):
    """Returns (metadata or None, {name: array}) in the file's order."""
    with open(path, "rb") as f:
        arrays, meta = safetensors_io.loads(f.read())
    return meta, arrays


def demo_ref(d):
    _, w = load(os.path.join(d, "w.safetensors"))
    x, z = np.load(os.path.join(d, "x.npy")), np.load(os.path.join(d, "z.npy"))
    y = x.astype(np.float64) @ w["fc.weight"].T.astype(np.float64) + w["fc.bias"] + z
    return y, y.sum(axis=1, keepdims=True)


def main():
    cmd, arg = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(1234)
    if cmd == "read":
        meta, ts = load(arg)
        print("metadata", json.dumps(meta))
        for name, a in ts.items():
            print(name, safetensors_io._dtype_name(a.dtype), list(a.shape),
                  " ".join("%.6g" % v for v in a.ravel()[:4]))
    elif cmd == "make-demo":
        save(os.path.join(arg, "w.safetensors"),
             {"fc.weight": rng.standard_normal((2, 3)), "fc.bias": rng.standard_normal(2)})
        save(os.path.join(arg, "w64.safetensors"),
             {"fc.weight": rng.standard_normal((2, 3)), "fc.bias": rng.standard_normal(2)}, "F64")
        save(os.path.join(arg, "w_bad_shape.safetensors"),
             {"fc.weight": np.zeros((2, 4)), "fc.bias": np.zeros(2)})
        x = rng.standard_normal((4, 3)).astype(np.float32)
        np.save(os.path.join(arg, "x.npy"), x)
        np.save(os.path.join(arg, "z.npy"), rng.standard_normal((4, 2)).astype(np.float32))
        np.save(os.path.join(arg, "x64.npy"), x.astype(np.float64))
        np.save(os.path.join(arg, "z_batch3.npy"), np.zeros((3, 2), np.float32))
        np.save(os.path.join(arg, "x_wide.npy"), np.zeros((4, 4), np.float32))
        np.save(os.path.join(arg, "x_nobatch.npy"), np.zeros(3, np.float32))
        np.save(os.path.join(arg, "x_fortran.npy"), np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3)))
        np.save(os.path.join(arg, "x_empty.npy"), np.zeros((0, 3), np.float32))
        np.save(os.path.join(arg, "x_complex.npy"), np.zeros((4, 3), np.complex64))
        with open(os.path.join(arg, "x_truncated.npy"), "wb") as f:
            f.write(open(os.path.join(arg, "x.npy"), "rb").read()[:-5])
    elif cmd == "check-demo":
        y, s = demo_ref(arg)
        got_y, got_s = np.load(os.path.join(arg, "y.npy")), np.load(os.path.join(arg, "s.npy"))
        assert got_y.dtype == np.float32 and got_y.shape == (4, 2), (got_y.dtype, got_y.shape)
        assert got_s.shape == (4, 1), got_s.shape
        np.testing.assert_allclose(got_y, y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_s, s, rtol=1e-5, atol=1e-5)
        print("demo outputs match numpy")
    elif cmd == "make-seq":
        save(os.path.join(arg, "w.safetensors"), {"embed.weight": rng.standard_normal((5, 2))})
        np.save(os.path.join(arg, "ids.npy"), np.array([[0, 1, 2, 3], [4, 3, 2, 1], [1, 1, 1, 1]]))  # int64
        np.save(os.path.join(arg, "w.npy"), rng.standard_normal((3, 4)).astype(np.float32))
        np.save(os.path.join(arg, "w_seq5.npy"), np.ones((3, 5), np.float32))
        np.save(os.path.join(arg, "ids_out_of_range.npy"), np.array([[0, 1, 2, 3], [4, 5, 2, 1], [1, 1, 1, 1]], np.int32))
        np.save(os.path.join(arg, "ids_float.npy"), np.zeros((3, 4), np.float32))
        np.save(os.path.join(arg, "ids_seq0.npy"), np.zeros((3, 0), np.int32))
        np.save(os.path.join(arg, "w_seq0.npy"), np.zeros((3, 0), np.float32))
    elif cmd == "check-seq":
        _, w = load(os.path.join(arg, "w.safetensors"))
        ids, wt = np.load(os.path.join(arg, "ids.npy")), np.load(os.path.join(arg, "w.npy"))
        want = w["embed.weight"][ids] * wt[..., None]
        got = np.load(os.path.join(arg, "emb.npy"))
        assert got.shape == (3, 4, 2), got.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        print("seq outputs match numpy")
    elif cmd == "make-wide":
        w = {"y.weight": rng.standard_normal((500, 600)).astype(np.float16),
             "y.bias": rng.standard_normal(500).astype(np.float16)}
        save(os.path.join(arg, "w16.safetensors"), w, "F16")
        save(os.path.join(arg, "w32.safetensors"), w)
        np.save(os.path.join(arg, "x.npy"), rng.standard_normal((2, 600)).astype(np.float32))
    elif cmd == "close":
        _, a = load(arg)
        _, b = load(sys.argv[3])
        tol = float(sys.argv[4])
        assert list(a) == list(b), (list(a), list(b))
        worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) / max(float(np.max(np.abs(b[k]))), 1e-30)
                    for k in a)
        same = all(a[k].tobytes() == b[k].tobytes() for k in a)
        print("bits %s, worst relative difference %s" % ("same" if same else "different",
                                                        "within %g" % tol if worst <= tol else "%.3g" % worst))
        sys.exit(0 if worst <= tol else 1)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
