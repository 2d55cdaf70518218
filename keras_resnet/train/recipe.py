"""He et al.'s recipe as Keras objects: the model for a dataset, its optimizer, loss and metrics, label transforms.

Recipe (He et al. 2015, CIFAR-10): SGD with momentum 0.9, learning rate 0.1 per 128 images
(``lr = 0.1 · batch / 128``), weight decay 1e-4 (the builders' ``weight_decay``, gradient ``wd · w``),
learning rate ÷10 at 50% and 75% of the training steps (or ``schedule="cosine"``), optional constant
warm-up at lr/10 (their ResNet-110 trick), 4-pixel pad + random crop + horizontal flip (the data pipelines).
The moving average of the weights (``ema_decay``) lives in the optimizer: :func:`swap_ema` exchanges it with the
weights, to validate and publish the average.
"""

from __future__ import annotations

import contextlib
from typing import Any

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError
from keras_resnet.data import datasets as data_lib
from keras_resnet.model.schedules import ResNetSchedule
from keras_resnet.spec.recipe import Recipe
from keras_resnet.spec.specs import model_spec


def model_for_dataset(name: str, info: data_lib.DatasetInfo, *, mean=None, variance=None,
                      mixed_precision: bool = False, **builder_kwargs):
    """``Input (float32 pixels 0–255) → Normalization(name="normalization") → builder`` as one functional model.

    The per-channel constants default to ``info.mean``/``info.variance`` (the training split's), so a
    saved model carries them and is fed raw pixels. The model is named after the builder (e.g. "resnet20").
    With ``mixed_precision`` the layers compute in float16 and the classifier in float32.
    """
    import keras

    from keras_resnet.model.registry import build_model

    key, _ = model_spec(name)
    mean = info.mean if mean is None else mean
    variance = info.variance if variance is None else variance
    kwargs = {"classes": info.num_classes, "weights": None, **builder_kwargs}
    with _dtype_policy("mixed_float16" if mixed_precision else None):
        inputs = keras.Input(info.image_shape, name="image")
        x = keras.layers.Normalization(mean=list(mean), variance=list(variance), name="normalization")(inputs)
        model = build_model(key, input_tensor=x, name=key, **kwargs)
        if mixed_precision:  # softmax and the loss in float32: rebuild the classifier with a float32 policy
            def clone(layer):
                config = layer.get_config()
                if layer.name == "predictions":
                    config["dtype"] = "float32"
                return layer.__class__.from_config(config)

            model = keras.models.clone_model(model, clone_function=clone)
    return model


@contextlib.contextmanager
def _dtype_policy(policy: str | None):
    import keras

    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compile_model(model, recipe: Recipe, steps_per_epoch: int, num_classes: int, *,
                  jit_compile: bool | str = "auto") -> None:
    """SGD + momentum with the recipe's schedule, sparse cross-entropy, accuracy (and top-5 above 5 classes).

    One-hot targets (label smoothing, mixup/cutmix, BCE: ``recipe.one_hot``) take the categorical loss and
    metrics. ``loss="bce"``: Keras' BinaryCrossentropy, which on a softmax output reads the classifier's logits
    (Keras' ``_keras_logits``), so it is timm's sigmoid BCE on the logits (tests/test_recipe.py checks the value).
    ``ema_decay``: the optimizer keeps the moving average (Keras' ``use_ema``), saved with its state.
    ``jit_compile``: XLA or not, as :mod:`keras_resnet.train.jit` decides (``"auto"``: Keras' choice).
    """
    import keras

    schedule = ResNetSchedule(
        recipe.base_lr(), recipe.epochs * steps_per_epoch, int(round(recipe.warmup_epochs * steps_per_epoch)),
        recipe.base_lr() * recipe.warmup_factor, recipe.schedule)
    metrics: list[Any] = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    if recipe.one_hot:  # Keras' smoothing needs one-hot labels: see one_hot_labels()
        if recipe.loss == "bce":  # smoothing timm's way, in the targets (smooth_labels): Keras' BCE one is binary
            loss = keras.losses.BinaryCrossentropy()
        else:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if num_classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
    else:
        loss = "sparse_categorical_crossentropy"
    ema = {"use_ema": True, "ema_momentum": recipe.ema_decay} if recipe.ema_decay else {}
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=recipe.momentum, **ema), loss=loss,
                  metrics=metrics, jit_compile=jit_compile)


def one_hot_labels(dataset, num_classes: int):
    """``(image, int label)`` batches → ``(image, one-hot label)``, for the label-smoothed loss."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)


def smooth_labels(dataset, smoothing: float, num_classes: int):
    """One-hot/soft label rows ``y`` → ``y · (1 − s) + s / K`` (timm's smoothing, for the BCE loss)."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, y * (1.0 - smoothing) + smoothing / num_classes),
                       num_parallel_calls=tf.data.AUTOTUNE)


def ema_variables(model) -> list[tuple]:
    """``(model variable, its moving average)`` pairs of a model compiled with ``ema_decay``."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # LossScaleOptimizer wraps it
    pairs = compat.optimizer_ema_pairs(optimizer)  # Keras keeps the averages in private optimizer lists
    if pairs is None:
        raise ConfigError("the model's optimizer keeps no moving average of the weights (ema_decay is off)")
    return pairs


def swap_ema(model) -> None:
    """Exchange the model's trainable weights with their moving averages (twice: back as before)."""
    for variable, average in ema_variables(model):
        value = variable.numpy()
        variable.assign(average)
        average.assign(value)
