"""The float constants of a frozen TensorFlow ``GraphDef`` (``.pb``), read straight from the protobuf wire format.

Only what weight conversion needs: ``GraphDef.node`` (1) -> ``NodeDef`` name (1), op (2), attr (5, a map of
``AttrValue``); ``AttrValue.tensor`` (8) -> ``TensorProto`` dtype (1), tensor_shape (2, dims (2) of size (1)),
tensor_content (4) or float_val (5). No TensorFlow, tensorboard or protobuf package needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

_DT_FLOAT = 1


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """``(field number, value)`` of one message: an int for varints, the bytes for everything else."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def _tensor(buf: memoryview) -> np.ndarray | None:
    dtype, shape, content, floats = 0, [], None, []
    for f, v in fields(buf):
        if f == 1:
            dtype = v
        elif f == 2:
            for g, dim in fields(v):
                if g == 2:
                    size = next((s for h, s in fields(dim) if h == 1), 0)
                    shape.append(size - (1 << 64) if size >= 1 << 63 else size)
        elif f == 4:
            content = v
        elif f == 5:  # packed (one run of bytes) or one float per field
            floats.append(np.frombuffer(v, "<f4"))
    if dtype != _DT_FLOAT:
        return None
    a = np.frombuffer(content, "<f4") if content is not None and len(content) else (np.concatenate(floats) if floats else np.zeros(0, np.float32))
    if a.size == 1:  # a uniform tensor is stored as one splatted value
        return np.full(shape, a[0], np.float32)
    return a.reshape(shape).copy()


def float_constants(pb_path: Path) -> dict[str, np.ndarray]:
    """Every float ``Const`` node of the graph at ``pb_path``, by node name."""
    graph = memoryview(Path(pb_path).read_bytes())
    out = {}
    for f, node in fields(graph):
        if f != 1:
            continue
        name = op = None
        value = None
        for g, v in fields(node):
            if g == 1:
                name = bytes(v).decode()
            elif g == 2:
                op = bytes(v).decode()
            elif g == 5:
                key = attr = None
                for h, w in fields(v):
                    if h == 1:
                        key = bytes(w).decode()
                    elif h == 2:
                        attr = w
                if key == "value" and attr is not None:
                    value = next((t for k, t in fields(attr) if k == 8), None)
        if op == "Const" and value is not None:
            tensor = _tensor(value)
            if tensor is not None:
                out[name] = tensor
    return out
