"""Quantization-aware training (QAT) of Keras 3 models with tensorflow-model-optimization (the ``tfmot`` engine).

tfmot 0.8.1 quantizes only tf_keras (Keras 2) models, so QAT works on the model's tf_keras twin
(:mod:`keras_resnet.quant.tf_keras_twin`, prepared for int8):

1. :func:`quantize_model` translates the model and applies tfmot's default 8-bit scheme. Layers tfmot has no
   rule for but TFLite runs in int8 (Rescaling, Subtract, Multiply, ...) get an output-only quantize config;
   the option-A ``ChannelPadding`` passes through. Nothing stays float after conversion.
2. :func:`calibrate_ranges` sets its activation ranges from data; :func:`fine_tune` trains it briefly (SGD,
   small learning rate); :func:`save_qat_model` (.h5) / :func:`keras_resnet.io.model_io.load_model` round-trip
   it; :func:`qat_fine_tune` does all of it for a saved model.

tfmot is imported lazily: importing it sets ``TF_USE_LEGACY_KERAS=1`` for the process. Its private parts
(two default 8-bit quantize configs, the moving-average quantizer) are reached through
:mod:`keras_resnet.core.compat`. This module never uses ``tf.keras``; it says ``keras`` (3) or ``tf_keras``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_path, atomic_write, check_output
from keras_resnet.data import pipeline
from keras_resnet.io.preprocessing import preprocessing_path
from keras_resnet.quant.common import QATResult, accuracy, load_for_qat
from keras_resnet.quant.tf_keras_twin import FOLDABLE_INTO, TranslationError, to_tf_keras
from keras_resnet.spec.commands import QATSpec
from keras_resnet.train import jit as jit_lib

# Layers without a tfmot rule that TFLite runs as one int8 op: quantize their output only.
_OUTPUT_ONLY = {"Rescaling", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Normalization",
                "BatchNormalization", "Activation", "ReLU"}


def is_qat_model(model) -> bool:
    """Whether ``model`` is a tfmot quantization-aware (tf_keras) model."""
    return any(type(layer).__name__.startswith(("QuantizeWrapper", "QuantizeLayer")) for layer in model.layers)


def save_qat_model(model, path: str, *, force: bool = False) -> str:
    """Save a tf_keras QAT model as ``.h5``, atomically; load it back with :func:`keras_resnet.io.model_io.load_model`.

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


def _annotate(twin):
    """Annotate every layer of a tf_keras twin for tfmot's default 8-bit scheme."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    q = tfmot.quantization.keras
    known = q.default_8bit.Default8BitQuantizeRegistry()
    configs = compat.tfmot_default_8bit_configs()

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if known.supports(layer):
            return q.quantize_annotate_layer(layer)
        kind = type(layer).__name__
        if kind == "ChannelPadding":  # zero channels: shares its input's quantization, as ZeroPadding2D
            return q.quantize_annotate_layer(layer, configs.no_op())
        if kind == "BatchNormalization":  # folded into its conv by tfmot's transforms
            inbound = compat.inbound_layer(layer)
            if type(inbound).__name__ in FOLDABLE_INTO and compat.outbound_count(inbound) == 1:
                return q.quantize_annotate_layer(layer)
        if kind in _OUTPUT_ONLY:
            return q.quantize_annotate_layer(layer, configs.output())
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
              validation: tuple | None = None, from_logits: bool = False, verbose: int = 0, seed: int = 0,
              jit: jit_lib.Jit | str = "auto"):
    """Train a QAT model briefly with SGD (momentum 0.9); returns the tf_keras History. ``jit``: ``--jit`` or a
    :class:`~keras_resnet.train.jit.Jit` for the TensorFlow backend (its ``used`` is set here).

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

    jit = jit_lib.choose(jit, backend="tensorflow") if isinstance(jit, str) else jit
    tf.random.set_seed(seed)
    qat_model.compile(
        optimizer=tf_keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
        jit_compile=None if jit.setting == jit_lib.KERAS_AUTO else jit.setting,  # tf_keras' "auto" is None
    )
    jit.compiled(qat_model)
    train, val = pipeline.fit_pipelines(x, y, batch_size, validation=validation, seed=seed)
    return jit_lib.fit(qat_model, jit, train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False,
                       callbacks=[KeepFrozen()] if frozen else None)


def qat_fine_tune(model_or_path, spec: QATSpec, output_path: str, *, force: bool = False, unsafe: bool = False,
                  verbose: int = 0) -> QATResult:
    """Quantize a trained Keras 3 model, fine-tune it on ``spec.dataset``'s train split and save it (``.h5``).

    Returns the saved path and the test-split accuracy before and after QAT. This is what
    ``keras-resnet train --qat-epochs N`` and ``keras-resnet qat --engine tfmot`` call.
    """
    _check_qat_output(output_path)
    check_output(output_path, force=force)
    start = time.perf_counter()
    job = load_for_qat(model_or_path, spec, unsafe=unsafe)
    x_train, y_train = job.train
    qat = quantize_model(job.model)
    calibrate_ranges(qat, x_train)
    # tf_keras runs on TensorFlow whatever KERAS_BACKEND says
    jit = jit_lib.choose(spec.jit, backend="tensorflow", steps=-(-len(x_train) // spec.batch_size) * spec.epochs)
    if spec.epochs:
        fine_tune(qat, x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                  learning_rate=spec.learning_rate, validation=job.val, from_logits=_from_logits(job.model),
                  verbose=verbose, jit=jit)
    qat_accuracy = accuracy(qat, *job.test)
    save_qat_model(qat, output_path, force=force)
    if job.preprocessing is not None:  # an .h5 holds no extra entry: the record goes next to it, where convert looks
        atomic_write(preprocessing_path(output_path), json.dumps(job.preprocessing, indent=1) + "\n", force=True)
    return QATResult(os.fspath(output_path), qat_accuracy, job.float_accuracy, spec.epochs,
                     time.perf_counter() - start, jit.record() if spec.epochs else None)
