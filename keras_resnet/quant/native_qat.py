"""Native Keras 3 quantization-aware training: rewrite a float model into QAT layers, calibrate, freeze, fine-tune.

:func:`quantize_model` rewrites a functional model (keras_resnet's, or a user's made of the same layer types)
into an ordinary Keras 3 functional model of the layers in :mod:`keras_resnet.quant.native_layers`:

- **Conv2D/DepthwiseConv2D/Dense**, with a following BatchNormalization folded in and a ReLU fused, become
  ``QATConv``;
- a **BatchNormalization that follows no conv** (ResNet V2's pre-activations, ``post_bn``) and the input
  **Normalization** become ``QATAffine`` (one int8 DEPTHWISE_CONV_2D after conversion);
- **Add, Subtract, Multiply, ReLU, Activation, global average pooling** become ``QATOutput`` (ReLU fused into an
  Add);
- **ZeroPadding2D, MaxPooling2D, AveragePooling2D, ChannelPadding, Flatten, Reshape, Dropout** pass through:
  TFLite runs them on int8 with the input's scale, exactly as the float op on fake-quantized values
  (AveragePooling2D: within half an input step, TFLite rounds the mean onto the input grid);
- the **input** gets a ``QATInput`` range.

Any other layer is refused by name (:class:`~keras_resnet.core.errors.ConfigError`). :func:`calibrate` sets the
activation ranges from data, :func:`freeze` stops ranges and BN statistics, :func:`fine_tune` is ``model.fit``,
:func:`save` writes ``.keras`` and :func:`qat_fine_tune` does all of it for a saved model. ``keras-resnet
convert`` turns the result into a fully int8 ``.tflite`` (TensorFlow backend): on TensorFlow,
``keras.quantizers.fake_quant_with_min_max_vars`` is ``tf.quantization.fake_quant_*``, which the TFLite
converter reads as quantization parameters.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np

from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_path, check_output
from keras_resnet.data import pipeline
from keras_resnet.quant.common import (
    QATResult,
    accuracy,
    affine_of,
    keras_history_refs,
    load_for_qat,
    ref_list,
    substitute,
)
from keras_resnet.quant.native_layers import (
    SOFTMAX_RANGE,
    WEIGHTED,
    QATAffine,
    QATConv,
    QATInput,
    QATOutput,
    is_native_qat,
    qat_layers,
)
from keras_resnet.train import jit as jit_lib

# Layer kinds the rewrite handles besides WEIGHTED (QATConv), by what it does with them.
_AFFINE = {"BatchNormalization", "Normalization"}
_OUTPUT = {"Add", "Subtract", "Multiply", "GlobalAveragePooling2D", "ReLU", "Activation"}
# TFLite runs these on int8 with the input's scale. Exact for all but AVERAGE_POOL_2D, which rounds the mean onto the
# input grid (<= 1/2 input LSB off the float mean Keras passes on); giving it an output range of its own made the
# converter add a QUANTIZE (requantize) op after it, which PTQ models do not have.
_PASS = {"ZeroPadding2D", "MaxPooling2D", "AveragePooling2D", "ChannelPadding", "Flatten", "Reshape", "Dropout"}


# ---- the graph rewrite ---------------------------------------------------------------------------------------


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
    if kind in WEIGHTED and config.get("activation") not in ("linear", "relu", "softmax"):
        raise ConfigError(f"layer {layer.name!r} ({kind}) has activation {config.get('activation')!r}; native QAT "
                          f"supports linear, relu and (Dense) softmax")
    if kind in WEIGHTED and (config.get("activation") == "softmax") != (kind == "Dense" and
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
    outputs = ref_list(config["output_layers"])
    output_names = {ref[0] for ref in outputs}

    def sole_consumer(name: str, kinds) -> str | None:
        """The one layer reading ``name``'s output if it is of ``kinds`` (and ``name`` is no model output)."""
        after = consumers[name]
        if len(after) != 1 or name in output_names:
            return None
        return after[0] if kinds(layers[after[0]]) else None

    def ref(name: str) -> tuple:
        """The keras_history of ``name``'s output: each layer is called once and has one output."""
        return (name, 0, 0)

    tensors: dict[tuple, object] = {}  # original layer's output -> new tensor (fused layers map to the fused output)
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
            tensors[ref(lname)] = QATInput(name=f"{lname}_quant", **schedule)(tensor)
            continue
        if type(layer).__name__ in ("Functional", "Sequential"):
            raise ConfigError(f"layer {lname!r} is a nested model; native QAT needs one flat functional graph")
        if kind not in WEIGHTED | _AFFINE | _OUTPUT | _PASS:
            raise ConfigError(f"layer {lname!r} ({spec.get('registered_name') or kind}) has no int8 rule in native "
                              f"QAT; supported: {', '.join(sorted(WEIGHTED | _AFFINE | _OUTPUT | _PASS))}")
        _check_layer(layer, tuple(layer.input.shape) if kind in _AFFINE else ())
        args = substitute(spec["inbound_nodes"][0].get("args", []), tensors)
        x = args[0] if len(args) == 1 else args
        last = lname  # the last original layer this new layer stands for
        if kind in WEIGHTED:
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
            tensors[ref(last)] = new(x)
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
            tensors[ref(last)] = new(x)
            affine = affine_of(layer)
            if affine is None:
                raise ConfigError(f"layer {lname!r} ({kind}) needs an NHWC input with known channels")
            scale, offset = affine
            new.scale.assign(scale)
            new.offset.assign(offset)
        elif kind in _OUTPUT:
            act = layer.get_config().get("activation") if kind == "Activation" else None
            if act == "linear":
                tensors[ref(lname)] = x
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
            tensors[ref(last)] = new(x)
        else:  # exact on int8 values with the input's scale
            tensors[ref(lname)] = _clone(layer)(x)
    missing = [o[0] for o in outputs if o not in tensors]
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
        raise ConfigError(f"{qat_model.name} has no native QAT layers; quantize it with native_qat.quantize_model first")
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


# ---- saving, fine-tuning, fine-tuning a saved model -------------------------------------------------------------------


def _check_output_name(path: str) -> None:
    if not str(path).endswith(".keras"):
        stem = os.path.splitext(str(path))[0]
        raise ConfigError(f"native QAT models are saved as .keras; use --output {stem}.keras")


def save(qat_model, path: str, *, force: bool = False, preprocessing: dict | None = None) -> str:
    """Save a native QAT model as ``.keras``, atomically (never over an existing file without ``force``), with the
    float model's recorded ``preprocessing`` (an imported model's crop and resize policy) inside."""
    from keras_resnet.io.preprocessing import attach_preprocessing

    path = os.fspath(path)
    _check_output_name(path)
    with atomic_path(path, force=force) as tmp:
        qat_model.save(tmp)
        if preprocessing is not None:
            attach_preprocessing(tmp, preprocessing)
    return path


def fine_tune(qat_model, x, y, *, epochs: int, batch_size: int = 64, learning_rate: float = 1e-3,
              validation: tuple | None = None, verbose: int = 0, seed: int = 0, jit: jit_lib.Jit | str = "auto"):
    """``model.fit`` with SGD (momentum 0.9): the same optimizer the tfmot engine uses; returns the History.
    ``jit``: ``--jit`` or a :class:`~keras_resnet.train.jit.Jit` (its ``used`` is set here)."""
    jit = jit_lib.choose(jit) if isinstance(jit, str) else jit
    keras.utils.set_random_seed(seed)
    last = qat_model.layers[-1]
    softmax = (isinstance(last, QATConv) and last.activation == "softmax") or (
        isinstance(last, QATOutput) and last.layer.get_config().get("activation") == "softmax")
    from_logits = not softmax
    qat_model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                      metrics=["accuracy"], jit_compile=jit.setting)
    jit.compiled(qat_model)
    train, val = pipeline.fit_pipelines(x, y, batch_size, validation=validation, seed=seed)
    return jit_lib.fit(qat_model, jit, train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False)


def qat_fine_tune(model_or_path, spec, output_path: str, *, force: bool = False, unsafe: bool = False,
                  verbose: int = 0) -> QATResult:
    """Quantize a trained Keras 3 model natively, calibrate, fine-tune on ``spec.dataset`` and save (``.keras``).

    Returns a :class:`~keras_resnet.quant.common.QATResult` (test accuracy before and after).
    """
    _check_output_name(output_path)
    check_output(output_path, force=force)
    start = time.perf_counter()
    job = load_for_qat(model_or_path, spec, unsafe=unsafe, keras3_only=True)
    x_train, y_train = job.train
    # BN statistics and ranges move until freeze() after the last epoch. Freezing them for the second of two epochs
    # cost 0.5-0.9 pt on Fashion-MNIST (ResNet-20/56, docs/results.md, stage q): the moving statistics went stale.
    qat = quantize_model(job.model)
    calibrate(qat, x_train)
    jit = jit_lib.choose(spec.jit, steps=-(-len(x_train) // spec.batch_size) * spec.epochs)
    if spec.epochs:
        fine_tune(qat, x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                  learning_rate=spec.learning_rate, validation=job.val, verbose=verbose, jit=jit)
    freeze(qat)
    qat_accuracy = accuracy(qat, *job.test)
    save(qat, output_path, force=force, preprocessing=job.preprocessing)
    return QATResult(os.fspath(output_path), qat_accuracy, job.float_accuracy, spec.epochs,
                     time.perf_counter() - start, jit.record() if spec.epochs else None)
