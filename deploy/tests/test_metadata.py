"""The TensorFlow-free flatbuffer reader: metadata, structure checks, large-model buffers."""

import json
import struct

import pytest
from conftest import fixture
from resnet_edge.metadata import check_model, read_all_metadata, read_metadata


def test_reads_embedded_metadata():
    meta = read_metadata(fixture("float32.tflite"))
    assert meta["schema"] == "keras_resnet.metadata/1"
    assert meta["labels"][:3] == ["red", "green", "blue"]
    assert meta["input"]["resize"] == "stretch" and len(meta["input"]["mean"]) == 3
    assert read_metadata(fixture("int8.tflite"))["input"]["resize"] == "center_crop"
    assert read_metadata(fixture("dynamic.tflite"))["normalization_in_model"]["std"][0] == pytest.approx(63.0)


def test_bytes_and_paths_agree():
    with open(fixture("int8.tflite"), "rb") as f:
        assert read_metadata(f.read()) == read_metadata(fixture("int8.tflite"))


def test_no_metadata_is_none():
    assert read_metadata(fixture("nometa.tflite")) is None
    assert "min_runtime_version" in read_all_metadata(fixture("nometa.tflite"))


def test_check_model_summary():
    summary = check_model(fixture("float32.tflite"))
    assert summary["inputs"][0][0] == [1, 32, 32, 3]
    assert summary["outputs"][0][0] == [1, 10]
    assert check_model(fixture("rank2.tflite"))["inputs"][0][0] == [1, 10]


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"hello world, not a model", "identifier"),
    (b"\x10\x00\x00\x00TFL3", "outside the file"),
    (b"\xff\xff\xff\x7fTFL3" + bytes(64), "outside the file"),
])
def test_malformed_raise_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        read_metadata(data)
    with pytest.raises(ValueError):
        check_model(data)


def test_truncations_raise_value_error():
    data = open(fixture("float32.tflite"), "rb").read()
    for n in (8, 100, len(data) // 2, len(data) - 4):
        with pytest.raises(ValueError):
            check_model(data[:n])


class _Flat:
    """Just enough of a FlatBuffers writer to lay out a Model with buffers and metadata (forward offsets)."""

    def __init__(self):
        self.buf = bytearray(b"\0\0\0\0TFL3")
        self.patches = []

    def align(self, n=4):
        self.buf += bytes(-len(self.buf) % n)

    def table(self, fields):  # fields: list of (kind, value) by field id; kind: "off", "u32", "u64" or None
        self.align(8)
        sizes = {"off": 4, "u32": 4, "u64": 8}
        vt = len(self.buf)
        layout, pos = [], 8  # soffset + padding so u64 fields stay aligned
        for kind, _ in fields:
            if kind is None:
                layout.append(0)
                continue
            pos += -pos % sizes[kind]
            layout.append(pos)
            pos += sizes[kind]
        vtable = struct.pack(f"<HH{len(layout)}H", 4 + 2 * len(layout), pos, *layout)
        self.buf += vtable
        self.align(8)
        start = len(self.buf)
        self.buf += struct.pack("<i", start - vt) + bytes(pos - 4)
        slots = {}
        for (kind, value), off in zip(fields, layout):
            if kind == "u32":
                struct.pack_into("<I", self.buf, start + off, value)
            elif kind == "u64":
                struct.pack_into("<Q", self.buf, start + off, value)
            elif kind == "off":
                slots[value] = start + off
        return start, slots

    def point(self, slot, target=None):  # make the uoffset at ``slot`` point to ``target`` (default: here)
        if target is None:
            self.align()
            target = len(self.buf)
        struct.pack_into("<I", self.buf, slot, target - slot)

    def vector_of_offsets(self, n):
        self.align()
        self.buf += struct.pack("<I", n)
        slots = [len(self.buf) + 4 * i for i in range(n)]
        self.buf += bytes(4 * n)
        return slots

    def bytes_vector(self, data):
        self.align()
        self.buf += struct.pack("<I", len(data)) + data


def _model_with_metadata(payload: bytes, external: bool) -> bytes:
    f = _Flat()
    root, slots = f.table([(None, 0), (None, 0), (None, 0), (None, 0), ("off", "buffers"), (None, 0),
                           ("off", "metadata")])
    struct.pack_into("<I", f.buf, 0, root)
    f.point(slots["buffers"])
    (b0, b1) = f.vector_of_offsets(2)
    f.point(b0, f.table([])[0])  # buffer 0: empty, as in every TFLite model
    fields = [(None, 0), ("u64", 0), ("u64", len(payload))] if external else [("off", "data")]
    buffer, bslots = f.table(fields)
    f.point(b1, buffer)
    if not external:
        f.point(bslots["data"])
        f.bytes_vector(payload)
    f.point(slots["metadata"])
    (m0,) = f.vector_of_offsets(1)
    meta, mslots = f.table([("off", "name"), ("u32", 1)])
    f.point(m0, meta)
    f.point(mslots["name"])
    f.bytes_vector(b"keras_resnet")
    f.buf += b"\0"  # strings are NUL-terminated, the length excludes it
    if external:  # data after the flatbuffer, at an absolute offset (models > 2 GB)
        f.align(16)
        vtable_offset = buffer - struct.unpack_from("<i", f.buf, buffer)[0]
        offset_field = buffer + struct.unpack_from("<H", f.buf, vtable_offset + 6)[0]
        struct.pack_into("<Q", f.buf, offset_field, len(f.buf))
        f.buf += payload
    return bytes(f.buf)


@pytest.mark.parametrize("external", [False, True])
def test_buffer_inline_and_at_offset(external):
    meta = {"schema": "keras_resnet.metadata/1", "labels": ["a", "b"]}
    data = _model_with_metadata(json.dumps(meta).encode(), external)
    assert read_metadata(data) == meta


def test_offset_beyond_file_is_rejected():
    data = _model_with_metadata(b'{"labels": []}', external=True)
    with pytest.raises(ValueError, match="outside the file"):
        read_metadata(data[:-5])


def test_metadata_not_json():
    with pytest.raises(ValueError, match="JSON"):
        read_metadata(_model_with_metadata(b"\xff\xfe not json", external=False))
