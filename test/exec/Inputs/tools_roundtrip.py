"""tools_roundtrip.py DIR - exercises tools/safetensors_io.py (safetensors_tool.test).

Writes DIR/mlp.pt (a torch module shaped like examples/mlp.nn, state_dict names as nncc's),
checks save_state_dict / load_state_dict round trips (float32, float64, float16, bfloat16,
int64, empty and 0-d tensors: bitwise), that a torn or padded file is refused, and writes
DIR/x.npy and DIR/ref.npy (the module's output) for the nncc run.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))
from safetensors_io import dumps, loads, load_state_dict, save_state_dict  # noqa: E402

d = sys.argv[1]
torch.manual_seed(0)
net = torch.nn.Module()
net.h1 = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU())
net.h2 = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.ReLU())
net.logits = torch.nn.Linear(128, 10)
torch.save(net, os.path.join(d, "mlp.pt"))

sd = {"a": torch.randn(3, 4), "b": torch.randn(5, dtype=torch.float64),
      "c": torch.randn(2, 2).half(), "d": torch.randn(7).bfloat16(),
      "e": torch.arange(6).reshape(2, 3), "f": torch.zeros(0, 3), "g": torch.tensor(1.5),
      "h": torch.randn(4, 3).t()}   # non-contiguous
save_state_dict(sd, os.path.join(d, "rt.safetensors"))
back = load_state_dict(os.path.join(d, "rt.safetensors"))
same = all(back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v)
           for k, v in sd.items()) and set(back) == set(sd)
print("round trip:", "bitwise" if same else "DIFFERENT")

data = dumps({"w": torch.ones(2)})
for what, bad in [("trailing bytes", data + b"\0\0\0\0"), ("truncated", data[:-1])]:
    try:
        loads(bad)
        print(what + ": ACCEPTED")
    except ValueError as e:
        print(what + ": refused")

x = torch.randn(3, 784)
np.save(os.path.join(d, "x.npy"), x.numpy())
with torch.no_grad():
    np.save(os.path.join(d, "ref.npy"), net.h2(net.h1(x)).matmul(net.logits.weight.t()).add(net.logits.bias).numpy())
