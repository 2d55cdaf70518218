"""Quantization-aware training native to Keras 3: ``keras.ops`` and ``keras.quantizers`` only, every backend.

:func:`quantize_model` rewrites a functional model (keras_resnet's, or a user's made of the same layer types)
into an ordinary Keras 3 functional model whose layers fake-quantize what TFLite's int8 kernels will compute:

- **weights** 8-bit, symmetric, narrow range ([-127, 127], zero point 0), per output channel for CONV_2D and
  DEPTHWISE_CONV_2D, per tensor for FULLY_CONNECTED (as tfmot; see :meth:`QATConv.call`);
- **activations** 8-bit, per tensor, asymmetric. A range is the cumulative average of the first
  ``calibration_steps`` batch ranges (:func:`calibrate`, or the first training steps), then an EMA
  (``ema_decay``) during fine-tuning, then frozen (``freeze_ranges_after`` steps, or :func:`freeze`);
- **Conv2D/DepthwiseConv2D/Dense → BatchNormalization** is one :class:`QATConv`. In inference the BN is folded
  into the kernel with the *moving* statistics and the folded kernel is quantized: the weights TFLite will run.
  While BN still learns (until ``freeze_bn_after`` steps or :func:`freeze`), a conv runs once with its per-channel
  quantized kernel and BN follows with batch statistics, updating the moving ones; per-channel symmetric
  quantization commutes with BN's per-channel scale, so these are the same int8 weights (tfmot's treatment).
  Dense (per-tensor weights) corrects the folded output to batch statistics instead (Krishnamoorthi 2018, §3.2):
  ``y = x·q(w·γ/σ)·σ/σ_B + β − γ·μ_B/σ_B``. A following ReLU is fused (TFLite fuses it too);
- a **BatchNormalization that follows no conv** (ResNet V2's pre-activations, ``post_bn``) and the input
  **Normalization** become :class:`QATAffine`: a per-channel scale and offset computed as a 1×1 depthwise
  conv, which the converter emits as one int8 DEPTHWISE_CONV_2D with per-channel weights;
- **Add, Subtract, Multiply, ReLU, global average pooling** are :class:`QATOutput`: the Keras op, then
  its output range (ReLU fused into an Add). Sigmoid and softmax outputs get TFLite's fixed int8 range
  (scale 1/256, zero point -128);
- **ZeroPadding2D, MaxPooling2D, AveragePooling2D, ChannelPadding, Flatten, Reshape, Dropout** pass through:
  TFLite runs them on int8 with the input's scale, exactly as the float op on fake-quantized values
  (AveragePooling2D: within half an input step, TFLite rounds the mean onto the input grid);
- the **input** gets a :class:`QATInput` range (pixels 0-255 calibrate to scale 1, zero point -128).

Any other layer is refused by name (:class:`~keras_resnet.core.errors.ConfigError`). The model trains with
``model.fit``, saves as ``.keras`` (its classes are registered under ``keras_resnet``) and
``keras-resnet convert`` turns it into a fully int8 ``.tflite`` (TensorFlow backend): on TensorFlow,
``keras.quantizers.fake_quant_with_min_max_vars`` is ``tf.quantization.fake_quant_*``, which the TFLite
converter reads as quantization parameters.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
from keras import ops

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.core.files import atomic_path, check_output

PACKAGE = "keras_resnet"
SOFTMAX_RANGE = (0.0, 255.0 / 256.0)  # TFLite int8 SOFTMAX/LOGISTIC output: scale 1/256, zero point -128
_MIN_WEIGHT_RANGE = 1e-6  # a channel whose weights are all 0 still needs a nonzero scale (TF's nudge divides by it)
_INITIAL_RANGE = (-6.0, 6.0)  # tfmot's start: finite ranges before any calibration, so inference works at once

# Layer kinds the rewrite handles, by what it does with them.
_WEIGHTED = {"Conv2D", "DepthwiseConv2D", "Dense"}
_AFFINE = {"BatchNormalization", "Normalization"}
_OUTPUT = {"Add", "Subtract", "Multiply", "GlobalAveragePooling2D", "ReLU", "Activation"}
# TFLite runs these on int8 with the input's scale. Exact for all but AVERAGE_POOL_2D, which rounds the mean onto the
# input grid (<= 1/2 input LSB off the float mean Keras passes on); giving it an output range of its own made the
# converter add a QUANTIZE (requantize) op after it, which PTQ models do not have.
_PASS = {"ZeroPadding2D", "MaxPooling2D", "AveragePooling2D", "ChannelPadding", "Flatten", "Reshape", "Dropout"}


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
            return keras.quantizers.fake_quant_with_min_max_vars(y, low, high, num_bits=8)
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
        return keras.quantizers.fake_quant_with_min_max_vars(y, low, high, num_bits=8)

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
    return keras.quantizers.fake_quant_with_min_max_vars(kernel, -bound, bound, num_bits=8, narrow_range=True,
                                                         axis=axis)


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
        if self.kind not in _WEIGHTED:
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
            return keras.quantizers.fake_quant_with_min_max_vars(ops.softmax(logits, axis=-1), *SOFTMAX_RANGE)
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
    (trained on 0-255 pixels they take ~50x the gradients of any other layer: see quantize.fine_tune).
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
    """Whether ``model`` was made by :func:`quantize_model` (a Keras 3 model with native QAT layers)."""
    return any(isinstance(layer, QAT_CLASSES) for layer in getattr(model, "layers", []))


def qat_layers(model) -> list[_Ranged]:
    return [layer for layer in model.layers if isinstance(layer, _Ranged)]


# ---- the graph rewrite ---------------------------------------------------------------------------------------


def keras_history_refs(value) -> list[tuple]:
    """The ``keras_history`` references in a serialized inbound-node argument structure."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [tuple(value["config"]["keras_history"])]
        return [r for v in value.values() for r in keras_history_refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in keras_history_refs(v)]
    return []


def _substitute(value, tensors: dict):
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return tensors[tuple(value["config"]["keras_history"])[0]]
        return {k: _substitute(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_substitute(v, tensors) for v in value]
    return value


def _ref_list(value) -> list[tuple]:
    if len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)]
    return [tuple(v) for v in value]


def _is_relu(layer) -> bool:
    kind = type(layer).__name__
    if kind == "Activation":
        return layer.get_config().get("activation") == "relu"
    if kind == "ReLU":
        config = layer.get_config()
        return (config.get("max_value") is None and not config.get("negative_slope")
                and not config.get("threshold"))
    return False


def _clone(layer):
    return type(layer).from_config(layer.get_config())


def _as_numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value), dtype="float32")


def _affine_of(layer) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel of an inference-mode BatchNormalization or Normalization on the last axis."""
    shape = layer.input.shape
    channels = int(shape[-1])
    if type(layer).__name__ == "BatchNormalization":
        gamma = _as_numpy(layer.gamma) if layer.scale else np.ones(channels, "float32")
        beta = _as_numpy(layer.beta) if layer.center else np.zeros(channels, "float32")
        scale = gamma / np.sqrt(_as_numpy(layer.moving_variance) + layer.epsilon)
        return scale, beta - _as_numpy(layer.moving_mean) * scale
    mean = np.broadcast_to(_as_numpy(layer.mean).reshape(-1), (channels,))
    std = np.maximum(np.sqrt(np.broadcast_to(_as_numpy(layer.variance).reshape(-1), (channels,))),
                     keras.backend.epsilon())
    return (1.0 / std).astype("float32"), (-mean / std).astype("float32")


def _check_layer(layer, shape) -> None:
    """Refuse, by name, what the int8 kernels (or this engine) cannot express."""
    kind = type(layer).__name__
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConfigError(f"layer {layer.name!r} ({kind}) is channels_first; native QAT needs channels_last")
    if kind == "Conv2D" and config.get("groups", 1) != 1:
        raise ConfigError(f"layer {layer.name!r}: grouped Conv2D is not supported by native QAT")
    if kind == "DepthwiseConv2D" and config.get("depth_multiplier", 1) != 1:
        raise ConfigError(f"layer {layer.name!r}: DepthwiseConv2D with depth_multiplier > 1 is not supported")
    if kind in _WEIGHTED and config.get("activation") not in ("linear", "relu", "softmax"):
        raise ConfigError(f"layer {layer.name!r} ({kind}) has activation {config.get('activation')!r}; native QAT "
                          f"supports linear, relu and (Dense) softmax")
    if kind in _WEIGHTED and (config.get("activation") == "softmax") != (kind == "Dense" and
                                                                      config.get("activation") == "softmax"):
        raise ConfigError(f"layer {layer.name!r}: softmax is supported on Dense only")
    if kind in _AFFINE:
        axis = config.get("axis")
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if axis not in (-1, 3) or len(shape) != 4 or (kind == "Normalization" and config.get("invert")):
            raise ConfigError(f"layer {layer.name!r} ({kind}) must normalize the last axis of an NHWC tensor")
    if kind == "Activation" and config.get("activation") not in ("relu", "linear", "sigmoid", "softmax"):
        raise ConfigError(f"layer {layer.name!r}: activation {config.get('activation')!r} has no int8 rule here")
    if kind == "ReLU" and not _is_relu(layer):
        raise ConfigError(f"layer {layer.name!r}: ReLU with max_value/negative_slope/threshold is not supported")


def quantize_model(model, *, calibration_steps: int = 8, ema_decay: float = 0.99,
                   freeze_ranges_after: int | None = None, freeze_bn_after: int | None = None,
                   name: str | None = None):
    """A native QAT copy of the functional ``model``, with its weights (see the module docstring).

    ``freeze_bn_after`` / ``freeze_ranges_after``: training steps after which the folded BNs use their moving
    statistics and the activation ranges stop moving (None: only :func:`freeze` stops them). Raises
    :class:`ConfigError` naming the first layer the engine cannot quantize.
    """
    if is_native_qat(model):
        return model
    if type(model).__name__ != "Functional":
        raise ConfigError(f"model {model.name!r} is {type(model).__name__}; native QAT rewrites functional models "
                          f"(build it with keras.Model(inputs, outputs))")
    schedule = {"calibration_steps": calibration_steps, "ema_decay": ema_decay,
                "freeze_ranges_after": freeze_ranges_after, "freeze_bn_after": freeze_bn_after}
    config = model.get_config()
    specs = config["layers"]
    layers = {spec["name"]: model.get_layer(spec["name"]) for spec in specs}
    consumers: dict[str, list[str]] = {spec["name"]: [] for spec in specs}
    for spec in specs:
        if len(spec["inbound_nodes"]) > 1:
            raise ConfigError(f"layer {spec['name']!r} is used {len(spec['inbound_nodes'])} times; native QAT needs "
                              f"each layer called once")
        for ref in [ref[0] for node in spec["inbound_nodes"] for ref in keras_history_refs(node)]:
            consumers[ref].append(spec["name"])
    outputs = [ref[0] for ref in _ref_list(config["output_layers"])]

    def sole_consumer(name: str, kinds) -> str | None:
        """The one layer reading ``name``'s output if it is of ``kinds`` (and ``name`` is no model output)."""
        after = consumers[name]
        if len(after) != 1 or name in outputs:
            return None
        return after[0] if kinds(layers[after[0]]) else None

    tensors: dict[str, object] = {}  # original layer name -> new tensor (fused layers map to the fused output)
    absorbed: set[str] = set()
    new_inputs = []
    for spec in specs:
        lname, kind = spec["name"], spec["class_name"]
        layer = layers[lname]
        if lname in absorbed:
            continue
        if kind == "InputLayer":
            tensor = keras.Input(batch_shape=tuple(layer.output.shape), dtype=layer.output.dtype, name=lname)
            new_inputs.append(tensor)
            tensors[lname] = QATInput(name=f"{lname}_quant", **schedule)(tensor)
            continue
        if type(layer).__name__ in ("Functional", "Sequential"):
            raise ConfigError(f"layer {lname!r} is a nested model; native QAT needs one flat functional graph")
        if kind not in _WEIGHTED | _AFFINE | _OUTPUT | _PASS:
            raise ConfigError(f"layer {lname!r} ({spec.get('registered_name') or kind}) has no int8 rule in native "
                              f"QAT; supported: {', '.join(sorted(_WEIGHTED | _AFFINE | _OUTPUT | _PASS))}")
        _check_layer(layer, tuple(layer.input.shape) if kind in _AFFINE else ())
        args = _substitute(spec["inbound_nodes"][0].get("args", []), tensors)
        x = args[0] if len(args) == 1 else args
        last = lname  # the last original layer this new layer stands for
        if kind in _WEIGHTED:
            activation = layer.get_config().get("activation", "linear")
            bn_name = None
            if activation == "linear":
                bn_name = sole_consumer(lname, lambda other: type(other).__name__ == "BatchNormalization"
                                        and other.get_config().get("axis") in (-1, 3, [-1], [3]))
            bn = None
            if bn_name is not None:
                absorbed.add(bn_name)
                bn, last = _clone(layers[bn_name]), bn_name
            if activation == "linear":
                relu_name = sole_consumer(last, _is_relu)
                if relu_name is not None:
                    absorbed.add(relu_name)
                    activation, last = "relu", relu_name
            new = QATConv(_clone(layer), bn, activation=activation, name=lname, **schedule)
            tensors[last] = new(x)
            new.layer.set_weights(layer.get_weights())
            if bn is not None:
                bn.set_weights(layers[bn_name].get_weights())
        elif kind in _AFFINE:
            activation = "linear"
            relu_name = sole_consumer(lname, _is_relu)
            if relu_name is not None:
                absorbed.add(relu_name)
                activation, last = "relu", relu_name
            new = QATAffine(activation=activation, name=lname, trainable=kind == "BatchNormalization"
                            and layer.trainable, **schedule)
            tensors[last] = new(x)
            scale, offset = _affine_of(layer)
            new.scale.assign(scale)
            new.offset.assign(offset)
        elif kind in _OUTPUT:
            act = layer.get_config().get("activation") if kind == "Activation" else None
            if act == "linear":
                tensors[lname] = x
                continue
            fixed = SOFTMAX_RANGE if act in ("sigmoid", "softmax") else None
            activation = "linear"
            if kind in ("Add", "Subtract"):
                relu_name = sole_consumer(lname, _is_relu)
                if relu_name is not None:
                    absorbed.add(relu_name)
                    activation, last = "relu", relu_name
            new = QATOutput(_clone(layer), activation=activation, name=lname,
                            **{**schedule, "fixed_range": fixed})
            tensors[last] = new(x)
        else:  # exact on int8 values with the input's scale
            tensors[lname] = _clone(layer)(x)
    missing = [o for o in outputs if o not in tensors]
    if missing:
        raise ConfigError(f"model outputs {missing} were fused away; this should not happen")
    outs = [tensors[o] for o in outputs]
    single = not isinstance(model.output, (list, tuple, dict))
    return keras.Model(new_inputs[0] if len(new_inputs) == 1 else new_inputs, outs[0] if single else outs,
                       name=name or model.name)


# ---- schedule: calibrate, freeze ---------------------------------------------------------------------------


def calibrate(qat_model, x, *, batches: int = 8, batch_size: int = 64, seed: int = 0) -> None:
    """Set the activation ranges from ``batches`` batches of ``x`` (cumulative average), nothing else changes.

    The model runs in inference mode (BN moving statistics, no updates) with every range updating; each
    layer's update count restarts, so the first ``calibration_steps`` updates (default 8, as ``batches``)
    are averaged and fine-tuning continues with the EMA.
    """
    ranged = qat_layers(qat_model)
    if not ranged:
        raise ConfigError(f"{qat_model.name} has no native QAT layers; quantize it with qat.quantize_model first")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[: batches * batch_size]
    for layer in ranged:
        layer.count.assign(0.0)
        layer.calibrating = True
    try:
        for start in range(0, len(order), batch_size):
            qat_model(np.asarray(x[np.sort(order[start:start + batch_size])], "float32"), training=False)
    finally:
        for layer in ranged:
            layer.calibrating = False


def freeze(qat_model) -> None:
    """Freeze every activation range and folded-BN statistic: further training moves weights only."""
    for layer in qat_layers(qat_model):
        layer.frozen.assign(1.0)


# ---- fine-tuning a saved model, the CLI ---------------------------------------------------------------------


def _check_output_name(path: str) -> None:
    if not str(path).endswith(".keras"):
        stem = os.path.splitext(str(path))[0]
        raise ConfigError(f"native QAT models are saved as .keras; use --output {stem}.keras")


def save(qat_model, path: str, *, force: bool = False, preprocessing: dict | None = None) -> str:
    """Save a native QAT model as ``.keras``, atomically (never over an existing file without ``force``), with the
    float model's recorded ``preprocessing`` (an imported model's crop and resize policy) inside."""
    from keras_resnet.io.model_io import attach_preprocessing

    path = os.fspath(path)
    _check_output_name(path)
    with atomic_path(path, force=force) as tmp:
        qat_model.save(tmp)
        if preprocessing is not None:
            attach_preprocessing(tmp, preprocessing)
    return path


def fine_tune(qat_model, x, y, *, epochs: int, batch_size: int = 64, learning_rate: float = 1e-3,
              validation: tuple | None = None, verbose: int = 0, seed: int = 0):
    """``model.fit`` with SGD (momentum 0.9): the same optimizer the tfmot engine uses; returns the History."""
    keras.utils.set_random_seed(seed)
    last = qat_model.layers[-1]
    softmax = (isinstance(last, QATConv) and last.activation == "softmax") or (
        isinstance(last, QATOutput) and last.layer.get_config().get("activation") == "softmax")
    from_logits = not softmax
    qat_model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                      metrics=["accuracy"])
    return qat_model.fit(np.asarray(x, "float32"), np.asarray(y), epochs=epochs, batch_size=batch_size,
                         validation_data=None if validation is None else
                         (np.asarray(validation[0], "float32"), np.asarray(validation[1])),
                         verbose=verbose, shuffle=True)


def qat_fine_tune(model_or_path, spec, output_path: str, *, force: bool = False, unsafe: bool = False,
                  verbose: int = 0):
    """Quantize a trained Keras 3 model natively, calibrate, fine-tune on ``spec.dataset`` and save (``.keras``).

    Returns :class:`keras_resnet.quant.quantize.QATResult` (test accuracy before and after).
    """
    from keras_resnet.data import datasets as data
    from keras_resnet.io.model_io import load_model, read_preprocessing
    from keras_resnet.quant.quantize import QATResult, accuracy, check_images

    _check_output_name(output_path)
    check_output(output_path, force=force)
    from_file = isinstance(model_or_path, (str, os.PathLike))
    model = load_model(model_or_path, unsafe=unsafe, keras3_only=True) if from_file else model_or_path
    preprocessing = read_preprocessing(model_or_path) if from_file else None
    start = time.perf_counter()
    size = model.inputs[0].shape[1]  # folder datasets are decoded at the model's input size (others ignore it)
    folder = {"image_size": int(size)} if size is not None else {}
    x_train, y_train = data.load(spec.dataset, "train", spec.data_dir, **folder)
    x_val, y_val = data.load(spec.dataset, "val", spec.data_dir, **folder)
    x_test, y_test = data.load(spec.dataset, "test", spec.data_dir, **folder)
    check_images(model, x_train, spec.dataset)
    if len(x_train) == 0:
        raise DataError(f"{spec.dataset} has no training images")
    float_accuracy = accuracy(model, x_test, y_test)
    # BN statistics and ranges move until freeze() after the last epoch. Freezing them for the second of two epochs
    # cost 0.5-0.9 pt on Fashion-MNIST (ResNet-20/56, docs/results.md, stage q): the moving statistics went stale.
    qat = quantize_model(model)
    calibrate(qat, x_train)
    if spec.epochs:
        fine_tune(qat, x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                  learning_rate=spec.learning_rate, validation=(x_val, y_val), verbose=verbose)
    freeze(qat)
    qat_accuracy = accuracy(qat, x_test, y_test)
    save(qat, output_path, force=force, preprocessing=preprocessing)
    return QATResult(os.fspath(output_path), qat_accuracy, float_accuracy, spec.epochs, time.perf_counter() - start)


def qat_file_name(engine: str) -> str:
    """What ``train --qat-epochs`` and the demo call an engine's QAT model (tf_keras QAT models reload from .h5 only)."""
    return "qat.keras" if engine == "keras" else "qat.h5"


def engine_fine_tune(model_or_path, spec, output_path: str, *, force: bool = False, unsafe: bool = False,
                     verbose: int = 0):
    """``spec.engine``'s QAT fine-tuning: :func:`qat_fine_tune` here, or tfmot's
    (:func:`keras_resnet.quant.quantize.qat_fine_tune`). Returns the engine's QATResult."""
    if spec.engine == "tfmot":
        from keras_resnet.quant.quantize import qat_fine_tune as tfmot_fine_tune

        return tfmot_fine_tune(model_or_path, spec, output_path, force=force, unsafe=unsafe, verbose=verbose)
    return qat_fine_tune(model_or_path, spec, output_path, force=force, unsafe=unsafe, verbose=verbose)


def qat_command(args) -> int:
    """``keras-resnet qat MODEL --engine keras|tfmot --dataset D --output OUT``."""
    from keras_resnet.spec.options import QATSpec, from_args

    spec = from_args(QATSpec, args)
    result = engine_fine_tune(args.model, spec, args.output, force=args.force, unsafe=args.unsafe, verbose=2)
    engine = "native Keras engine" if spec.engine == "keras" else "tfmot engine"
    print(f"float accuracy {result.float_accuracy:.4f}  QAT accuracy {result.accuracy:.4f}  "
          f"({result.epochs} epochs, {result.seconds:.0f} s, {engine}, backend {keras.backend.backend()})  "
          f"-> {result.path}")
    return 0
