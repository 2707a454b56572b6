"""weights.py - the same weights in every engine, for bench/run.py and bench/train_bench.py.

The PyTorch twin's parameters (its default initialisation, seeded) are copied into nncc:
nncc's parameters are listed, in order with their shapes, by `nncc model.nn --emit=ir`
("params c1.weight[6, 1, 5, 5] c1.bias[6]"), and matched with the twin's state_dict in
order, every shape checked; the twins declare their layers in the .nn files' order (their
names differ: torch_models.py names modules its own way).  A mismatch raises ValueError and
the caller goes on with nncc's own initialisation (and says so).  The standalone executable
gets them as a safetensors file (--weights), the shared library through M_param.  ONNX
Runtime runs the export of the same module, so all three compute with the same numbers.
"""
import json
import re
import struct
import subprocess

import numpy as np

_PARAMS = re.compile(r"\bparams((?:\s+[A-Za-z_][\w.]*\[[0-9, ]*\])+)")
_ONE = re.compile(r"([A-Za-z_][\w.]*)\[([0-9, ]*)\]")


def nncc_params(nncc, src):
    """[(name, shape)] in nncc's order."""
    p = subprocess.run([nncc, src, "--emit=ir"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise ValueError("nncc --emit=ir exited %d: %s" % (p.returncode, p.stderr.strip()[:300]))
    out = []
    for line in p.stdout.splitlines():
        m = _PARAMS.search(line)
        if m:
            for name, dims in _ONE.findall(m.group(1)):
                out.append((name, tuple(int(d) for d in dims.split(",") if d.strip())))
    return out


def match(module, params):
    """{nncc name: float32 array} from the module's state_dict, matched in order."""
    state = [(k, v) for k, v in module.state_dict().items() if v.dtype.is_floating_point]
    if len(state) != len(params):
        raise ValueError("nncc has %d parameter tensors, the torch twin %d" % (len(params), len(state)))
    out = {}
    for (name, shape), (tname, v) in zip(params, state):
        if tuple(v.shape) != shape:
            raise ValueError("%s %s vs torch %s %s" % (name, list(shape), tname, list(v.shape)))
        out[name] = np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32)
    return out


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for a in tensors.values():
            f.write(a.astype("<f4", copy=False).tobytes())
