"""st.py - a minimal safetensors writer and reader on numpy (no `safetensors` package here).

Format (https://github.com/huggingface/safetensors):
  8 bytes   little-endian u64 N, the length of the JSON header
  N bytes   JSON object {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
            (plus an optional "__metadata__": {str: str}), padded with spaces so that
            8 + N is a multiple of 8
  rest      the tensors' bytes, little-endian, row-major; data_offsets are relative to here

The writer lays tensors out in sorted-name order, contiguously, as the reference
implementation does.  The reader checks what a careful consumer must: offsets inside the
file, sizes equal to prod(shape) * itemsize, no overlap, no gaps, no trailing bytes.

    python3 st.py dump FILE       prints name, dtype, shape of each tensor
    python3 st.py selftest        round-trips random tensors and checks malformed files
"""
import json
import struct
import sys

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _dtype_name(dt):
    dt = np.dtype(dt).newbyteorder("<") if np.dtype(dt).byteorder not in ("|",) else np.dtype(dt)
    for k, v in _DTYPES.items():
        if v == dt:
            return k
    raise ValueError("unsupported dtype %s" % dt)


def dumps(tensors, metadata=None):
    """Returns the bytes of a safetensors file holding `tensors` ({name: array-like})."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        kind = _dtype_name(a.dtype)
        a = np.array(a, dtype=_DTYPES[kind], order="C")  # (ascontiguousarray makes 0-d 1-d)
        raw = a.tobytes(order="C")
        header[name] = {"dtype": kind, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(path, tensors, metadata=None):
    """Writes `tensors` ({name: numpy array or torch tensor}) to `path`."""
    conv = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):  # a torch tensor
            v = v.detach().cpu().contiguous().numpy()
        conv[k] = v
    with open(path, "wb") as f:
        f.write(dumps(conv, metadata))


def loads(data):
    """Parses the bytes of a safetensors file; returns ({name: array}, metadata)."""
    if len(data) < 8:
        raise ValueError("truncated: %d bytes, no header length" % len(data))
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("header length %d runs past the end of a %d-byte file" % (n, len(data)))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    body = memoryview(data)[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    spans = []
    for name, info in header.items():
        kind = info.get("dtype")
        if kind not in _DTYPES:
            raise ValueError("%s: unsupported dtype %r" % (name, kind))
        shape = [int(d) for d in info["shape"]]
        if any(d < 0 for d in shape):
            raise ValueError("%s: negative dimension in %s" % (name, shape))
        b, e = (int(x) for x in info["data_offsets"])
        need = int(np.prod(shape, dtype=np.int64)) * _DTYPES[kind].itemsize
        if not (0 <= b <= e <= len(body)):
            raise ValueError("%s: data_offsets [%d, %d] outside the %d data bytes"
                             % (name, b, e, len(body)))
        if e - b != need:
            raise ValueError("%s: %d bytes for shape %s of %s (%d expected)"
                             % (name, e - b, shape, kind, need))
        spans.append((b, e, name))
        out[name] = np.frombuffer(body[b:e], dtype=_DTYPES[kind]).reshape(tuple(shape)).copy()
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError("%s: starts at %d, %s" % (name, b, "overlaps" if b < pos else "gap"))
        pos = e
    if pos != len(body):
        raise ValueError("%d trailing bytes after the last tensor" % (len(body) - pos))
    return out, meta


def load(path):
    """Reads a safetensors file; returns {name: numpy array}."""
    with open(path, "rb") as f:
        return loads(f.read())[0]


def _selftest():
    rng = np.random.default_rng(0)
    t = {
        "c1.weight": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
        "c1.bias": rng.standard_normal(6).astype(np.float32),
        "h.weight_ih_l0_reverse": rng.standard_normal((12, 7)).astype(np.float32),
        "scalar": np.float32(3.5).reshape(()),
        "empty": np.zeros((0, 3), np.float32),
        "ids": np.arange(5, dtype=np.int32),
    }
    blob = dumps(t, {"format": "pt"})
    (n,) = struct.unpack("<Q", blob[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8"
    assert blob[8:8 + n].rstrip(b" ").endswith(b"}"), "padding must be trailing spaces"
    back, meta = loads(blob)
    assert meta == {"format": "pt"}, meta
    assert sorted(back) == sorted(t), (sorted(back), sorted(t))
    for k in t:
        assert back[k].dtype == np.asarray(t[k]).dtype and back[k].shape == np.asarray(t[k]).shape, k
        assert np.array_equal(back[k], t[k]), k
    # Offsets are sorted-name order and contiguous from 0.
    hdr = json.loads(blob[8:8 + n])
    hdr.pop("__metadata__")
    order = sorted(hdr, key=lambda k: hdr[k]["data_offsets"][0])
    assert order == sorted(hdr), order
    # Malformed inputs are rejected, not misread.
    bad = [blob[:7], blob[:-1], blob + b"\0\0\0\0",
           struct.pack("<Q", n + 1000) + blob[8:]]
    for i, b in enumerate(bad):
        try:
            loads(b)
        except ValueError:
            continue
        raise AssertionError("malformed file %d accepted" % i)
    # A torch round trip, when torch is there.
    try:
        import torch
        m = torch.nn.Linear(3, 2)
        import io, os, tempfile
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "w.safetensors")
            save(p, m.state_dict())
            back = load(p)
            m2 = torch.nn.Linear(3, 2)
            m2.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)
            assert torch.equal(m.weight, m2.weight) and torch.equal(m.bias, m2.bias)
    except ImportError:
        pass
    print("st.py selftest: ok")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        with open(sys.argv[2], "rb") as f:
            tensors, meta = loads(f.read())
        for k in sorted(tensors):
            print("%-40s %-4s %s" % (k, _dtype_name(tensors[k].dtype), list(tensors[k].shape)))
        if meta:
            print("__metadata__", meta)
    elif len(sys.argv) == 2 and sys.argv[1] == "selftest":
        _selftest()
    else:
        sys.stderr.write("usage: st.py dump FILE | st.py selftest\n")
        sys.exit(2)
