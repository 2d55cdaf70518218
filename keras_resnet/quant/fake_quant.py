"""8-bit fake quantization for the native QAT layers, one op per backend.

On TensorFlow it is ``keras.quantizers.fake_quant_with_min_max_vars``, which is ``tf.quantization.fake_quant_*``:
the TFLite converter reads those ops as the int8 ranges, so that graph must stay.

On JAX and PyTorch, Keras 3.15 builds the same forward arithmetic under ``ops.custom_gradient``, whose backward
also computes the gradients of the range (two full-size masks and sums per call) and keeps its own residuals. The
QAT layers never train a range (activation ranges are non-trainable variables, weight bounds are
``stop_gradient``), so :func:`straight_through` computes Keras' forward values exactly, with the straight-through
gradient for the input only (1 inside the nudged range, 0 outside, as Keras' mask), as plain ops XLA fuses. Why:
ResNet-20 QAT fine-tuning on JAX, digits, batch 128, in-memory ``fit``, quiet 2-core Zen 4 EPYC (AVX-512): a QAT
step cost 1.27x a float step with Keras' op, 0.98-1.04x with this one (``benchmarks/peers.py --worker qat``, float
and QAT epochs alternating in one process).
"""

from __future__ import annotations

import keras
from keras import ops


def _nudge(low, high, num_bits: int, narrow_range: bool):
    """Keras' (and TensorFlow's) nudged range: the zero point rounded to an integer, so 0.0 is exactly representable.
    Returns ``(nudged_min, nudged_max, scale, inverse_scale)``."""
    low = ops.cast(low, "float32")
    high = ops.cast(high, "float32")
    quant_max = float((1 << num_bits) - 1)
    quant_min = 1.0 if narrow_range else 0.0
    scale = (high - low) / (quant_max - quant_min)
    inverse = (quant_max - quant_min) / (high - low)
    zero_point = ops.round(ops.clip(quant_min - low / scale, quant_min, quant_max))
    return (quant_min - zero_point) * scale, (quant_max - zero_point) * scale, scale, inverse


def straight_through(x, low, high, *, num_bits: int = 8, narrow_range: bool = False):
    """Fake-quantize ``x`` to ``num_bits`` over ``[low, high]`` (scalars, or per-channel vectors along the last axis):
    the values of Keras' ``fake_quant_with_min_max_vars`` on JAX/PyTorch, the gradient only for ``x``."""
    x = ops.convert_to_tensor(x)
    nudged_min, nudged_max, scale, inverse = _nudge(ops.convert_to_tensor(low), ops.convert_to_tensor(high),
                                                    num_bits, narrow_range)
    quant_zero = ops.floor(-nudged_min * inverse + 0.5)
    clamped = ops.clip(ops.cast(x, "float32"), nudged_min, nudged_max)
    values = ops.floor((clamped - nudged_min) * inverse - quant_zero + 0.5) * scale
    inside = ops.where(ops.logical_and(ops.greater_equal(x, nudged_min), ops.less_equal(x, nudged_max)), x, 0.0)
    # values + (inside - inside) is values exactly (0 added), and its gradient is the mask
    return ops.cast(ops.stop_gradient(values), x.dtype) + (inside - ops.stop_gradient(inside))


def fake_quant(x, low, high, *, narrow_range: bool = False, axis: int | None = None):
    """8-bit fake quantization as the QAT layers use it; per channel only along the last axis (``axis=-1``)."""
    if keras.backend.backend() == "tensorflow":
        return keras.quantizers.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=narrow_range,
                                                             axis=axis)
    if axis is not None and axis % len(x.shape) != len(x.shape) - 1:
        raise ValueError(f"per-channel fake quantization along axis {axis}: only the last axis is supported")
    return straight_through(x, low, high, narrow_range=narrow_range)
