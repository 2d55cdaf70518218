"""What a converted ``.tflite`` holds: op counts, the ops left float, tensor types, the GPU delegate's verdict.

The flatbuffer is read by resnet-edge's reader (:func:`resnet_edge.flatbuffer.read_graph`, no TensorFlow), the one
reader of ``.tflite`` graphs that ``resnet-edge check`` uses too; only :func:`gpu_report` needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import re

from resnet_edge.flatbuffer import Graph, read_graph

from keras_resnet.core.errors import ModelFileError

INTEGER_TENSORS = frozenset({"INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BOOL", "INT4",
                             "UINT4", "INT2"})
NAME_BYTES = 200  # resnet_edge.flatbuffer reads at most this many bytes of a tensor name


def graph(content: bytes) -> Graph:
    """Subgraph 0 of the ``.tflite`` ``content``; ModelFileError when it is not a readable TFLite flatbuffer."""
    try:
        return read_graph(bytes(content))
    except ValueError as error:
        raise ModelFileError(f"cannot read the .tflite flatbuffer: {error}") from None


def op_summary(content: bytes) -> tuple[dict[str, int], list[str]]:
    """(op counts, ops that read or write a non-integer tensor, as ``NAME#index``) of a ``.tflite`` model."""
    g = graph(content)
    counts: dict[str, int] = {}
    floating: list[str] = []
    for op in g.ops:
        counts[op.name] = counts.get(op.name, 0) + 1
        if any(t >= 0 and g.tensors[t].type not in INTEGER_TENSORS for t in op.inputs + op.outputs):
            floating.append(op.label)
    return counts, floating


def input_type(content: bytes) -> str:
    """The type of the model's (first) input, lower case like numpy's dtype names: ``int8``, ``float32``."""
    g = graph(content)
    return g.tensors[g.inputs[0]].type.lower()


def tensor_types(content: bytes) -> dict[str, str]:
    """{tensor name: int8/int16/float32/...} of a ``.tflite``'s main subgraph. The reader keeps the first
    :data:`NAME_BYTES` bytes of a name: look names up with :func:`tensor_key`."""
    return {t.name: t.type.lower() for t in graph(content).tensors}



def tensor_key(name: str) -> str:
    """``name`` as :func:`tensor_types` keys it (truncated like resnet-edge's reader truncates it)."""
    return name.encode("utf-8")[:NAME_BYTES].decode("utf-8", "replace")


def gpu_report(content: bytes) -> list[str]:
    """Ops the GPU delegate would not run, from ``tf.lite.experimental.Analyzer`` (empty: all supported)."""
    import tensorflow as tf

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
    text = buffer.getvalue()
    problems = []
    for line in text.splitlines():
        match = re.search(r"GPU COMPATIBILITY WARNING: (.*)", line)
        if match:
            problems.append(match.group(1).strip())
    if not problems and "compatible with GPU delegate" not in text:
        problems.append("the analyzer did not confirm GPU compatibility")
    return sorted(set(problems))
