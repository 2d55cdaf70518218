"""Residual, highway and plain blocks as functions from a Keras tensor to a Keras tensor.

Every block is made of plain Keras layers (no Lambda, no subclassed blocks), so tfmot and the TFLite
converter see each one; option A's zero channels are one registered, serializable :class:`ChannelPadding`. The layer library is taken from the input tensor: a Keras 3 tensor gets
``keras.layers``, a tf_keras (Keras 2) tensor gets ``tf_keras.layers`` — the same code builds both twins.

Layer names follow keras.applications: ``{name}_{i}_conv|bn|relu|pad`` for the i-th conv of the branch,
``{name}_0_*`` for the shortcut, ``{name}_preact_bn|relu`` (v2), ``{name}_add`` and ``{name}_out``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
from types import ModuleType
from typing import Any

import keras

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.specs import BlockOptions, se_channels

GATE_BIAS = -2.0  # highway gates start closed: the block first carries its input

# Branch layouts: (kernel size, channels as a multiple of `filters`, whether `width` scales it).
BRANCHES: dict[str, tuple[tuple[int, int, bool], ...]] = {
    "basic": ((3, 1, True), (3, 1, True)),
    "bottleneck": ((1, 1, True), (3, 1, True), (1, 4, False)),
}


# Scoped, not global: set only inside ``with tflite_tracing():`` of the thread (or task) that converts; the value
# is how ChannelPadding's subsampling is traced (one of SUBSAMPLE_TRACES), None outside.
_TRACING: contextvars.ContextVar[str | None] = contextvars.ContextVar("keras_resnet_tflite_tracing", default=None)
SUBSAMPLE_TRACES = ("space_to_depth", "max_pool")


@contextlib.contextmanager
def tflite_tracing(subsample: str = "space_to_depth"):
    """Trace :class:`ChannelPadding` for the TFLite converter inside this block.

    Its zero channels become a plain Pad. TensorFlow runs them as PadV2 (the pad value a tensor): its oneDNN
    graph rewrite segfaults on a plain Pad in pre-activation blocks (TF 2.21). The TFLite int8 quantizer, though,
    leaves the neighbouring strided conv in float next to a PADV2, and exports are never run by TensorFlow.

    Its subsampling becomes ``subsample``: ``space_to_depth`` (SPACE_TO_DEPTH + channel slice, which XNNPACK
    takes: one CPU partition) or ``max_pool`` (a 1x1/stride-2 MAX_POOL_2D, which XNNPACK refuses but TFLite runs
    in int16 too: it has no int16 SPACE_TO_DEPTH, so ai-edge-quantizer's int16 recipe would leave that float).
    """
    if subsample not in SUBSAMPLE_TRACES:
        raise ValueError(f"subsample must be one of {SUBSAMPLE_TRACES}, not {subsample!r}")
    token = _TRACING.set(subsample)
    try:
        yield
    finally:
        _TRACING.reset(token)


def _pad_value(ops, dtype):
    return 0 if _TRACING.get() else ops.zeros((), dtype=dtype)


@keras.saving.register_keras_serializable("keras_resnet")
class ChannelPadding(keras.layers.Layer):
    """Option A's shortcut: subsample by ``stride`` (``x[:, ::stride, ::stride]``), then append ``padding`` zero
    channels. Exact in int8: every TFLite op it becomes shares its input's quantization.

    The one non-built-in layer of the package. ``Rescaling(0)`` + ``Concatenate`` would do the channels with
    built-in layers, but the TFLite calibrator gives that all-zero tensor a degenerate int8 scale (~1e-41) and the
    interpreter crashes on it. tfmot passes this layer through unquantized, as it does ZeroPadding2D.

    Why the subsampling is in here, not a ``MaxPooling2D(1, strides=2)`` (what files saved by earlier versions
    hold; they still load and convert): XNNPACK refuses 1x1 pooling windows, and stride-2 STRIDED_SLICEs too, so
    each of those splits the CPU graph into one more XNNPACK partition. Traced for TFLite (:func:`tflite_tracing`)
    this layer is SPACE_TO_DEPTH + a channel slice + PAD, all three XNNPACK ops: an option-A ResNet runs as one
    partition (docs/benchmarks.md: 8-12% off int8 latency on a VNNI CPU).
    """

    def __init__(self, padding: int, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding, self.stride = _checked(padding, stride)

    def call(self, x):
        x = _subsample(x, self.stride)
        # PadV2 at run time, Pad when traced for TFLite: see tflite_tracing()
        return keras.ops.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[0, self.padding]],
                             constant_values=_pad_value(keras.ops, x.dtype))

    def compute_output_shape(self, shape):
        return _padded_shape(shape, self.padding, self.stride)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "stride": self.stride}


def _checked(padding, stride) -> tuple[int, int]:
    """ChannelPadding's arguments, refused (ValueError) unless padding >= 0 and stride >= 1: a saved file's config
    is untrusted input."""
    padding, stride = int(padding), int(stride)
    if padding < 0 or stride < 1:
        raise ValueError(f"ChannelPadding needs padding >= 0 and stride >= 1, not padding={padding}, stride={stride}")
    return padding, stride


def _subsample(x, stride: int):
    """``x[:, ::stride, ::stride, :]``; traced for TFLite, SPACE_TO_DEPTH and a channel slice (one XNNPACK
    partition, see :class:`ChannelPadding`): the first ``channels`` outputs of space-to-depth are the top-left
    pixel of every ``stride × stride`` cell."""
    if stride == 1:
        return x
    tracing = _TRACING.get()
    if not tracing:
        return x[:, ::stride, ::stride, :]
    import tensorflow as tf  # tracing for the TFLite converter is TensorFlow's

    if tracing == "max_pool":
        return tf.nn.max_pool2d(x, 1, stride, "VALID")

    height, width, depth = x.shape[1], x.shape[2], x.shape[3]
    if height % stride or width % stride:  # odd sizes: x[::2] keeps the last row, so pad one on
        x = tf.pad(x, [[0, 0], [0, -height % stride], [0, -width % stride], [0, 0]])
    return tf.nn.space_to_depth(x, stride)[..., :depth]


def _padded_shape(shape, padding: int, stride: int) -> tuple:
    spatial = [None if d is None else -(-d // stride) for d in shape[1:-1]]
    return (shape[0], *spatial, None if shape[-1] is None else shape[-1] + padding)


@functools.cache
def tf_keras_channel_padding() -> type:
    """The tf_keras (Keras 2) twin of :class:`ChannelPadding`, registered under the same name."""
    import tensorflow as tf
    import tf_keras

    @tf_keras.saving.register_keras_serializable("keras_resnet")
    class ChannelPadding(tf_keras.layers.Layer):
        __doc__ = globals()["ChannelPadding"].__doc__

        def __init__(self, padding: int, stride: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.padding, self.stride = _checked(padding, stride)

        def call(self, x):
            return tf.pad(_subsample(x, self.stride), [[0, 0]] * (len(x.shape) - 1) + [[0, self.padding]],
                          constant_values=_pad_value(tf, x.dtype))

        def compute_output_shape(self, shape):
            return tf.TensorShape(_padded_shape(tuple(tf.TensorShape(shape).as_list()), self.padding, self.stride))

        def get_config(self):
            return {**super().get_config(), "padding": self.padding, "stride": self.stride}

    return ChannelPadding


def keras_lib(x: Any) -> ModuleType:
    """The Keras library a tensor belongs to: ``tf_keras`` for Keras 2 tensors, else ``keras``."""
    root = type(x).__module__.split(".")[0]
    return importlib.import_module("tf_keras" if root in ("tf_keras", "tensorflow") else "keras")


def channels(x: Any) -> int:
    return int(x.shape[-1])


def conv(x, filters: int, kernel: int, name: str, opts: BlockOptions, *, stride: int = 1,
         bias: bool = False, pad: bool = False, zero: bool = False, groups: int = 1):
    """Conv2D with the model's initializer and decay; ``pad`` uses an explicit symmetric ZeroPadding2D (unless
    ``opts.conv_padding`` is "same")."""
    lib = keras_lib(x)
    padding = "same"
    if kernel > 1 and pad and opts.conv_padding == "explicit":
        x = lib.layers.ZeroPadding2D(kernel // 2, name=name.replace("_conv", "_pad"))(x)
        padding = "valid"
    decay = lib.regularizers.L2(opts.weight_decay / 2) if opts.weight_decay else None
    return lib.layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, use_bias=bias or opts.use_bias, groups=groups,
        kernel_initializer="zeros" if zero else opts.kernel_initializer, kernel_regularizer=decay, name=name,
    )(x)


def bn(x, name: str, opts: BlockOptions, *, zero: bool = False):
    return keras_lib(x).layers.BatchNormalization(
        axis=-1, momentum=opts.bn_momentum, epsilon=opts.bn_epsilon, gamma_initializer="zeros" if zero else "ones",
        name=name,
    )(x)


def relu(x, name: str):
    return keras_lib(x).layers.Activation("relu", name=name)(x)


def squeeze_excite(x, name: str, opts: BlockOptions):
    """timm's SEModule as plain layers: mean → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → sigmoid → scale.

    ``{name}_se_reduce`` / ``{name}_se_expand`` are timm's ``se.fc1`` / ``se.fc2``; the 1×1 convs on a 1×1 map
    become TFLite CONV_2D and the scale a broadcast MUL, both int8 kernels.
    """
    lib = keras_lib(x)
    c = channels(x)
    decay = lib.regularizers.L2(opts.weight_decay / 2) if opts.weight_decay else None
    s = lib.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = lib.layers.Conv2D(se_channels(c, opts.se_ratio), 1, kernel_initializer=opts.kernel_initializer,
                          kernel_regularizer=decay, name=f"{name}_se_reduce")(s)
    s = relu(s, f"{name}_se_relu")
    s = lib.layers.Conv2D(c, 1, kernel_initializer=opts.kernel_initializer, kernel_regularizer=decay,
                          name=f"{name}_se_expand")(s)
    s = lib.layers.Activation("sigmoid", name=f"{name}_se_gate")(s)
    return lib.layers.Multiply(name=f"{name}_se_scale")([x, s])


def branch_widths(kind: str, filters: int, opts: BlockOptions) -> list[int]:
    """Channels of each conv of a ``kind`` branch. Bottlenecks follow timm/torchvision:
    ``floor(filters · base_width / 64) · cardinality`` inside (times ``width``), ``4 · filters`` out."""
    if kind == "basic" and (opts.cardinality != 1 or opts.base_width != 64):
        raise ConfigError("basic blocks support only cardinality=1 and base_width=64 (as timm and torchvision)")
    inner = filters * opts.base_width // 64 * opts.cardinality
    return [int(round((inner if widen else filters) * mult * (opts.width if widen else 1)))
            for _, mult, widen in BRANCHES[kind]]


def shortcut(x, preact, out_channels: int, stride: int, name: str, opts: BlockOptions):
    """The carry path: identity, subsample (+ zero channels, option A) or 1×1 projection (B/C, D), normalised in v1
    blocks unless ``opts.shortcut_bn`` is False.

    ``preact`` is the pre-activated input of a v2 block (projections read it, identities read ``x``).
    """
    lib = keras_lib(x)
    grows = channels(x) != out_channels
    if opts.shortcut == "C" or (opts.shortcut == "B" and grows):
        source = preact
        if opts.avg_down and stride > 1:
            source = lib.layers.AveragePooling2D(stride, strides=stride, padding="same", name=f"{name}_0_pool")(source)
            stride = 1
        normalised = opts.shortcut_bn and not opts.preact
        y = conv(source, out_channels, 1, f"{name}_0_conv", opts, stride=stride, bias=not normalised)
        return bn(y, f"{name}_0_bn", opts) if normalised else y
    if grows:  # option A: subsample + zero channels, as fb.resnet.torch's Concat(Identity, MulConstant(0))
        if out_channels < channels(x):
            raise ConfigError(f"{name}: shortcut option 'A' cannot reduce channels ({channels(x)} -> {out_channels}); "
                             f"use shortcut='B'")
        padding = ChannelPadding if lib is keras else tf_keras_channel_padding()
        return padding(out_channels - channels(x), stride=stride, name=f"{name}_0_pad")(x)
    if stride > 1:
        x = lib.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    return x


def drop_path(y, rate: float, name: str):
    """Stochastic depth on a residual branch: ``Dropout`` with ``noise_shape=(None, 1, 1, 1)``.

    In training it zeroes the whole branch of a sample with probability ``rate`` and scales the kept ones by
    ``1 / (1 - rate)`` (timm's ``drop_path``); at inference it is the identity. A built-in layer, not a custom
    one: tfmot passes Dropout through, safe loading needs no new class, and the TFLite converter removes it
    (tests/test_recipe.py compares the op lists).
    """
    if not rate:
        return y
    return keras_lib(y).layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(y)


def block(x, filters: int, kind: str = "basic", *, stride: int = 1, name: str = "block",
          opts: BlockOptions = BlockOptions(), drop_rate: float = 0.0):
    """One block: a branch of ``BRANCHES[kind]`` convs, joined to its input as ``opts.skip`` says.

    ``drop_rate``: this block's stochastic-depth rate (residual blocks only; see :func:`drop_path`).
    """
    layout = BRANCHES[kind]
    stride_at = next(i for i, (k, _, _) in enumerate(layout) if k == 3) if opts.stride_on == "3x3" else 0
    widths = branch_widths(kind, filters, opts)
    out_channels = widths[-1]
    lib = keras_lib(x)

    y = x
    if opts.preact:
        y = relu(bn(x, f"{name}_preact_bn", opts), f"{name}_preact_relu")
    carry = None if opts.skip == "none" else shortcut(x, y, out_channels, stride, name, opts)

    last = len(layout)
    for i, ((kernel, _, _), n) in enumerate(zip(layout, widths, strict=True), start=1):
        s = stride if i - 1 == stride_at else 1
        final = i == last
        y = conv(y, n, kernel, f"{name}_{i}_conv", opts, stride=s, bias=opts.preact and final,
                 pad=opts.preact or s > 1, zero=opts.zero_init and opts.preact and final,
                 groups=opts.cardinality if kernel == 3 and kind == "bottleneck" else 1)
        if not (opts.preact and final):
            y = bn(y, f"{name}_{i}_bn", opts, zero=opts.zero_init and final)
        if not final:
            y = relu(y, f"{name}_{i}_relu")
    if opts.se_ratio:
        y = squeeze_excite(y, name, opts)

    if carry is None:
        return y if opts.preact else relu(y, f"{name}_out")
    if opts.skip == "highway":
        # y = H·T + carry·(1 − T) = carry + T·(H − carry), with T = sigmoid(conv1x1(carry) + b), b < 0.
        gate = lib.layers.Conv2D(
            out_channels, 1, bias_initializer=lib.initializers.Constant(GATE_BIAS), name=f"{name}_gate_conv"
        )(carry)
        gate = lib.layers.Activation("sigmoid", name=f"{name}_gate")(gate)
        delta = lib.layers.Subtract(name=f"{name}_delta")([y, carry])
        y = lib.layers.Multiply(name=f"{name}_gated")([gate, delta])
    elif drop_rate:
        y = drop_path(y, drop_rate, name)
    if opts.preact:
        return lib.layers.Add(name=f"{name}_out")([carry, y])
    return relu(lib.layers.Add(name=f"{name}_add")([carry, y]), f"{name}_out")


def basic_block(x, filters: int, *, stride: int = 1, name: str = "block", opts: BlockOptions = BlockOptions()):
    """Two 3×3 convs; output has ``filters · width`` channels (Wide ResNets widen the whole block)."""
    return block(x, filters, "basic", stride=stride, name=name, opts=opts)


def bottleneck_block(x, filters: int, *, stride: int = 1, name: str = "block",
                     opts: BlockOptions = BlockOptions()):
    """1×1 → 3×3 → 1×1 convs; output has ``4 · filters`` channels (``width`` widens the inner two)."""
    return block(x, filters, "bottleneck", stride=stride, name=name, opts=opts)


def stack(x, filters: int, blocks: int, kind: str, *, stride: int, name: str, opts: BlockOptions,
          stride_last: bool = False, drop_rates: tuple[float, ...] = ()):
    """``blocks`` blocks named ``{name}_block{i}``; the stride goes on the first (or, keras V2, the last).

    ``drop_rates``: each block's stochastic-depth rate (empty: none).

    Returns ``(output, feature)``: the feature is the stage's last tensor at its working resolution.
    """
    feature = x
    for i in range(1, blocks + 1):
        s = stride if (i == blocks if stride_last else i == 1) else 1
        if s > 1 and i > 1:
            feature = x
        x = block(x, filters, kind, stride=s, name=f"{name}_block{i}", opts=opts,
                  drop_rate=drop_rates[i - 1] if drop_rates else 0.0)
    return x, (feature if stride_last and stride > 1 else x)
