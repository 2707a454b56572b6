#!/usr/bin/env python3
"""safetensors_io.py - write a PyTorch state_dict as safetensors, and read one back.

nncc loads weights from safetensors files (`M_load`, `./model --weights`, `nncc --weights`)
with PyTorch's state_dict names.  Debian has no Python `safetensors` package, so this file
does the format with the standard library and torch (or numpy) alone.  It writes what the
reference implementation writes: tensors sorted by name, contiguous, the JSON header padded
with spaces to a multiple of 8 bytes, and reads strictly (offsets inside the file, sizes equal
to shape x item size, no gaps, no trailing bytes, a UTF-8 header).

As a module:

    import sys; sys.path.insert(0, "tools")
    from safetensors_io import save_state_dict, load_state_dict
    save_state_dict(model.state_dict(), "w.safetensors")       # torch tensors or numpy arrays
    sd = load_state_dict("w.safetensors")                        # {name: torch.Tensor}
    model.load_state_dict(sd)

From the command line:

    python3 tools/safetensors_io.py export MODEL.pt OUT.safetensors   # a saved state_dict or module
    python3 tools/safetensors_io.py dump FILE.safetensors             # name, dtype, shape per tensor
    python3 tools/safetensors_io.py check A.safetensors B.pt          # same names, shapes, values

Float tensors keep their dtype (F32, F64, F16, BF16: nncc converts to float32 when loading);
use `{k: v.float() for k, v in sd.items()}` to store float32.  Non-contiguous tensors are
made contiguous; buffers that nncc does not know (e.g. BatchNorm's num_batches_tracked) must
be left out, since nncc rejects a file with a tensor the model does not have.
"""
import json
import struct
import sys

_TORCH_TO_ST = {
    "torch.float32": "F32", "torch.float64": "F64", "torch.float16": "F16",
    "torch.bfloat16": "BF16", "torch.int64": "I64", "torch.int32": "I32", "torch.int16": "I16",
    "torch.int8": "I8", "torch.uint8": "U8", "torch.bool": "BOOL",
}
_NUMPY_TO_ST = {
    "float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
_ITEMSIZE = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1}


def _to_bytes(value):
    """(dtype name, shape, little-endian bytes) of a torch tensor or numpy array."""
    if hasattr(value, "detach"):   # torch
        import torch
        t = value.detach().cpu().contiguous()
        dtype = _TORCH_TO_ST.get(str(t.dtype))
        if dtype is None:
            raise ValueError("dtype %s cannot be stored" % t.dtype)
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        return dtype, list(t.shape), raw
    import numpy as np
    a = np.ascontiguousarray(value)
    dtype = _NUMPY_TO_ST.get(a.dtype.name)
    if dtype is None:
        raise ValueError("dtype %s cannot be stored" % a.dtype)
    return dtype, list(a.shape), a.astype(a.dtype.newbyteorder("<")).tobytes()


def dumps(state_dict, metadata=None):
    """The safetensors bytes of state_dict ({name: tensor}), tensors sorted by name."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(state_dict):
        dtype, shape, raw = _to_bytes(state_dict[name])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_state_dict(state_dict, path, metadata=None):
    """Writes state_dict to path (via a temporary file and a rename)."""
    import os
    data = dumps(state_dict, {"format": "pt", **(metadata or {})})
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def loads(data, as_numpy=False):
    """{name: tensor} from safetensors bytes, checked strictly (ValueError otherwise)."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: %d bytes" % len(data))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("header length %d runs past the end of the file" % n)
    header = json.loads(data[8:8 + n].decode("utf-8"))   # UnicodeDecodeError is a ValueError
    header.pop("__metadata__", None)
    body = data[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    at = 0
    for begin, end, name in spans:
        if begin != at:
            raise ValueError("tensor %r: %s at byte %d" % (name, "gap" if begin > at else "overlap", begin))
        at = end
    if at != len(body):
        raise ValueError("%d bytes of data, the tensors end at %d" % (len(body), at))
    import numpy as np
    out = {}
    for name, v in header.items():
        dtype, shape, (begin, end) = v["dtype"], v["shape"], v["data_offsets"]
        count = 1
        for d in shape:
            count *= d
        if end - begin != count * _ITEMSIZE[dtype]:
            raise ValueError("tensor %r: %d bytes for %s %s" % (name, end - begin, dtype, shape))
        raw = body[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            a = bits.view(np.float32).reshape(shape)
        else:
            a = np.frombuffer(raw, {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                                    "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}[dtype]).reshape(shape)
        if as_numpy:
            out[name] = a.copy()
        else:
            import torch
            t = torch.from_numpy(a.copy())
            out[name] = t.to(torch.bfloat16) if dtype == "BF16" else t
    return out


def load_state_dict(path, as_numpy=False):
    with open(path, "rb") as f:
        return loads(f.read(), as_numpy)


def _torch_load(path):
    import torch
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj.state_dict() if hasattr(obj, "state_dict") else obj


def main(argv):
    if len(argv) == 4 and argv[1] == "export":
        sd = _torch_load(argv[2])
        save_state_dict(sd, argv[3])
        print("%s: %d tensors" % (argv[3], len(sd)))
    elif len(argv) == 3 and argv[1] == "dump":
        for name, t in sorted(load_state_dict(argv[2], as_numpy=True).items()):
            print(name, t.dtype, list(t.shape))
    elif len(argv) == 4 and argv[1] == "check":
        import numpy as np
        a = load_state_dict(argv[2], as_numpy=True)
        b = {k: v.detach().float().numpy() for k, v in _torch_load(argv[3]).items()}
        bad = sorted(set(a) ^ set(b)) + [k for k in a if k in b and not np.array_equal(a[k].astype(np.float32), b[k])]
        print("same" if not bad else "different: " + ", ".join(bad))
        return 1 if bad else 0
    else:
        print(__doc__.split("\n\n")[0] + "\nusage: safetensors_io.py export MODEL.pt OUT | dump FILE | check FILE MODEL.pt",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
