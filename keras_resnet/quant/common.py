"""What both QAT engines share: reading a functional model's serialized graph, a BatchNormalization's or
Normalization's per-channel affine, and the fine-tuning pipeline's data, checks and result.

:mod:`keras_resnet.quant.native_qat` (native Keras 3) and :mod:`keras_resnet.quant.tfmot_qat` (tfmot through the
tf_keras twin of :mod:`keras_resnet.quant.tf_keras_twin`) both import this module; it imports neither.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_resnet.core.errors import DataError
from keras_resnet.model.build import predict

# ---- the serialized functional graph ------------------------------------------------------------------------
# A Keras 3 functional model's get_config() names every layer's inputs as "__keras_tensor__" entries whose
# keras_history is (layer name, node index, tensor index).


def keras_history_refs(value) -> list[tuple]:
    """The ``keras_history`` references in a serialized inbound-node argument structure."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [tuple(value["config"]["keras_history"])]
        return [r for v in value.values() for r in keras_history_refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in keras_history_refs(v)]
    return []


def substitute(value, tensors: dict):
    """``value`` (a serialized inbound node's args or kwargs) with every ``__keras_tensor__`` replaced by
    ``tensors[keras_history]`` (keys: ``(layer name, node index, tensor index)`` tuples)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return tensors[tuple(value["config"]["keras_history"])]
        return {k: substitute(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, tensors) for v in value]
    return value


def ref_list(value) -> list[tuple]:
    """``input_layers``/``output_layers``: one ``[name, node, index]`` or a list of them, as tuples."""
    if len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)]
    return [tuple(v) for v in value]


# ---- BatchNormalization / Normalization as a per-channel affine ----------------------------------------------


def as_numpy(value) -> np.ndarray:
    """A Keras 3 variable or tensor (any backend) as a float32 NumPy array."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value), dtype="float32")


def affine_of(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) per channel of an inference-mode Keras 3 BatchNormalization or Normalization on the last
    axis of an NHWC tensor with known channels; None for anything else."""
    import keras

    kind = type(layer).__name__
    shape = layer.input.shape if hasattr(layer, "input") else None
    if shape is None or len(shape) != 4 or shape[-1] is None:
        return None
    channels = int(shape[-1])
    if kind == "BatchNormalization":
        if layer.axis not in (-1, 3):
            return None
        gamma = as_numpy(layer.gamma) if layer.scale else np.ones(channels, "float32")
        beta = as_numpy(layer.beta) if layer.center else np.zeros(channels, "float32")
        scale = gamma / np.sqrt(as_numpy(layer.moving_variance) + layer.epsilon)
        return scale, beta - as_numpy(layer.moving_mean) * scale
    if kind == "Normalization":
        if getattr(layer, "invert", False) or tuple(layer.axis) not in ((-1,), (3,)):
            return None
        mean = np.broadcast_to(as_numpy(layer.mean).reshape(-1), (channels,))
        # Keras 3's Normalization divides by max(sqrt(variance), epsilon).
        std = np.maximum(np.sqrt(np.broadcast_to(as_numpy(layer.variance).reshape(-1), (channels,))),
                         keras.backend.epsilon())
        return (1.0 / std).astype("float32"), (-mean / std).astype("float32")
    return None


# ---- the fine-tuning pipeline: data, checks, result ----------------------------------------------------------


@dataclass
class QATResult:
    path: str
    accuracy: float  # QAT model, test split
    float_accuracy: float  # the model before QAT, test split
    epochs: int
    seconds: float
    jit: dict | None = None  # the fine-tuning's compile mode (keras_resnet.train.jit's Jit.record); None: no epochs

    def jit_text(self) -> str:
        """``, XLA on (auto: ...)`` for the printed result line ("" without fine-tuning)."""
        if not self.jit:
            return ""
        return f", XLA {'on' if self.jit['used'] else 'off'} ({self.jit['requested']}: {self.jit['reason']})"


def accuracy(model, x, y, batch_size: int = 128) -> float:
    """Top-1 accuracy of a Keras 3 or tf_keras model on float32 pixels."""
    predictions = predict(model, x, batch_size)
    return float(np.mean(np.argmax(predictions, -1) == np.asarray(y).reshape(-1)))


def check_images(model, images: np.ndarray, source: str) -> None:
    """Refuse images whose H×W×C does not match the model's input."""
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(images.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got, strict=False)):
        raise DataError(f"{source} images are {'×'.join(map(str, got))} but the model expects "
                        f"{'×'.join('?' if d is None else str(d) for d in expected)}")


@dataclass
class QATData:
    """A float model to fine-tune and its dataset's splits (see :func:`load_for_qat`)."""

    model: Any
    preprocessing: dict | None  # an imported model's crop and resize policy, from its file
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    float_accuracy: float  # the float model, test split


def load_for_qat(model_or_path, spec, *, unsafe: bool = False, keras3_only: bool = False) -> QATData:
    """Load the float model (or take it), its recorded preprocessing, ``spec.dataset``'s splits at the model's
    input size, check them against the model and measure its test accuracy: both engines' first steps."""
    from keras_resnet.data import datasets as data
    from keras_resnet.io.model_io import load_model
    from keras_resnet.io.preprocessing import read_preprocessing

    from_file = isinstance(model_or_path, (str, os.PathLike))
    model = load_model(model_or_path, unsafe=unsafe, keras3_only=keras3_only) if from_file else model_or_path
    preprocessing = read_preprocessing(model_or_path) if from_file else None
    size = model.inputs[0].shape[1]  # folder datasets are decoded at the model's input size (others ignore it)
    folder = {"image_size": int(size)} if size is not None else {}
    splits = {split: data.load(spec.dataset, split, spec.data_dir, **folder) for split in ("train", "val", "test")}
    check_images(model, splits["train"][0], spec.dataset)
    if len(splits["train"][0]) == 0:
        raise DataError(f"{spec.dataset} has no training images")
    return QATData(model, preprocessing, splits["train"], splits["val"], splits["test"],
                   accuracy(model, *splits["test"]))
