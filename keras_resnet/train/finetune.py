"""Fine-tuning a model file (``Recipe.init``): load it through the safe loader, take its input size for folder
images, make a trainable copy with a new classifier when the class count differs, and carry its preprocessing
record (an imported model's crop and interpolation) to the run's ``best.keras`` / ``last.keras``.
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_write
from keras_resnet.data import datasets as data_lib
from keras_resnet.spec.recipe import Recipe


def load_init(recipe: Recipe):
    """``(recipe, model, preprocessing record or None)`` for ``recipe.init``: the file through the safe loader
    (Keras 3 files only), and ``recipe.image_size`` set to the model's input size unless the recipe gives one."""
    from keras_resnet.io.model_io import load_model
    from keras_resnet.io.preprocessing import read_preprocessing

    model = load_model(recipe.init, keras3_only=True)
    preprocessing = read_preprocessing(recipe.init)
    size = model.inputs[0].shape[1]
    if recipe.image_size is None and size is not None:  # folder images decoded at the model's input size
        recipe = dataclasses.replace(recipe, image_size=int(size))
    return recipe, model, preprocessing


def write_preprocessing(output: str, record: dict) -> None:
    """The source's preprocessing record next to ``OUTPUT/best.keras`` and ``last.keras`` (sidecar files), so its
    crop/resize policy follows the fine-tuned models to ``qat`` and ``convert``."""
    from keras_resnet.io.preprocessing import preprocessing_path

    for name in ("best.keras", "last.keras"):
        atomic_write(preprocessing_path(os.path.join(output, name)), json.dumps(record, indent=1) + "\n", force=True)


def finetune_model(source, info: data_lib.DatasetInfo, *, weight_decay: float = 0.0):
    """A trainable copy of ``source`` (a loaded Keras model) for ``info``'s dataset: the same layers and weights
    (its ``normalization`` layer, e.g. an imported model's ImageNet mean/std, included), L2 ``weight_decay`` on
    its kernels like the builders', and a new ``predictions`` classifier (same activation, random init) when the
    class count differs. Raises ConfigError when the image shapes differ or no classifier is found."""
    import keras

    shape = tuple(source.inputs[0].shape[1:])
    if None not in shape and shape != tuple(info.image_shape):
        raise ConfigError(f"the model takes {shape} images but {info.name} gives {tuple(info.image_shape)}: pass "
                          f"--image-size {shape[0]} (folder datasets)")
    decay = keras.regularizers.L2(weight_decay / 2) if weight_decay else None  # gradient wd · w, as blocks.py

    def clone(layer):
        config = layer.get_config()
        if decay is not None and "kernel_regularizer" in config:
            config["kernel_regularizer"] = keras.regularizers.serialize(decay)
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(source, clone_function=clone)
    model.set_weights(source.get_weights())
    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise ConfigError(f"{source.name} has no 'predictions' layer to fine-tune") from None
    if int(head.units) == info.num_classes:
        return model
    config = {**head.get_config(), "units": info.num_classes}
    config.pop("kernel_initializer", None)
    config.pop("bias_initializer", None)
    outputs = head.__class__.from_config(config)(head.input)
    return keras.Model(model.inputs, outputs, name=model.name)
