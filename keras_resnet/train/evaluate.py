"""Evaluating a model file on a dataset split (``keras-resnet evaluate``): accuracy, top-5, loss, per-class accuracy.

``.keras`` models run on the Keras backend of the process (``KERAS_BACKEND``: tensorflow, jax or torch), which the
result names. Metrics are computed from predicted class probabilities (:func:`metrics`), so any model format only needs a
loader returning a :class:`Predictor` (a function from ``uint8`` images to probabilities). Loaders are
registered by file extension in :data:`LOADERS`: ``.keras`` here; another format (``.tflite``) is one
more ``LOADERS[".tflite"] = load_tflite``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_resnet.core.errors import DataError, ModelFileError
from keras_resnet.data import datasets as data_lib
from keras_resnet.io.model_io import load_model
from keras_resnet.model import build
from keras_resnet.spec.commands import EvalSpec
from keras_resnet.train.distribute import backend_info


@dataclass
class Predictor:
    """A loaded model: ``predict(images uint8 N×H×W×C) -> probabilities N×classes`` and its input shape."""

    predict: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int, int, int]
    name: str
    format: str


def load_keras(path: str, batch_size: int = 128, unsafe: bool = False) -> Predictor:
    """A ``.keras`` model (the safe loader, not compiled): raw pixels in, probabilities out."""
    model = load_model(path, unsafe=unsafe, keras3_only=True)  # a tf_keras file is refused before tf_keras loads

    def predict(images: np.ndarray) -> np.ndarray:
        return build.predict(model, images, batch_size)

    shape = tuple(int(d) if d is not None else -1 for d in model.input_shape[1:])
    return Predictor(predict, shape, model.name, "keras")


def load_tflite(path: str, threads: int = 2, **_) -> Predictor:
    """A ``.tflite`` model run by :class:`resnet_edge.Classifier`, exactly as on a device: pixels are normalised
    as the embedded metadata says, in the child-process-guarded runtime."""
    from resnet_edge import Classifier, ModelError, RuntimeUnavailable

    try:
        runner = Classifier(path, threads=threads, warn=lambda message: None)
    except (ModelError, RuntimeUnavailable) as error:
        raise ModelFileError(f"cannot load {path} as a TFLite model: {error}") from error
    name = (runner.metadata or {}).get("model") or os.path.splitext(os.path.basename(path))[0]
    shape = tuple(int(d) for d in runner.engine.input.shape[1:])
    return Predictor(runner.predict_arrays, shape, str(name), "tflite")


LOADERS: dict[str, Callable[..., Predictor]] = {".keras": load_keras, ".tflite": load_tflite}


def load_predictor(path: str, **kwargs) -> Predictor:
    """The :class:`Predictor` for a model file, chosen by its extension (see :data:`LOADERS`)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in LOADERS:
        raise ModelFileError(f"cannot evaluate {path}: model files must end in {', '.join(LOADERS)}")
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path} does not exist")
    return LOADERS[ext](path, **kwargs)


def _as_probabilities(outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise DataError(f"the model's output has shape {outputs.shape}; expected (images, classes)")
    sums = outputs.sum(axis=1)
    if outputs.min() < 0 or not np.allclose(sums, 1.0, atol=1e-2):  # logits: apply the softmax
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs = shifted / shifted.sum(axis=1, keepdims=True)
    return outputs


def metrics(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Top-1, top-5 (more than 5 classes), cross-entropy loss and per-class accuracy from probabilities."""
    p = _as_probabilities(probabilities)
    y = np.asarray(labels).astype(np.int64)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} labels")
    classes = p.shape[1]
    if y.size and y.max() >= classes:
        raise DataError(f"labels go up to {y.max()} but the model predicts {classes} classes: wrong dataset?")
    names = class_names if class_names is not None and len(class_names) == classes else [str(i) for i in range(classes)]
    predicted = p.argmax(axis=1)
    correct = predicted == y
    result: dict = {
        "images": int(len(y)),
        "accuracy": float(correct.mean()) if len(y) else None,
    }
    if classes > 5:
        top5 = np.argsort(-p, axis=1)[:, :5]
        result["top5_accuracy"] = float((top5 == y[:, None]).any(axis=1).mean())
    result["loss"] = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0)).mean())
    result["per_class_accuracy"] = {
        names[c]: (float(correct[y == c].mean()) if (y == c).any() else None) for c in range(classes)}
    return result


def evaluate(model: str, spec: EvalSpec | None = None, **fields) -> dict:
    """Evaluate a model file on one split of a dataset; returns :func:`metrics` plus what was evaluated.

    ``spec`` (or its fields as keywords: ``dataset``, ``split``, ``data_dir``, ``batch_size``, ``limit``).
    """
    spec = dataclasses.replace(spec or EvalSpec(), **fields)
    kwargs = {"batch_size": spec.batch_size} if model.endswith(".keras") else {}
    predictor = load_predictor(model, **kwargs)
    size = predictor.input_shape[0] if predictor.input_shape[0] > 0 else None
    key, _ = data_lib.parse_name(spec.dataset, spec.data_dir)
    image_size = size if key == "folder" else None
    info = data_lib.info(spec.dataset, spec.data_dir, image_size=image_size)
    x, y = data_lib.load(spec.dataset, spec.split, spec.data_dir, image_size=image_size)
    if spec.limit is not None:
        x, y = x[:spec.limit], y[:spec.limit]
    expected = tuple(predictor.input_shape)
    if all(e > 0 for e in expected) and expected != tuple(x.shape[1:]):
        raise DataError(f"{model} expects images of shape {expected}; {info.name} has {tuple(x.shape[1:])}")
    result = metrics(predictor.predict(x), y, info.labels)
    where = {"backend": backend_info()} if predictor.format == "keras" else {}  # .tflite runs in resnet-edge
    return {"model": model, "format": predictor.format, **where, "dataset": info.name, "split": spec.split, **result}

