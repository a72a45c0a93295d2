"""A reader of .safetensors files that checks the whole header before any tensor is read.

The format: an 8-byte little-endian header length N, N bytes of JSON mapping each name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data after the header), and
the data. Reading it here, not through the safetensors package, lets BF16 and F16 weights (Hugging
Face's half-precision uploads) come out as float32 without numpy needing a bfloat16 dtype, and
makes every error a ValueError naming the file.
"""
import json
import os

import numpy as np

# safetensors dtype -> (numpy dtype of the stored little-endian bytes, bytes per element)
_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
           "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
           "U8": ("u1", 1), "BOOL": ("?", 1)}
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors package's own limit


class Entry:
    """One tensor of a file: its dtype name, shape and byte range in the file."""

    def __init__(self, dtype, shape, begin, end):
        self.dtype, self.shape, self.begin, self.end = dtype, shape, begin, end


def read_header(path):
    """name -> Entry for every tensor in the file; ValueError naming the file if anything in the
    header is malformed, out of the file's bounds or inconsistent with the shapes."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, shorter than the 8-byte header length)")
        n = int.from_bytes(prefix, "little")
        if n > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{path}: not a safetensors file (header length {n} exceeds the file's {size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header: expected a JSON object, got {type(header).__name__}")
    data_start, data_size = 8 + n, size - 8 - n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{path}: corrupt safetensors header entry for {name!r}: {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: {name} has unsupported dtype {dtype!r} (supported: {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"{path}: {name} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ValueError(f"{path}: {name} has data offsets {offsets!r} outside the file's "
                             f"{data_size} data bytes (truncated or corrupt)")
        nbytes = int(np.prod(shape, dtype=object)) * _DTYPES[dtype][1]
        if offsets[1] - offsets[0] != nbytes:
            raise ValueError(f"{path}: {name} of shape {tuple(shape)} {dtype} needs {nbytes} bytes, "
                             f"its data offsets span {offsets[1] - offsets[0]}")
        entries[name] = Entry(dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])
    return entries


def read_float32(path, entry):
    """The tensor `entry` of the file as a float32 numpy array (BF16 and F16 widened exactly)."""
    with open(path, "rb") as f:
        f.seek(entry.begin)
        data = f.read(entry.end - entry.begin)
    if len(data) != entry.end - entry.begin:
        raise ValueError(f"{path}: truncated while reading ({len(data)} of {entry.end - entry.begin} bytes)")
    a = np.frombuffer(data, dtype=_DTYPES[entry.dtype][0])
    if entry.dtype == "BF16":  # bfloat16 is the top half of a float32
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32).reshape(entry.shape)
