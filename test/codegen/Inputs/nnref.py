"""nnref.py - numerical reference for the codegen tests (run with %python: torch + numpy).

  nnref.py gen MODEL DIR [--batch B]   writes DIR/w.safetensors (random weights, seeded)
                                       and DIR/<input>.npy for each input
  nnref.py check MODEL DIR [--tol T]   recomputes the outputs with PyTorch from the same
                                       files and compares them with DIR/<output>.npy

MODEL names one of the small reference networks below (the same layers as the .nn file
the test compiles, written with torch.nn.functional on a state_dict).  Prints one line per
output: "<name>: max relative error E OK" or "... FAIL" (exit 1); the tolerance is
numpy.allclose's rule with rtol = T (default 1e-4) and atol = T / 10.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

# the one safetensors reader/writer of the tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "exec",
                                "conformance"))
import st  # noqa: E402


def conv(x, w, prefix, stride=1, pad=0):
    return F.conv2d(x, w[prefix + ".weight"], w.get(prefix + ".bias"), stride=stride, padding=pad)


def dense(x, w, prefix):
    return F.linear(x, w[prefix + ".weight"], w.get(prefix + ".bias"))


# name -> (params {name: shape}, inputs {name: per-sample shape}, forward(w, inputs) -> {output: tensor})
def mlp_fwd(w, x):
    h1 = F.relu(dense(x["pixels"], w, "h1.0"))
    h2 = F.relu(dense(h1, w, "h2.0"))
    return {"logits": dense(h2, w, "logits")}


def lenet5_fwd(w, x):
    c1 = conv(x["image"], w, "c1")
    s2 = F.avg_pool2d(torch.tanh(c1), 2)
    c3 = conv(s2, w, "c3")
    s4 = F.avg_pool2d(torch.tanh(c3), 2)
    f5 = dense(s4.flatten(1), w, "f5")
    f6 = dense(torch.tanh(f5), w, "f6")
    return {"logits": dense(torch.tanh(f6), w, "logits")}


def convmix_fwd(w, x):
    # test/codegen/conv_mix.nn
    a = F.relu(conv(x["image"], w, "a", stride=1, pad=1))
    b = conv(a, w, "b", stride=2, pad=0)
    c = F.leaky_relu(conv(b, w, "c", stride=1, pad=2), 0.1)
    p = F.max_pool2d(c, 3, stride=2, padding=1)
    q = F.avg_pool2d(p, 2, stride=1, padding=1, count_include_pad=True)
    r = torch.sigmoid(q) * torch.tanh(q) + q
    g = r.mean(dim=(2, 3))
    side = torch.tanh(conv(b, w, "side", stride=2, pad=1))
    return {"prob": F.softmax(dense(g, w, "fc"), dim=1), "logp": F.log_softmax(g, dim=1),
            "side": side}


MODELS = {
    "mlp": ({"h1.0.weight": (256, 784), "h1.0.bias": (256,), "h2.0.weight": (128, 256),
             "h2.0.bias": (128,), "logits.weight": (10, 128), "logits.bias": (10,)},
            {"pixels": (784,)}, mlp_fwd),
    "lenet5": ({"c1.weight": (6, 1, 5, 5), "c1.bias": (6,), "c3.weight": (16, 6, 5, 5),
                "c3.bias": (16,), "f5.weight": (120, 400), "f5.bias": (120,),
                "f6.weight": (84, 120), "f6.bias": (84,), "logits.weight": (10, 84),
                "logits.bias": (10,)},
               {"image": (1, 32, 32)}, lenet5_fwd),
    "convmix": ({"a.weight": (20, 3, 3, 3), "a.bias": (20,), "b.weight": (17, 20, 3, 3),
                 "b.bias": (17,), "c.weight": (33, 17, 5, 5), "c.bias": (33,),
                 "fc.weight": (7, 33), "fc.bias": (7,), "side.weight": (5, 17, 3, 3),
                 "side.bias": (5,)},
                {"image": (3, 23, 19)}, convmix_fwd),
}


def main():
    cmd, model, d = sys.argv[1], sys.argv[2], sys.argv[3]
    batch, tol = 3, 1e-4
    args = sys.argv[4:]
    for i, a in enumerate(args):
        if a == "--batch":
            batch = int(args[i + 1])
        if a == "--tol":
            tol = float(args[i + 1])
    params, inputs, fwd = MODELS[model]
    if cmd == "gen":
        rng = np.random.default_rng(1234)
        w = {}
        for name, shape in params.items():
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            w[name] = rng.uniform(-1, 1, size=shape).astype(np.float32) * np.float32(np.sqrt(3.0 / fan_in))
        st.save(d + "/w.safetensors", w)
        for name, shape in inputs.items():
            np.save(d + "/" + name + ".npy", rng.standard_normal((batch,) + shape).astype(np.float32))
        return 0
    w = {k: torch.from_numpy(v.copy()) for k, v in st.load(d + "/w.safetensors").items()}
    x = {name: torch.from_numpy(np.load(d + "/" + name + ".npy")) for name in inputs}
    with torch.no_grad():
        ref = fwd(w, x)
    status = 0
    for name, r in ref.items():
        got = np.load(d + "/" + name + ".npy")
        r = r.numpy()
        if got.shape != r.shape:
            print("%s: shape %s, expected %s FAIL" % (name, got.shape, r.shape))
            status = 1
            continue
        # numpy.allclose's rule: |got - ref| <= atol + rtol * |ref|, atol = rtol / 10
        err = float(np.max(np.abs(got - r) / (tol / 10 + tol * np.abs(r))))
        ok = err <= 1.0 and np.all(np.isfinite(got))
        print("%s: max relative error %.3g %s" % (name, err * tol, "OK" if ok else "FAIL"))
        status |= 0 if ok else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
