"""The layers of native Keras 3 quantization-aware training: ``keras.ops`` and ``keras.quantizers`` only, every
backend. They fake-quantize what TFLite's int8 kernels will compute:

- **weights** 8-bit, symmetric, narrow range ([-127, 127], zero point 0), per output channel for CONV_2D and
  DEPTHWISE_CONV_2D, per tensor for FULLY_CONNECTED (as tfmot; see :meth:`QATConv.call`);
- **activations** 8-bit, per tensor, asymmetric. A range is the cumulative average of the first
  ``calibration_steps`` batch ranges (calibration, or the first training steps), then an EMA (``ema_decay``)
  during fine-tuning, then frozen (``freeze_ranges_after`` steps, or ``frozen`` set to 1);
- **Conv2D/DepthwiseConv2D/Dense → BatchNormalization** is one :class:`QATConv`. In inference the BN is folded
  into the kernel with the *moving* statistics and the folded kernel is quantized: the weights TFLite will run.
  While BN still learns (until ``freeze_bn_after`` steps or freezing), a conv runs once with its per-channel
  quantized kernel and BN follows with batch statistics, updating the moving ones; per-channel symmetric
  quantization commutes with BN's per-channel scale, so these are the same int8 weights (tfmot's treatment).
  Dense (per-tensor weights) corrects the folded output to batch statistics instead (Krishnamoorthi 2018, §3.2):
  ``y = x·q(w·γ/σ)·σ/σ_B + β − γ·μ_B/σ_B``. A following ReLU is fused (TFLite fuses it too);
- a **BatchNormalization that follows no conv** and the input **Normalization** are :class:`QATAffine`: a
  per-channel scale and offset computed as a 1×1 depthwise conv, which the converter emits as one int8
  DEPTHWISE_CONV_2D with per-channel weights;
- **Add, Subtract, Multiply, ReLU, global average pooling** are :class:`QATOutput`: the Keras op, then its output
  range (ReLU fused into an Add). Sigmoid and softmax outputs get TFLite's fixed int8 range (scale 1/256,
  zero point -128);
- the **input** gets a :class:`QATInput` range (pixels 0-255 calibrate to scale 1, zero point -128).

The classes are registered Keras serializables (``keras_resnet>QATConv``, ...): ``keras_resnet/__init__.py``
imports this module as soon as Keras is imported, so saved QAT models load with plain ``keras.saving.load_model``.
:mod:`keras_resnet.quant.native_qat` rewrites a float model into these layers.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_resnet.core.errors import ConfigError
from keras_resnet.quant.fake_quant import fake_quant

PACKAGE = "keras_resnet"
SOFTMAX_RANGE = (0.0, 255.0 / 256.0)  # TFLite int8 SOFTMAX/LOGISTIC output: scale 1/256, zero point -128
_MIN_WEIGHT_RANGE = 1e-6  # a channel whose weights are all 0 still needs a nonzero scale (TF's nudge divides by it)
_INITIAL_RANGE = (-6.0, 6.0)  # tfmot's start: finite ranges before any calibration, so inference works at once

WEIGHTED = {"Conv2D", "DepthwiseConv2D", "Dense"}  # the layers QATConv wraps


# ---- quantization state shared by every layer ---------------------------------------------------------------


class _Ranged(keras.layers.Layer):
    """A layer with one per-tensor output range and the schedule that moves it.

    ``count`` counts range updates (training steps, calibration batches); ``frozen`` (0/1) stops ranges and
    batch statistics from moving. Both are variables, so a compiled training step reads their current value.
    """

    def __init__(self, calibration_steps: int = 8, ema_decay: float = 0.99, freeze_ranges_after: int | None = None,
                 freeze_bn_after: int | None = None, fixed_range: tuple[float, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.calibration_steps = int(calibration_steps)
        self.ema_decay = float(ema_decay)
        self.freeze_ranges_after = None if freeze_ranges_after is None else int(freeze_ranges_after)
        self.freeze_bn_after = None if freeze_bn_after is None else int(freeze_bn_after)
        self.fixed_range = None if fixed_range is None else tuple(float(v) for v in fixed_range)
        self.calibrating = False  # set by calibrate(): update ranges in an inference-mode call

    def _build_range(self) -> None:
        low, high = self.fixed_range or _INITIAL_RANGE
        self.output_min = self.add_weight(name="output_min", shape=(), initializer=keras.initializers.Constant(low),
                                          trainable=False)
        self.output_max = self.add_weight(name="output_max", shape=(), initializer=keras.initializers.Constant(high),
                                          trainable=False)
        self.count = self.add_weight(name="count", shape=(), initializer="zeros", trainable=False)
        self.frozen = self.add_weight(name="frozen", shape=(), initializer="zeros", trainable=False)

    def _past(self, steps: int | None):
        """Whether ``count`` has reached ``steps`` or the layer is frozen (a scalar boolean tensor)."""
        frozen = ops.greater(_value(self.frozen), 0.5)
        if steps is None:
            return frozen
        return ops.logical_or(frozen, ops.greater_equal(_value(self.count), float(steps)))

    def _quantize_output(self, y, update: bool):
        """Fake-quantize ``y`` per tensor; with ``update``, move the range first (then quantize with it)."""
        if self.fixed_range is not None:
            low, high = self.fixed_range
            return fake_quant(y, low, high)
        low, high = _value(self.output_min), _value(self.output_max)
        if update:
            k = _value(self.count)
            batch_low = ops.minimum(ops.min(ops.stop_gradient(y)), 0.0)  # 0 must be representable
            batch_high = ops.maximum(ops.max(ops.stop_gradient(y)), 0.0)
            calibrating = ops.less(k, float(self.calibration_steps))
            keep = self._past(self.freeze_ranges_after)
            decay = self.ema_decay

            def move(old, new):
                average = (old * k + new) / (k + 1.0)
                ema = old * decay + new * (1.0 - decay)
                return ops.where(keep, old, ops.where(calibrating, average, ema))

            low, high = move(low, batch_low), move(high, batch_high)
            self.output_min.assign(low)
            self.output_max.assign(high)
            self.count.assign(k + 1.0)
        return fake_quant(y, low, high)

    def _updating(self, training) -> bool:
        return bool(training) or self.calibrating

    def get_config(self):
        return {**super().get_config(), "calibration_steps": self.calibration_steps, "ema_decay": self.ema_decay,
                "freeze_ranges_after": self.freeze_ranges_after, "freeze_bn_after": self.freeze_bn_after,
                "fixed_range": None if self.fixed_range is None else list(self.fixed_range)}


def _value(variable):
    """A variable's current value as a backend tensor (JAX's jnp.where refuses Keras variables)."""
    return ops.convert_to_tensor(variable)


def _quantize_weights(kernel, axis: int | None):
    """Symmetric narrow-range 8-bit fake quantization (TFLite's int8 weights): per channel along ``axis``, or per
    tensor (``axis=None``)."""
    rank = len(kernel.shape)
    if axis is not None and axis % rank != rank - 1:
        # Move the channels last and back: keras 3.15's per-channel fake quant broadcasts min/max against the last
        # axis on JAX/PyTorch whatever ``axis`` says (a (1, 1, C, 1) depthwise kernel came out (1, 1, C, C)). On
        # TensorFlow this is the graph Keras builds itself, which the converter reads as per-channel DEPTHWISE_CONV_2D
        # weights (checked in tests/test_qat_native.py).
        order = list(range(rank))
        order[axis % rank], order[-1] = order[-1], order[axis % rank]
        return ops.transpose(_quantize_weights(ops.transpose(kernel, order), -1), order)
    reduce = None if axis is None else tuple(range(rank - 1))
    bound = ops.maximum(ops.stop_gradient(ops.max(ops.abs(kernel), axis=reduce)), _MIN_WEIGHT_RANGE)
    return fake_quant(kernel, -bound, bound, narrow_range=True, axis=axis)


def _moments(z):
    """Per-channel mean and (biased) variance over every axis but the last."""
    reduce = tuple(range(len(z.shape) - 1))
    return ops.mean(z, axis=reduce), ops.var(z, axis=reduce)


def _activate(y, activation: str):
    return ops.relu(y) if activation == "relu" else y


@keras.saving.register_keras_serializable(PACKAGE)
class QATInput(_Ranged):
    """The model input's int8 range (the TFLite model's input scale and zero point)."""

    def build(self, input_shape):
        self._build_range()

    def call(self, x, training=None):
        return self._quantize_output(x, self._updating(training))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(PACKAGE)
class QATConv(_Ranged):
    """Conv2D, DepthwiseConv2D or Dense, with an optional folded BatchNormalization and fused activation.

    ``layer`` and ``bn`` are ordinary Keras layers holding the variables (the float model's weights copy over
    unchanged); this layer computes with them. ``activation``: "linear", "relu" or (Dense) "softmax".
    """

    def __init__(self, layer, bn=None, activation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        self.layer = layer if isinstance(layer, keras.layers.Layer) else keras.saving.deserialize_keras_object(layer)
        self.bn = bn if bn is None or isinstance(bn, keras.layers.Layer) else keras.saving.deserialize_keras_object(bn)
        self.kind = type(self.layer).__name__
        if self.kind not in WEIGHTED:
            raise ConfigError(f"QATConv wraps Conv2D, DepthwiseConv2D or Dense, not {self.kind}")
        if activation not in ("linear", "relu", "softmax") or (activation == "softmax" and self.kind != "Dense"):
            raise ConfigError(f"QATConv {self.name}: unsupported activation {activation!r}")
        self.activation = activation

    def build(self, input_shape):
        if not self.layer.built:  # a loaded model's sub-layers arrive built (their own build_config)
            self.layer.build(input_shape)
        if self.bn is not None and not self.bn.built:
            self.bn.build(self.layer.compute_output_shape(input_shape))
        self._build_range()

    def _linear(self, x, kernel):
        if self.kind == "Dense":
            return ops.matmul(x, kernel)
        layer = self.layer
        if self.kind == "Conv2D":
            return ops.conv(x, kernel, strides=layer.strides, padding=layer.padding, data_format="channels_last",
                            dilation_rate=layer.dilation_rate)
        return ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                  data_format="channels_last", dilation_rate=layer.dilation_rate)

    def _kernel(self):
        return self.layer.kernel  # Keras 3 names the depthwise kernel `kernel` too

    def _channel_shape(self, kernel):
        """How a per-output-channel vector broadcasts over the kernel (depthwise: axis 2, multiplier 1)."""
        return (1, 1, -1, 1) if self.kind == "DepthwiseConv2D" else (1,) * (len(kernel.shape) - 1) + (-1,)

    def call(self, x, training=None):
        update = self._updating(training)
        kernel = _value(self._kernel())
        # Dense: per tensor, as tfmot. Per-channel (in, out) kernels make TF 2.21's converter fail ("'tfl.transpose'
        # op has mismatched quantized axes"): FULLY_CONNECTED wants (out, in), quantized on axis 0.
        axis = {"DepthwiseConv2D": 2, "Conv2D": -1}.get(self.kind)
        bias = _value(self.layer.bias) if self.layer.use_bias else None
        if self.bn is None:
            y = self._linear(x, _quantize_weights(kernel, axis))
            if bias is not None:
                y = y + bias
        else:
            bn = self.bn
            channels = kernel.shape[-2] if self.kind == "DepthwiseConv2D" else kernel.shape[-1]
            gamma = _value(bn.gamma) if bn.scale else ops.ones((channels,))
            beta = _value(bn.beta) if bn.center else ops.zeros((channels,))
            conv_bias = bias if bias is not None else ops.zeros((channels,))
            moving_mean, moving_variance = _value(bn.moving_mean), _value(bn.moving_variance)
            sigma = ops.sqrt(moving_variance + bn.epsilon)
            learning = training and not self.calibrating
            if learning and axis is not None:
                # Per-channel symmetric quantization commutes with a per-channel scale (q(w)·γ/σ == q(w·γ/σ) but for
                # rounding ties), so one conv with q(w) followed by BatchNormalization computes the folded weights
                # TFLite runs: batch statistics while BN learns, the moving ones once frozen. This is tfmot's
                # treatment; the Krishnamoorthi correction this replaced ran a second float conv for the batch
                # statistics (2.24x a float step against 1.03x frozen, docs/conversion.md).
                z = self._linear(x, _quantize_weights(kernel, axis)) + conv_bias
                frozen = self._past(self.freeze_bn_after)
                mean, var = ops.cond(frozen, lambda: (moving_mean, moving_variance),
                                     lambda: _moments(z))
                y = (z - mean) * (gamma / ops.sqrt(var + bn.epsilon)) + beta
                self._update_moving(frozen, mean, var)
            elif learning:
                # Dense: per-tensor weights do not commute with a per-channel scale, so the folded kernel is
                # quantized and the output corrected to the batch statistics of a second, float matmul
                # (Krishnamoorthi 2018, §3.2): y = x·q(w·γ/σ)·σ/σ_B + β − γ·μ_B/σ_B.
                folded = kernel * ops.reshape(gamma / sigma, self._channel_shape(kernel))
                y = self._linear(x, _quantize_weights(folded, axis))
                frozen = self._past(self.freeze_bn_after)
                mean, var = ops.cond(frozen, lambda: (moving_mean, moving_variance),
                                     lambda: _moments(self._linear(x, kernel) + conv_bias))
                sigma_batch = ops.sqrt(var + bn.epsilon)
                y = y * (ops.stop_gradient(sigma) / sigma_batch) + beta + (conv_bias - mean) * gamma / sigma_batch
                self._update_moving(frozen, mean, var)
            else:
                folded = kernel * ops.reshape(gamma / sigma, self._channel_shape(kernel))
                y = self._linear(x, _quantize_weights(folded, axis))
                y = y + beta + (conv_bias - moving_mean) * gamma / sigma
        if self.activation == "softmax":
            logits = self._quantize_output(y, update)
            return fake_quant(ops.softmax(logits, axis=-1), *SOFTMAX_RANGE)
        return self._quantize_output(_activate(y, self.activation), update)

    def _update_moving(self, frozen, mean, var) -> None:
        """Move the BN's moving statistics toward this batch's (``frozen``: keep them)."""
        bn, momentum = self.bn, self.bn.momentum
        for variable, batch in ((bn.moving_mean, mean), (bn.moving_variance, var)):
            old = _value(variable)
            variable.assign(ops.where(frozen, old, old * momentum + ops.stop_gradient(batch) * (1 - momentum)))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer),
                "bn": None if self.bn is None else keras.saving.serialize_keras_object(self.bn),
                "activation": self.activation}


@keras.saving.register_keras_serializable(PACKAGE)
class QATAffine(_Ranged):
    """``x·scale + offset`` per channel, computed as a 1×1 depthwise conv with per-channel int8 weights.

    What a BatchNormalization that follows no conv (inference statistics) or a Normalization becomes: TFLite
    runs it as one int8 DEPTHWISE_CONV_2D. ``trainable=False`` keeps a Normalization's data constants fixed
    (trained on 0-255 pixels they take ~50x the gradients of any other layer: see tfmot_qat.fine_tune).
    """

    def __init__(self, activation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        if activation not in ("linear", "relu"):
            raise ConfigError(f"QATAffine {self.name}: unsupported activation {activation!r}")
        self.activation = activation

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ConfigError(f"QATAffine {self.name} needs NHWC input with known channels; got {input_shape}")
        channels = int(input_shape[-1])
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.offset = self.add_weight(name="offset", shape=(channels,), initializer="zeros")
        self._build_range()

    def call(self, x, training=None):
        kernel = _quantize_weights(ops.reshape(_value(self.scale), (1, 1, -1, 1)), 2)
        y = ops.depthwise_conv(x, kernel, strides=1, padding="valid", data_format="channels_last")
        y = y + _value(self.offset)
        return self._quantize_output(_activate(y, self.activation), self._updating(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(PACKAGE)
class QATOutput(_Ranged):
    """A built-in layer without weights (Add, pooling, ReLU, ...) followed by its output's int8 range."""

    def __init__(self, layer, activation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        self.layer = layer if isinstance(layer, keras.layers.Layer) else keras.saving.deserialize_keras_object(layer)
        if activation not in ("linear", "relu"):
            raise ConfigError(f"QATOutput {self.name}: unsupported activation {activation!r}")
        self.activation = activation

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self._build_range()

    def call(self, inputs, training=None):
        y = _activate(self.layer(inputs), self.activation)
        return self._quantize_output(y, self._updating(training))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer),
                "activation": self.activation}


QAT_CLASSES = (QATInput, QATConv, QATAffine, QATOutput)


def is_native_qat(model) -> bool:
    """Whether ``model`` was made by :func:`keras_resnet.quant.native_qat.quantize_model` (native QAT layers)."""
    return any(isinstance(layer, QAT_CLASSES) for layer in getattr(model, "layers", []))


def qat_layers(model) -> list[_Ranged]:
    """The layers of ``model`` that hold an int8 range and its schedule."""
    return [layer for layer in model.layers if isinstance(layer, _Ranged)]
