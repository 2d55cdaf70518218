"""Where and why TensorFlow Lite Micro's int8 outputs differ from LiteRT's reference kernels (``--target mcu``).

:func:`first_difference` runs one image through both runtimes with every tensor kept (TFLM ``kPreserveAllTensors``, LiteRT
``experimental_preserve_all_tensors``) and names the first op, in execution order, whose output differs. For a
FULLY_CONNECTED it checks the one known cause on that op's own integers: LiteRT's reference FULLY_CONNECTED (int8,
per-tensor and per-channel, ``OpResolverType.BUILTIN_REF``) rounds ``acc * (s_in * s_w / s_out)`` once, in double
precision (``reference_integer_ops::FullyConnected``'s float-scale overload), while TFLM's uses the fixed-point
multiplier of every other int8 kernel (``MultiplyByQuantizedMultiplier``: a rounding high multiply, then a rounding
shift). The two disagree by 1 LSB where the product lies within about ``2**shift`` of a half step (measured: 9 of
2,870 logits of a digits ResNet-8, shift -7). The cause is named only when both formulas reproduce both runtimes'
outputs of the op exactly. :func:`keras_resnet.export.micro.measure` accepts a file whose every difference is that one
(on each differing image, every earlier op identical and both formulas exact), counts those images, and adds the
sentence to its refusal otherwise.
"""

from __future__ import annotations

import math

import numpy as np

_INT8 = (-128, 127)


def _tflm_fixed_point(acc: int, multiplier: float) -> int:
    """TFLM's ``QuantizeMultiplier`` + ``MultiplyByQuantizedMultiplier`` (double rounding) of ``acc``."""
    if multiplier == 0:
        return 0
    fraction, shift = math.frexp(multiplier)
    quantized = int(math.floor(fraction * (1 << 31) + 0.5))
    if quantized == 1 << 31:
        quantized, shift = quantized // 2, shift + 1
    if shift < -31:
        return 0
    product = (acc << max(shift, 0)) * quantized
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    high = abs(product + nudge) >> 31  # SaturatingRoundingDoublingHighMul: truncating division by 2**31
    high = high if product + nudge >= 0 else -high
    exponent = max(-shift, 0)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> exponent) + (1 if (high & mask) > threshold else 0)  # RoundingDivideByPOT


def _litert_reference(acc: int, multiplier: float) -> int:
    """LiteRT's reference FULLY_CONNECTED: C ``round`` (half away from zero) of ``acc * multiplier`` in double."""
    value = acc * multiplier
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _scales(details: dict) -> tuple[np.ndarray, np.ndarray]:
    quant = details["quantization_parameters"]
    return np.asarray(quant["scales"], np.float64), np.asarray(quant["zero_points"], np.int64)


def fully_connected_cause(op, litert, tflm_output: np.ndarray) -> str | None:
    """The rounding sentence when LiteRT's output of the FULLY_CONNECTED ``op`` is its double-precision rounding and
    ``tflm_output`` the fixed-point one, on the op's own (shared, identical) inputs; None when that does not explain
    it. ``litert``: the LiteRT Interpreter that ran the image (all tensors kept)."""
    details = {d["index"]: d for d in litert.get_tensor_details()}
    data, weights = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    in_scale, in_zero = _scales(details[data])
    w_scale, w_zero = _scales(details[weights])
    out_scale, out_zero = _scales(details[op.outputs[0]])
    if len(in_scale) != 1 or len(out_scale) != 1 or not len(w_scale):
        return None
    w = litert.get_tensor(weights).astype(np.int64)
    w = w - (w_zero[0] if len(w_zero) == 1 else 0)  # per-channel weights are symmetric (zero point 0)
    x = litert.get_tensor(data).astype(np.int64).reshape(-1, w.shape[1]) - in_zero[0]
    acc = x @ w.T + (litert.get_tensor(bias).astype(np.int64) if bias is not None else 0)
    channel = np.broadcast_to(w_scale, (w.shape[0],))
    multipliers = [float(np.float32(in_scale[0])) * float(np.float32(s)) / float(np.float32(out_scale[0]))
                   for s in channel]
    ours = litert.get_tensor(op.outputs[0]).astype(np.int64).reshape(acc.shape)
    theirs = np.asarray(tflm_output, np.int64).reshape(acc.shape)

    def rounded(formula, low: int) -> np.ndarray:
        return np.array([[min(max(formula(int(a), m) + int(out_zero[0]), low), _INT8[1])
                          for a, m in zip(row, multipliers)] for row in acc])

    for low in (_INT8[0], int(out_zero[0])):  # no fused activation, or a fused ReLU
        if (np.array_equal(ours, rounded(_litert_reference, low))
                and np.array_equal(theirs, rounded(_tflm_fixed_point, low))):
            shift = math.frexp(max(multipliers))[1]
            return (f"LiteRT's reference FULLY_CONNECTED rounds acc*(s_in*s_w/s_out) once in double precision, "
                    f"TFLM's uses the fixed-point multiplier (two roundings, shift {shift}); the two formulas reproduce "
                    f"the two runtimes' {acc.size} outputs of this op exactly, and {int(np.sum(ours != theirs))} of "
                    f"them lie near a half step and differ: a kernel difference between the runtimes, not a defect "
                    f"of the file")
    return None


def first_difference(content: bytes, image: np.ndarray, arena: int) -> tuple[str, bool]:
    """Where TFLM and LiteRT's reference kernels first differ on the int8 ``image`` (batch 1) and, for a
    FULLY_CONNECTED, why ("" when they agree on it or an interpreter cannot keep every tensor), and whether that is
    the FULLY_CONNECTED rounding difference alone: every op before it identical, and both formulas reproducing both
    runtimes' outputs of it exactly. ``arena``: the tensor arena TFLM needs without keeping tensors (each kept tensor
    gets its own buffer on top)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from resnet_edge.flatbuffer import read_graph
    from tflite_micro.python.tflite_micro import runtime

    graph = read_graph(content)
    kept = arena + sum(4 * math.prod(t.shape) + 64 for t in graph.tensors if not t.constant_bytes) + (1 << 16)
    try:
        litert = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                             experimental_preserve_all_tensors=True)
        litert.allocate_tensors()
        litert.set_tensor(litert.get_input_details()[0]["index"], image[None])
        litert.invoke()
        tflm = runtime.Interpreter.from_bytes(content, arena_size=int(kept),
                                              intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        tflm.set_input(image[None], 0)
        tflm.invoke()
    except (RuntimeError, ValueError):
        return "", False
    for op in graph.ops:
        for out in op.outputs:
            ours = litert.get_tensor(out)
            theirs = np.asarray(tflm.GetTensor(out, 0)["tensor_data"]).reshape(ours.shape)
            if np.array_equal(ours, theirs):
                continue
            lsb = int(np.max(np.abs(ours.astype(np.int64) - theirs.astype(np.int64))))
            where = (f"the first difference is op {op.index} {op.name} (output {graph.tensors[out].name!r}: up to "
                     f"{lsb} LSB), all its inputs identical")
            cause = fully_connected_cause(op, litert, theirs) if op.name == "FULLY_CONNECTED" else None
            return (f"{where}; {cause}", True) if cause else (where, False)
    return "", False
