"""Embed keras_resnet's metadata in a ``.tflite`` flatbuffer (TensorFlow side) and read it back.

The contract is resnet-edge's (a dependency): one ``Model.metadata`` entry named ``NAME`` whose buffer is UTF-8 JSON
(``{"schema": SCHEMA, "labels": [...], "input": {...}, ...}``). Reading needs no TensorFlow:
:func:`read_metadata` is the on-device reader, re-exported here.
"""

from __future__ import annotations

import json

from resnet_edge.metadata import NAME, SCHEMA, read_all_metadata, read_metadata

from keras_resnet.core.errors import ModelFileError

__all__ = ["NAME", "SCHEMA", "embed_metadata", "read_all_metadata", "read_metadata"]


def embed_metadata(tflite_bytes: bytes, meta: dict, name: str = NAME) -> bytes:
    """Return ``tflite_bytes`` with ``meta`` (JSON-serialisable) stored as the ``name`` metadata entry.

    An existing entry of that name is replaced; other entries (e.g. ``min_runtime_version``) are kept.
    Raises ModelFileError for a file that is not a TFLite model or keeps buffers outside the flatbuffer (> 2 GB).
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError("not a TFLite model (file identifier is not TFL3)")
    payload = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    model.buffers = model.buffers or []
    external = [b for b in model.buffers if (b.offset or 0) > 1]
    if external:
        # Buffers stored after the flatbuffer (offset/size): ai-edge-quantizer writes its output so once the
        # weights pass 256 KiB. Re-packing would drop that tail, so the data moves inside, where it fits (< 2 GB).
        if len(data) + len(payload) >= 2**31 - 2**20:
            raise ModelFileError("models with buffers outside the flatbuffer (> 2 GB) are not supported")
        import numpy as np

        for buffer in external:
            end = buffer.offset + buffer.size
            if end > len(data):
                raise ModelFileError(f"a buffer ends at byte {end}, past the end of the model ({len(data)} bytes)")
            buffer.data = np.frombuffer(data, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0
    entries = model.metadata or []
    entry = next((m for m in entries if (m.name or b"").decode("utf-8", "replace") == name), None)
    buffer = schema.BufferT()
    buffer.data = list(payload)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = name
        entries.append(entry)
        model.buffers.append(buffer)
        entry.buffer = len(model.buffers) - 1
    else:
        model.buffers[entry.buffer] = buffer
    model.metadata = entries
    builder = flatbuffers.Builder(len(data) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
