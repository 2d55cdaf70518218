"""Read keras_resnet's TFLite metadata (and check a model's structure) without TensorFlow.

A tiny, bounds-checked FlatBuffers walker over the TFLite schema: Model → metadata[] → buffers[i].
Every malformed offset raises :class:`ValueError` naming what is wrong; nothing is trusted.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from typing import Any

import numpy as np

NAME = "keras_resnet"
SCHEMA = "keras_resnet.metadata/1"
IDENTIFIER = b"TFL3"

# Field ids in tensorflow/lite/schema/schema.fbs
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 1, 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS = 0, 1, 2, 3
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER = 0, 1, 2
_OPERATOR_OPCODE, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_MAX_VECTOR = 1 << 28
MAX_JSON_DEPTH = 64  # keras_resnet's metadata is 3 deep; Keras model configs about 15

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_JSON_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def json_depth(data: bytes | str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, found without parsing it (no recursion, linear time)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    brackets = np.frombuffer(_JSON_NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw)), np.uint8)
    depth = deepest = 0
    for start in range(0, len(brackets), 1 << 20):  # in chunks: bounded memory for large texts
        chunk = brackets[start:start + (1 << 20)]
        levels = depth + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64)
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def load_json(data: bytes | str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON: nesting above ``max_depth`` (which would exhaust the stack), ``NaN``/``Infinity``
    and invalid UTF-8 raise :class:`ValueError` naming ``what``."""
    depth = json_depth(data)
    if depth > max_depth:
        raise ValueError(f"{what} is nested {depth} levels deep (at most {max_depth} allowed)")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # a nesting the scan missed cannot happen, but never let it escape
        raise ValueError(f"{what} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{what} is not UTF-8 JSON: {error}") from None


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, for ``json.dumps(..., allow_nan=False)``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return finite_json(value.item())
    return value


class _Reader:
    """Bounds-checked access to FlatBuffers tables, vectors and strings in ``buf``."""

    def __init__(self, buf: bytes | memoryview):
        self.buf = memoryview(buf)
        self.n = len(buf)

    def _need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"malformed TFLite flatbuffer: {what} at offset {pos} lies outside the file")

    def u8(self, pos: int) -> int:
        self._need(pos, 1, "byte")
        return self.buf[pos]

    def u16(self, pos: int) -> int:
        self._need(pos, 2, "uint16")
        return struct.unpack_from("<H", self.buf, pos)[0]

    def u32(self, pos: int) -> int:
        self._need(pos, 4, "uint32")
        return struct.unpack_from("<I", self.buf, pos)[0]

    def i32(self, pos: int) -> int:
        self._need(pos, 4, "int32")
        return struct.unpack_from("<i", self.buf, pos)[0]

    def u64(self, pos: int) -> int:
        self._need(pos, 8, "uint64")
        return struct.unpack_from("<Q", self.buf, pos)[0]

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def table(self, pos: int, what: str) -> int:
        """Validate the table at ``pos`` (its vtable must be in bounds) and return ``pos``."""
        vtable = pos - self.i32(pos)
        self._need(vtable, 4, f"{what} vtable")
        size = self.u16(vtable)
        if size < 4 or size % 2:
            raise ValueError(f"malformed TFLite flatbuffer: bad vtable size {size} for {what}")
        self._need(vtable, size, f"{what} vtable")
        self._need(pos, max(self.u16(vtable + 2), 4), what)
        return pos

    def field(self, table: int, field_id: int) -> int | None:
        """Absolute position of a field's value, or None when absent."""
        vtable = table - self.i32(table)
        slot = 4 + 2 * field_id
        if slot >= self.u16(vtable):
            return None
        offset = self.u16(vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, field_id: int, kind: str, default: int = 0) -> int:
        pos = self.field(table, field_id)
        return default if pos is None else getattr(self, kind)(pos)

    def vector(self, table: int, field_id: int, elem: int, what: str) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, field_id)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        length = self.u32(vec)
        if length > _MAX_VECTOR:
            raise ValueError(f"malformed TFLite flatbuffer: {what} claims {length} entries")
        self._need(vec + 4, length * elem, what)
        return vec + 4, length

    def tables(self, table: int, field_id: int, what: str) -> list[int]:
        start, length = self.vector(table, field_id, 4, what)
        return [self.table(self.deref(start + 4 * i), what) for i in range(length)]

    def ints(self, table: int, field_id: int, what: str) -> list[int]:
        start, length = self.vector(table, field_id, 4, what)
        return list(struct.unpack_from(f"<{length}i", self.buf, start)) if length else []

    def bytes_(self, table: int, field_id: int, what: str) -> bytes | None:
        if self.field(table, field_id) is None:
            return None
        start, length = self.vector(table, field_id, 1, what)
        return bytes(self.buf[start:start + length])


def _load(source: str | os.PathLike | bytes | bytearray | memoryview) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    with open(source, "rb") as f:
        return f.read()


def _root(reader: _Reader) -> int:
    if reader.n < 8:
        raise ValueError(f"not a TFLite model: {reader.n} bytes is too short")
    if bytes(reader.buf[4:8]) != IDENTIFIER:
        raise ValueError(f"not a TFLite model: file identifier {bytes(reader.buf[4:8])!r}, expected {IDENTIFIER!r}")
    return reader.table(reader.u32(0), "Model")


# Bits per element of each TFLite TensorType (schema.fbs); STRING, RESOURCE and VARIANT count 8 bits per element.
_TYPE_BITS = {0: 32, 1: 16, 2: 32, 3: 8, 4: 64, 5: 8, 6: 8, 7: 16, 8: 64, 9: 8, 10: 64, 11: 128, 12: 64, 13: 8, 14: 8,
              15: 32, 16: 16, 17: 4, 18: 16, 19: 2, 20: 4}
_UNSIZED_TYPES = (5, 13, 14)  # STRING, RESOURCE, VARIANT: the shape does not give the byte size
_TENSOR_SPARSITY, _TENSOR_SHAPE_SIGNATURE = 6, 7


def tensor_bytes(shape: list[int], type_: int) -> int:
    """Bytes of a dense tensor (dynamic dimensions, -1, count as 1; unknown types as 8 bytes per element)."""
    return -(-math.prod(max(d, 1) for d in shape) * _TYPE_BITS.get(type_, 64) // 8)


def _buffer_size(r: _Reader, buffer: int) -> int:
    offset, size = r.scalar(buffer, _BUFFER_OFFSET, "u64"), r.scalar(buffer, _BUFFER_SIZE, "u64")
    if offset > 1:
        return size
    start, length = r.vector(buffer, _BUFFER_DATA, 1, "buffer data")
    return length


def check_model(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """Cheap structural validation of a TFLite flatbuffer; returns a summary of subgraph 0 and the tensor sizes.

    Checks the identifier, every table/vector offset the interpreter follows first (subgraphs, tensors,
    operators, operator codes, buffers), that all indices are in range, and that every constant tensor's shape
    fits the data its buffer holds. The summary's ``activation_bytes`` adds up the other tensors of every
    subgraph (what the runtime's arena may need at batch 1, an upper bound), ``largest_tensor_bytes`` the largest
    of those and ``constant_bytes`` the constants. Raises ValueError on anything malformed.
    """
    r = _Reader(_load(source))
    model = _root(r)
    buffers = r.tables(model, _MODEL_BUFFERS, "buffers")
    opcodes = r.tables(model, _MODEL_OPCODES, "operator_codes")
    subgraphs = r.tables(model, _MODEL_SUBGRAPHS, "subgraphs")
    if not subgraphs:
        raise ValueError("malformed TFLite model: no subgraphs")
    summary: dict[str, Any] = {}
    activations = largest = constants = 0
    sizes: dict[int, int] = {}
    for s, sg in enumerate(subgraphs):
        tensors = r.tables(sg, _SUBGRAPH_TENSORS, "tensors")
        shapes = []
        for t in tensors:
            shape = r.ints(t, _TENSOR_SHAPE, "tensor shape")
            index = r.scalar(t, _TENSOR_BUFFER, "u32")
            if index >= max(len(buffers), 1):
                raise ValueError("malformed TFLite model: tensor refers to a missing buffer")
            if any(d < -1 for d in shape):
                raise ValueError(f"malformed TFLite model: tensor shape {shape}")
            if any(d < -1 for d in r.ints(t, _TENSOR_SHAPE_SIGNATURE, "tensor shape signature")):
                raise ValueError("malformed TFLite model: tensor shape signature out of range")
            type_ = r.scalar(t, _TENSOR_TYPE, "u8")
            size = tensor_bytes(shape, type_)
            if index and index not in sizes:
                sizes[index] = _buffer_size(r, buffers[index])
            held = sizes.get(index, 0)
            if held:  # a constant: its shape must fit its data (sparse and unsized types excepted)
                if size > held and type_ not in _UNSIZED_TYPES and r.field(t, _TENSOR_SPARSITY) is None:
                    raise ValueError(f"malformed TFLite model: a constant tensor of shape {shape} needs {size:,} "
                                     f"bytes but its buffer holds {held:,}")
                constants += held
            else:
                activations += size
                largest = max(largest, size)
            shapes.append((shape, type_))
        inputs = r.ints(sg, _SUBGRAPH_INPUTS, "subgraph inputs")
        outputs = r.ints(sg, _SUBGRAPH_OUTPUTS, "subgraph outputs")
        for i in inputs + outputs:
            if not 0 <= i < len(tensors):
                raise ValueError(f"malformed TFLite model: subgraph {s} input/output tensor {i} out of range")
        for op in r.tables(sg, _SUBGRAPH_OPERATORS, "operators"):
            if r.scalar(op, _OPERATOR_OPCODE, "u32") >= len(opcodes):
                raise ValueError("malformed TFLite model: operator refers to a missing operator code")
            for i in r.ints(op, _OPERATOR_INPUTS, "operator inputs") + r.ints(op, _OPERATOR_OUTPUTS, "operator outputs"):
                if not -1 <= i < len(tensors):
                    raise ValueError(f"malformed TFLite model: operator tensor index {i} out of range")
        if s == 0:
            summary = {"inputs": [shapes[i] for i in inputs], "outputs": [shapes[i] for i in outputs],
                       "operators": len(r.tables(sg, _SUBGRAPH_OPERATORS, "operators")),
                       "subgraphs": len(subgraphs)}
    summary.update(activation_bytes=activations, largest_tensor_bytes=largest, constant_bytes=constants,
                   file_bytes=r.n)
    return summary


def read_all_metadata(source: str | os.PathLike | bytes) -> dict[str, bytes]:
    """Every ``Model.metadata`` entry as ``{name: buffer bytes}``."""
    r = _Reader(_load(source))
    model = _root(r)
    buffers = r.tables(model, _MODEL_BUFFERS, "buffers")
    entries: dict[str, bytes] = {}
    for meta in r.tables(model, _MODEL_METADATA, "metadata"):
        name = r.bytes_(meta, _METADATA_NAME, "metadata name")
        index = r.scalar(meta, _METADATA_BUFFER, "u32")
        if index >= len(buffers):
            raise ValueError(f"malformed TFLite model: metadata buffer {index} of {len(buffers)}")
        buffer = buffers[index]
        offset, size = r.scalar(buffer, _BUFFER_OFFSET, "u64"), r.scalar(buffer, _BUFFER_SIZE, "u64")
        if offset > 1:  # large models keep buffer data after the flatbuffer, at an absolute offset
            r._need(offset, size, "metadata buffer data")
            data = bytes(r.buf[offset:offset + size])
        else:
            data = r.bytes_(buffer, _BUFFER_DATA, "metadata buffer data") or b""
        try:
            entries[(name or b"").decode("utf-8")] = data
        except UnicodeDecodeError:
            raise ValueError("malformed TFLite model: metadata name is not UTF-8") from None
    return entries


def read_metadata(source: str | os.PathLike | bytes) -> dict | None:
    """The ``"keras_resnet"`` metadata as a dict, or None when the model has none.

    Raises ValueError when the file is not a well-formed TFLite model or the entry is not a JSON object (nested at
    most :data:`MAX_JSON_DEPTH` deep, without NaN or Infinity).
    """
    data = read_all_metadata(source).get(NAME)
    if data is None:
        return None
    meta = load_json(data.rstrip(b"\0"), "keras_resnet metadata")
    if not isinstance(meta, dict):
        raise ValueError("keras_resnet metadata is not a JSON object")
    return meta
