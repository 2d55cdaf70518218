"""keras_resnet's ``.tflite`` metadata: build it from a model and the conversion's choices, embed it in the
flatbuffer (TensorFlow side), read it back.

The contract is resnet-edge's (a dependency): one ``Model.metadata`` entry named ``NAME`` whose buffer is UTF-8 JSON
(``{"schema": SCHEMA, "labels": [...], "input": {...}, ...}``). :func:`build_metadata` writes labels, input size,
pixel normalisation and the runner's resize policy (:func:`resize_policy`). Reading needs no TensorFlow:
:func:`read_metadata` is the on-device reader, re-exported here.
"""

from __future__ import annotations

import json

import numpy as np
from resnet_edge.metadata import NAME, SCHEMA, read_all_metadata, read_metadata
from resnet_edge.preprocess import CROP_FRACTION

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.core.version import VERSION
from keras_resnet.spec.conversion import ConvertSpec

__all__ = ["NAME", "PRODUCER", "SCHEMA", "build_metadata", "embed_metadata", "normalization_constants",
           "policy_text", "read_all_metadata", "read_metadata", "resize_policy"]

PRODUCER = f"keras_resnet {VERSION}"


def embed_metadata(tflite_bytes: bytes, meta: dict, name: str = NAME) -> bytes:
    """Return ``tflite_bytes`` with ``meta`` (JSON-serialisable) stored as the ``name`` metadata entry.

    An existing entry of that name is replaced; other entries (e.g. ``min_runtime_version``) are kept.
    Raises ModelFileError for a file that is not a TFLite model or keeps buffers outside the flatbuffer (> 2 GB).
    """
    import flatbuffers

    schema = compat.tflite_schema()
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


# ---- what the metadata says -----------------------------------------------------------------------------------


def normalization_constants(model) -> dict | None:
    """mean/std of the model's own input ``normalization`` layer (Keras 3 layer or its QAT depthwise twin)."""
    layer = next((layer for layer in model.layers if layer.name in ("normalization", "quant_normalization")), None)
    if layer is None:
        return None
    inner = getattr(layer, "layer", layer)  # unwrap a tfmot QuantizeWrapper
    kind = type(inner).__name__
    if kind == "Normalization":
        import keras

        mean = np.ravel(keras.ops.convert_to_numpy(inner.mean)).astype(float)
        std = np.sqrt(np.ravel(keras.ops.convert_to_numpy(inner.variance)).astype(float))
    elif kind == "QATAffine":  # native_qat.quantize_model rewrote it: scale = 1/std, offset = -mean/std
        import keras

        std = 1.0 / np.ravel(keras.ops.convert_to_numpy(inner.scale)).astype(float)
        mean = -np.ravel(keras.ops.convert_to_numpy(inner.offset)).astype(float) * std
    elif kind == "DepthwiseConv2D":  # tf_keras_twin.to_tf_keras rewrote it: scale = 1/std, bias = -mean/std
        named = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
        kernel, bias = named["depthwise_kernel"], named["bias"]
        std = 1.0 / np.ravel(kernel).astype(float)
        mean = -np.ravel(bias).astype(float) * std
    else:
        return None
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def build_metadata(model, name: str, quantization: str, labels: list[str] | None, *, mean=None, std=None,
                   resize: str = "stretch", crop_fraction: float = CROP_FRACTION, interpolation: str = "bilinear",
                   preprocessing: dict | None = None) -> dict:
    """The ``keras_resnet`` metadata: labels, input (size, mean/std, resize policy: ``resize``, ``crop_fraction``,
    ``interpolation``, which resnet-edge applies), and the source's recorded ``preprocessing`` when imported."""
    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    if labels is not None and len(labels) != classes:
        raise ConfigError(f"{len(labels)} labels given but the model has {classes} outputs")
    inside = normalization_constants(model)
    return {
        "schema": SCHEMA,
        "model": name,
        "labels": list(labels) if labels is not None else [str(i) for i in range(classes)],
        "input": {"height": height, "width": width, "channels": channels, "layout": "NHWC",
                  "color": "GRAY" if channels == 1 else "RGB",
                  "mean": list(mean) if mean is not None else [0.0] * channels,
                  "std": list(std) if std is not None else [1.0] * channels, "resize": resize,
                  "crop_fraction": float(crop_fraction), "interpolation": interpolation},
        "normalization_in_model": inside,
        "preprocessing": preprocessing,
        "quantization": quantization,
        "producer": PRODUCER,
    }


def resize_policy(spec: ConvertSpec, recorded: dict | None) -> dict:
    """How the runner fits images: the flags when given, else the imported source's recorded crop and
    interpolation (``center_crop``), else resnet-edge's defaults (``stretch``; 0.875, bilinear for center_crop)."""
    return {"resize": spec.resize or ("center_crop" if recorded else "stretch"),
            "crop_fraction": spec.crop_fraction if spec.crop_fraction is not None else
            (recorded["crop_pct"] if recorded else CROP_FRACTION),
            "interpolation": spec.interpolation or (recorded["interpolation"] if recorded else "bilinear"),
            "preprocessing": recorded}


def policy_text(policy: dict) -> str:
    """``"center_crop 0.95 bicubic (from timm:resnet50.a1_in1k)"``, ``"stretch bilinear"``."""
    text = policy["resize"] + (f" {policy['crop_fraction']:g}" if policy["resize"] == "center_crop" else "")
    text += f" {policy['interpolation']}"
    source = policy.get("preprocessing") or {}
    if source.get("source"):
        tag = f".{source['tag']}" if source.get("tag") else ""
        text += f" (recorded from {source['source']}:{source.get('architecture')}{tag})"
    return text
