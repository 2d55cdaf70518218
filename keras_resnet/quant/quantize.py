"""Quantization-aware training (QAT) of Keras 3 models with tensorflow-model-optimization.

tfmot 0.8.1 quantizes only tf_keras (Keras 2) models, so QAT works on a *tf_keras twin*:

1. :func:`to_tf_keras` walks any Keras 3 functional (or sequential, or nested) model's graph in order,
   rebuilds every layer in tf_keras from its class name and cleaned config, reconnects the inbound
   nodes (multi-input layers and shared layers included), copies the weights and checks on random
   input that the twin computes the same function (max |diff| ≈ 0).
2. With ``for_qat=True`` the twin is prepared for int8: a BatchNormalization that tfmot cannot fold
   into a preceding conv (the pre-activation BNs of ResNet V2, ``post_bn``) and the input
   ``Normalization`` become an equivalent 1×1 ``DepthwiseConv2D`` (scale = γ/√(σ²+ε), bias =
   β − μ·scale), which tfmot quantizes per channel and TFLite runs as one int8 op; the Normalization's
   conv is not trainable (see :func:`fine_tune`). Layers tfmot has no rule for but
   TFLite runs in int8 (Rescaling, Subtract, Multiply, ...) get an output-only quantize config; the
   option-A ``ChannelPadding`` passes through. Nothing stays float after conversion.
3. :func:`quantize_model` applies tfmot's default 8-bit scheme; :func:`calibrate_ranges` sets its
   activation ranges from data; :func:`fine_tune` trains it briefly (SGD, small learning rate);
   :func:`save_qat_model` (.h5) / :func:`load_model` round-trip it.

tfmot is imported lazily: importing it sets ``TF_USE_LEGACY_KERAS=1`` for the process. This module
never uses ``tf.keras``; it says ``keras`` (3) or ``tf_keras``.
"""

from __future__ import annotations

import inspect
import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError, DataError, ModelFileError
from keras_resnet.core.files import atomic_path, atomic_write, check_output
from keras_resnet.io.model_io import load_model, preprocessing_path, read_preprocessing
from keras_resnet.model.build import predict
from keras_resnet.quant.qat import keras_history_refs
from keras_resnet.spec.options import QATSpec

# Keras 3 config keys tf_keras does not know and whose default value changes nothing.
_BASE_KEYS = {"name", "trainable", "dtype"}
# Layers that carry code or are not layers tfmot or TFLite can see.
_REFUSED = {"Lambda", "TFOpLambda", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
# Layers without a tfmot rule that TFLite runs as one int8 op: quantize their output only.
_OUTPUT_ONLY = {"Rescaling", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Normalization",
                "BatchNormalization", "Activation", "ReLU"}
_FOLDABLE_INTO = {"Conv2D", "DepthwiseConv2D", "Dense"}
_NORM_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization divides by max(sqrt(var), epsilon)


class TranslationError(ModelFileError):
    """A Keras 3 model that cannot be rebuilt in tf_keras (Lambda, custom or unknown layers)."""


def is_qat_model(model) -> bool:
    """Whether ``model`` is a tfmot quantization-aware (tf_keras) model."""
    return any(type(layer).__name__.startswith(("QuantizeWrapper", "QuantizeLayer")) for layer in model.layers)


def save_qat_model(model, path: str, *, force: bool = False) -> str:
    """Save a tf_keras QAT model as ``.h5``, atomically; load it back with :func:`load_model`.

    Not ``.keras``: tf_keras 2.21's ``.keras`` format writes 3 of the 5 variables tfmot's QuantizeLayer
    tracks and then refuses to load the file; HDF5 round-trips exactly (tested).
    """
    path = os.fspath(path)
    _check_qat_output(path)
    import tensorflow_model_optimization as tfmot

    with atomic_path(path, force=force) as tmp, tfmot.quantization.keras.quantize_scope():
        model.save(tmp, include_optimizer=False)
    return path


def _check_qat_output(path: str) -> None:
    if not str(path).endswith(".h5"):
        stem = os.path.splitext(str(path))[0]
        raise ConfigError(f"QAT models are saved as .h5 (tf_keras cannot reload tfmot models from .keras); "
                        f"use --output {stem}.h5")


# ---- Keras 3 → tf_keras translation ------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Keras 3 serialized objects → the ``{"class_name", "config"}`` form tf_keras deserializes."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" or value.get("class_name") == "FloatDTypePolicy":
            return value.get("config", {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            if value.get("registered_name") not in (None, value["class_name"]):
                raise TranslationError(f"custom object {value['registered_name']!r} cannot be rebuilt in tf_keras")
            return {"class_name": value["class_name"], "config": _clean(value["config"])}
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    return value


def _layer_class(spec: dict):
    import tf_keras

    from keras_resnet.model.blocks import tf_keras_channel_padding

    name = spec["class_name"]
    if spec.get("registered_name") == "keras_resnet>ChannelPadding":
        return tf_keras_channel_padding()
    module = spec.get("module") or "keras.layers"
    if name in _REFUSED or spec.get("registered_name") not in (None, name) or not module.startswith("keras"):
        raise TranslationError(
            f"layer {spec['config'].get('name', '?')!r} ({spec.get('registered_name') or name}) cannot be "
            f"translated to tf_keras for QAT: only built-in Keras layers can; replace Lambda/custom layers "
            f"with built-in ones")
    cls = getattr(tf_keras.layers, name, None)
    if cls is None:
        raise TranslationError(f"layer {spec['config'].get('name', '?')!r}: tf_keras has no layer {name}")
    return cls


def _tf_keras_layer(spec: dict):
    cls = _layer_class(spec)
    config = _clean(spec["config"])
    accepted = set(_BASE_KEYS)
    for base in cls.__mro__:  # subclasses pass **kwargs on to their bases (BatchNormalization's renorm...)
        if "__init__" in vars(base):
            accepted |= set(inspect.signature(base.__init__).parameters)
    dropped = {k: v for k, v in config.items() if k not in accepted}
    meaningful = {k: v for k, v in dropped.items() if v not in (None, False, 0, 1, [], {}, "channels_last")}
    if meaningful:
        raise TranslationError(f"layer {config['name']!r} ({spec['class_name']}) uses Keras 3 options tf_keras "
                               f"lacks: {sorted(meaningful)}")
    # Weights are copied, so initializers do not matter (and Keras 3 adds arguments tf_keras lacks).
    config = {k: v for k, v in config.items() if k in accepted and not k.endswith("_initializer")}
    if spec["class_name"] == "Normalization":  # constants arrive as lists; tf_keras wants arrays
        for key in ("mean", "variance"):
            if config.get(key) is not None:
                config[key] = np.asarray(config[key], "float32")
    return cls.from_config(config)


def _as_numpy(value) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value), dtype="float32")


def _affine_of(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) per channel of a Keras 3 BatchNormalization / Normalization on the last axis."""
    kind = type(layer).__name__
    shape = layer.input.shape if hasattr(layer, "input") else None
    if shape is None or len(shape) != 4 or shape[-1] is None:
        return None
    c = int(shape[-1])
    if kind == "BatchNormalization":
        if layer.axis not in (-1, 3):
            return None
        gamma = _as_numpy(layer.gamma) if layer.scale else np.ones(c, "float32")
        beta = _as_numpy(layer.beta) if layer.center else np.zeros(c, "float32")
        scale = gamma / np.sqrt(_as_numpy(layer.moving_variance) + layer.epsilon)
        return scale, beta - _as_numpy(layer.moving_mean) * scale
    if kind == "Normalization":
        if getattr(layer, "invert", False) or tuple(layer.axis) not in ((-1,), (3,)):
            return None
        mean = np.broadcast_to(_as_numpy(layer.mean).reshape(-1), (c,))
        std = np.maximum(np.sqrt(np.broadcast_to(_as_numpy(layer.variance).reshape(-1), (c,))), _NORM_EPSILON)
        return (1.0 / std).astype("float32"), (-mean / std).astype("float32")
    return None


def _transfer(source, target) -> None:
    """Copy a Keras 3 layer's weights to its tf_keras twin, by weight name (order as a fallback)."""
    if not target.weights:
        return
    values = {w.name.split("/")[-1].split(":")[0]: _as_numpy(w) for w in source.weights}
    ordered = [values.get(w.name.split("/")[-1].split(":")[0]) for w in target.weights]
    if any(v is None for v in ordered):
        ordered = [_as_numpy(w) for w in source.weights]
    if len(ordered) != len(target.weights):
        raise TranslationError(f"layer {source.name!r}: {len(source.weights)} weights in Keras 3 but "
                               f"{len(target.weights)} in tf_keras")
    target.set_weights(ordered)


def _substitute(value, tensors: dict):
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return tensors[tuple(value["config"]["keras_history"])]
        return {k: _substitute(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_substitute(v, tensors) for v in value]
    return value


def _refs_list(value) -> list[tuple]:
    """``input_layers``/``output_layers``: one ``[name, node, index]`` or a list of them."""
    if len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)]
    return [tuple(v) for v in value]


class _Translator:
    def __init__(self, for_qat: bool):
        self.for_qat = for_qat
        self.standalone: set[str] = set()  # names of BN/Normalization layers rebuilt as depthwise convs
        self.built: dict[int, dict] = {}  # id(Keras 3 layer) → its twin (shared layers are built once)

    def model(self, model):
        import tf_keras

        inputs = [tf_keras.Input(batch_shape=tuple(t.shape), dtype=str(t.dtype).split(".")[-1],
                                 name=_input_name(t, i)) for i, t in enumerate(model.inputs)]
        outputs = self.call(model, inputs)
        single = not isinstance(model.output, (list, tuple, dict))
        return tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if single else outputs,
                              name=model.name)

    def call(self, model, inputs: list) -> list:
        """Rebuild ``model``'s graph in tf_keras on the tf_keras tensors ``inputs``; return its outputs."""
        kind = type(model).__name__
        if kind == "Sequential":
            x = inputs[0]
            for layer in model.layers:
                x = self.layer(layer, [x], None)[0]
            return [x]
        if kind != "Functional":
            raise TranslationError(f"model {model.name!r} ({kind}) is subclassed; only functional and sequential "
                                   f"models can be translated to tf_keras")
        config = model.get_config()
        tensors: dict[tuple, Any] = {}
        for ref, tensor in zip(_refs_list(config["input_layers"]), inputs, strict=True):
            tensors[ref] = tensor
        consumers: dict[str, int] = {}
        for spec in config["layers"]:
            for node in spec["inbound_nodes"]:
                for ref in keras_history_refs(node):
                    consumers[ref[0]] = consumers.get(ref[0], 0) + 1
        kinds = {spec["name"]: spec["class_name"] for spec in config["layers"]}
        for spec in config["layers"]:
            if spec["class_name"] == "InputLayer":
                continue
            layer = model.get_layer(spec["name"])
            for node_index, node in enumerate(spec["inbound_nodes"]):
                refs = keras_history_refs(node)
                foldable = (len(refs) == 1 and kinds.get(refs[0][0]) in _FOLDABLE_INTO
                            and consumers.get(refs[0][0]) == 1
                            and model.get_layer(refs[0][0]).get_config().get("activation") == "linear")
                args = _substitute(node.get("args", []), tensors)
                kwargs = _substitute(node.get("kwargs", {}), tensors)
                outputs = self.layer(layer, args, kwargs, spec=spec, foldable=foldable, node_index=node_index)
                for i, out in enumerate(outputs):
                    tensors[(spec["name"], node_index, i)] = out
        return [tensors[ref] for ref in _refs_list(config["output_layers"])]

    def layer(self, layer, args, kwargs, *, spec=None, foldable=False, node_index=0) -> list:
        import tf_keras

        kind = type(layer).__name__
        if kind in ("Functional", "Sequential"):
            flat = [a for a in (args[0] if len(args) == 1 and isinstance(args[0], list) else args)]
            outs = self.call(layer, flat)
            return outs
        if kind == "InputLayer":
            return list(args)
        if spec is None:
            import keras

            spec = keras.saving.serialize_keras_object(layer)
        cache = self.built.setdefault(id(layer), {})
        if "layer" not in cache:
            affine = None
            if self.for_qat and kind in ("BatchNormalization", "Normalization") and not foldable:
                affine = _affine_of(layer)
            if affine is not None:
                twin = tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name,
                                                       trainable=layer.trainable and kind != "Normalization")
                cache.update(layer=twin, affine=affine)
                self.standalone.add(layer.name)
            else:
                cache.update(layer=_tf_keras_layer(spec), affine=None)
        twin = cache["layer"]
        call_args = list(args) if isinstance(args, (list, tuple)) else [args]
        if len(call_args) == 1 and isinstance(call_args[0], list) and len(call_args[0]) == 1 and kind not in (
                "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"):
            call_args = call_args[0]
        kwargs = {k: v for k, v in (kwargs or {}).items() if k not in ("training", "mask") or v is not None}
        out = twin(*call_args, **kwargs)
        if not cache.get("weighted"):
            if cache["affine"] is not None:
                scale, offset = cache["affine"]
                twin.set_weights([scale.reshape(1, 1, -1, 1), offset])
            else:
                _transfer(layer, twin)
            cache["weighted"] = True
        return list(out) if isinstance(out, (list, tuple)) else [out]


def _input_name(tensor, index: int) -> str:
    name = getattr(tensor, "name", None) or f"input_{index}"
    return name.split(":")[0].replace("/", "_")


def to_tf_keras(model, *, for_qat: bool = False, check: bool = True, atol: float = 1e-4):
    """Rebuild a Keras 3 functional/sequential model in tf_keras with the same weights.

    ``for_qat`` also rewrites unfoldable BatchNormalization and Normalization layers as equivalent 1×1
    depthwise convs (see the module docstring). ``check`` runs both models on the same random input and
    raises if their outputs differ by more than ``atol`` (relative to the output scale).
    """
    translator = _Translator(for_qat)
    twin = translator.model(model)
    if check:
        diff = parity(model, twin)
        if diff > atol:
            raise TranslationError(f"the tf_keras twin of {model.name} differs from it by {diff:.3g} (> {atol}); "
                                   f"a layer's config did not translate faithfully")
    return twin


def parity(model, twin, *, samples: int = 2, seed: int = 0) -> float:
    """Max |Keras 3 − tf_keras| over outputs on random input (pixels in [0, 255] for image models),
    divided by max(1, max |output|)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for t in model.inputs:
        shape = (samples, *[d or 32 for d in t.shape[1:]])
        feeds.append(rng.uniform(0, 255, shape).astype("float32") if len(shape) == 4
                     else rng.normal(size=shape).astype("float32"))
    with warnings.catch_warnings():  # Keras 3 warns when a list-input model gets a bare tensor
        warnings.simplefilter("ignore")
        ours = model(feeds[0] if len(feeds) == 1 else feeds, training=False)
        theirs = twin(feeds[0] if len(feeds) == 1 else feeds, training=False)
    ours = [ours] if not isinstance(ours, (list, tuple, dict)) else list(ours.values() if isinstance(ours, dict) else ours)
    theirs = [theirs] if not isinstance(theirs, (list, tuple, dict)) else list(
        theirs.values() if isinstance(theirs, dict) else theirs)
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        a, b = _as_numpy(a), np.asarray(b, "float32")
        worst = max(worst, float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(a)))))
    return worst


# ---- QAT ---------------------------------------------------------------------------------------------------


def _annotate(twin):
    """Annotate every layer of a tf_keras twin for tfmot's default 8-bit scheme."""
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    q = tfmot.quantization.keras
    known = registry.Default8BitQuantizeRegistry()

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if known.supports(layer):
            return q.quantize_annotate_layer(layer)
        kind = type(layer).__name__
        if kind == "ChannelPadding":  # zero channels: shares its input's quantization, as ZeroPadding2D
            return q.quantize_annotate_layer(layer, configs.NoOpQuantizeConfig())
        if kind == "BatchNormalization":  # folded into its conv by tfmot's transforms
            inbound = compat.inbound_layer(layer)
            if type(inbound).__name__ in _FOLDABLE_INTO and compat.outbound_count(inbound) == 1:
                return q.quantize_annotate_layer(layer)
        if kind in _OUTPUT_ONLY:
            return q.quantize_annotate_layer(layer, configs.Default8BitOutputQuantizeConfig())
        raise TranslationError(f"layer {layer.name!r} ({kind}) has no 8-bit quantization rule; QAT supports "
                               f"the layers of keras_resnet's models and common Keras layers")

    return tf_keras.models.clone_model(twin, clone_function=annotate)


def quantize_model(model, *, check: bool = True):
    """A tf_keras QAT copy of a Keras 3 model (or of a tf_keras model), with its weights.

    Every keras_resnet family quantizes to full int8: v1/v1.5/D, CIFAR option-A shortcuts, plain,
    highway and pre-activation V2 nets. Raises :class:`TranslationError` naming the first layer that
    cannot be translated or quantized.
    """
    import tensorflow_model_optimization as tfmot

    if is_qat_model(model):
        return model
    twin = model if type(model).__module__.startswith("tf_keras") else to_tf_keras(model, for_qat=True,
                                                                                   check=check)
    with tfmot.quantization.keras.quantize_scope():
        try:
            qat = tfmot.quantization.keras.quantize_apply(_annotate(twin))
        except (RuntimeError, ValueError) as error:
            raise TranslationError(f"tfmot could not quantize {model.name}: {str(error).splitlines()[0]}") from error
    return qat


def calibrate_ranges(qat_model, x, *, batches: int = 8, batch_size: int = 64, seed: int = 0) -> None:
    """Set the QAT model's activation ranges from data before fine-tuning (or instead of it).

    tfmot's moving-average quantizers start at [-6, 6] and move with an EMA decay of 0.999, so a short
    fine-tune (a few hundred steps) keeps ranges that clip raw pixels and wide activations. Here the
    model runs eagerly in training mode with BatchNormalization frozen (inference statistics, no
    updates) while the quantizers average the per-batch ranges (decay k/(k+1) at batch k); weight
    ranges are set too. Nothing else changes.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[: batches * batch_size]
    frozen = []
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ == "BatchNormalization" and inner.trainable:
            inner.trainable = False
            frozen.append(inner)
    try:
        with compat.cumulative_range_averaging() as next_batch:
            for start in range(0, len(order), batch_size):
                qat_model(np.asarray(x[order[start:start + batch_size]], "float32"), training=True)
                next_batch()
    finally:
        for layer in frozen:
            layer.trainable = True


def _from_logits(model) -> bool:
    last = model.layers[-1]
    activation = last.get_config().get("activation") if hasattr(last, "get_config") else None
    return not (activation == "softmax" or type(last).__name__ == "Softmax")


def fine_tune(qat_model, x, y, *, epochs: int, batch_size: int = 64, learning_rate: float = 1e-3,
              validation: tuple | None = None, from_logits: bool = False, verbose: int = 0, seed: int = 0):
    """Train a QAT model briefly with SGD (momentum 0.9); returns the tf_keras History.

    Frozen layers stay frozen: tfmot's QuantizeWrapper trains the weights it quantizes even when its
    layer is not trainable, so their values are put back after every step (the input Normalization,
    rebuilt as a depthwise conv, took ~50× larger gradients than any other layer from 0–255 pixels and
    one epoch took ResNet-20 to chance).
    """
    import tensorflow as tf
    import tf_keras

    frozen = [w for layer in qat_model.layers if not getattr(layer, "layer", layer).trainable
              for w in layer.trainable_weights]
    values = [w.numpy() for w in frozen]

    class KeepFrozen(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for weight, value in zip(frozen, values, strict=True):
                weight.assign(value)

    tf.random.set_seed(seed)
    qat_model.compile(
        optimizer=tf_keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    return qat_model.fit(np.asarray(x, "float32"), np.asarray(y), epochs=epochs, batch_size=batch_size,
                         validation_data=None if validation is None else
                         (np.asarray(validation[0], "float32"), np.asarray(validation[1])),
                         verbose=verbose, shuffle=True, callbacks=[KeepFrozen()] if frozen else None)


def accuracy(model, x, y, batch_size: int = 128) -> float:
    """Top-1 accuracy of a Keras 3 or tf_keras model on float32 pixels."""
    predictions = predict(model, x, batch_size)
    return float(np.mean(np.argmax(predictions, -1) == np.asarray(y).reshape(-1)))


@dataclass
class QATResult:
    path: str
    accuracy: float  # QAT model, test split
    float_accuracy: float  # the model before QAT, test split
    epochs: int
    seconds: float


def qat_fine_tune(model_or_path, spec: QATSpec, output_path: str, *, force: bool = False, unsafe: bool = False,
                  verbose: int = 0) -> QATResult:
    """Quantize a trained Keras 3 model, fine-tune it on ``spec.dataset``'s train split and save it (``.h5``).

    Returns the saved path and the test-split accuracy before and after QAT. This is what
    ``keras-resnet train --qat-epochs N`` and ``keras-resnet qat`` call.
    """
    from keras_resnet.data import datasets as data

    _check_qat_output(output_path)
    check_output(output_path, force=force)
    from_file = isinstance(model_or_path, (str, os.PathLike))
    model = load_model(model_or_path, unsafe=unsafe) if from_file else model_or_path
    preprocessing = read_preprocessing(model_or_path) if from_file else None
    start = time.perf_counter()
    size = model.inputs[0].shape[1]  # folder datasets are decoded at the model's input size (others ignore it)
    folder = {"image_size": int(size)} if size is not None else {}
    x_train, y_train = data.load(spec.dataset, "train", spec.data_dir, **folder)
    x_val, y_val = data.load(spec.dataset, "val", spec.data_dir, **folder)
    x_test, y_test = data.load(spec.dataset, "test", spec.data_dir, **folder)
    check_images(model, x_train, spec.dataset)
    float_accuracy = accuracy(model, x_test, y_test)
    qat = quantize_model(model)
    calibrate_ranges(qat, x_train)
    if spec.epochs:
        fine_tune(qat, x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                  learning_rate=spec.learning_rate, validation=(x_val, y_val), from_logits=_from_logits(model),
                  verbose=verbose)
    qat_accuracy = accuracy(qat, x_test, y_test)
    save_qat_model(qat, output_path, force=force)
    if preprocessing is not None:  # an .h5 holds no extra entry: the record goes next to it, where convert looks
        atomic_write(preprocessing_path(output_path), json.dumps(preprocessing, indent=1) + "\n", force=True)
    return QATResult(os.fspath(output_path), qat_accuracy, float_accuracy, spec.epochs, time.perf_counter() - start)


def check_images(model, images: np.ndarray, source: str) -> None:
    """Refuse images whose H×W×C does not match the model's input."""
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(images.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got, strict=False)):
        raise DataError(f"{source} images are {'×'.join(map(str, got))} but the model expects "
                        f"{'×'.join('?' if d is None else str(d) for d in expected)}")
