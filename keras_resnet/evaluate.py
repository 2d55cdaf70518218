"""``keras-resnet evaluate MODEL --dataset NAME``: accuracy, top-5, loss and per-class accuracy.

Metrics are computed from predicted class probabilities (:func:`metrics`), so any model format only needs a
loader returning a :class:`Predictor` (a function from ``uint8`` images to probabilities). Loaders are
registered by file extension in :data:`LOADERS`: ``.keras`` here; another format (``.tflite``) is one
more ``LOADERS[".tflite"] = load_tflite``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_resnet import data as data_lib
from keras_resnet.errors import UserError


@dataclass
class Predictor:
    """A loaded model: ``predict(images uint8 N×H×W×3) -> probabilities N×classes`` and its input shape."""

    predict: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int, int, int]
    name: str
    format: str


def load_keras(path: str, batch_size: int = 128) -> Predictor:
    """A ``.keras`` model (loaded with ``safe_mode=True``, not compiled): raw pixels in, probabilities out."""
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load {path} as a Keras model: {str(error).splitlines()[0]}") from None

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0))

    shape = tuple(int(d) if d is not None else -1 for d in model.input_shape[1:])
    return Predictor(predict, shape, model.name, "keras")


def load_tflite(path: str, **kwargs) -> Predictor:
    """A ``.tflite`` model, run with ai-edge-litert (see :func:`keras_resnet.convert.load_tflite`)."""
    from keras_resnet.convert import load_tflite as load

    return load(path, **kwargs)


LOADERS: dict[str, Callable[..., Predictor]] = {".keras": load_keras, ".tflite": load_tflite}


def load_predictor(path: str, **kwargs) -> Predictor:
    """The :class:`Predictor` for a model file, chosen by its extension (see :data:`LOADERS`)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in LOADERS:
        raise UserError(f"cannot evaluate {path}: model files must end in {', '.join(LOADERS)}")
    if not os.path.isfile(path):
        raise UserError(f"model file {path} does not exist")
    return LOADERS[ext](path, **kwargs)


def _as_probabilities(outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise UserError(f"the model's output has shape {outputs.shape}; expected (images, classes)")
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
        raise UserError(f"labels go up to {y.max()} but the model predicts {classes} classes: wrong dataset?")
    names = class_names if class_names is not None and len(class_names) == classes else [str(i) for i in range(classes)]
    predicted = p.argmax(axis=1)
    correct = predicted == y
    result: dict = {
        "images": int(len(y)),
        "accuracy": float(correct.mean()) if len(y) else float("nan"),
    }
    if classes > 5:
        top5 = np.argsort(-p, axis=1)[:, :5]
        result["top5_accuracy"] = float((top5 == y[:, None]).any(axis=1).mean())
    result["loss"] = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0)).mean())
    result["per_class_accuracy"] = {
        names[c]: (float(correct[y == c].mean()) if (y == c).any() else None) for c in range(classes)}
    return result


def evaluate(model: str, dataset: str = "digits", split: str = "test", data_dir: str | None = None,
             batch_size: int = 128, limit: int | None = None) -> dict:
    """Evaluate a model file on one split of a dataset; returns :func:`metrics` plus what was evaluated."""
    predictor = load_predictor(model, batch_size=batch_size) if model.endswith(".keras") else load_predictor(model)
    size = predictor.input_shape[0] if predictor.input_shape[0] > 0 else None
    key, _ = data_lib.parse_name(dataset, data_dir)
    image_size = size if key == "folder" else None
    info = data_lib.info(dataset, data_dir, image_size=image_size)
    x, y = data_lib.load(dataset, split, data_dir, image_size=image_size)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    expected = tuple(predictor.input_shape)
    if all(e > 0 for e in expected) and expected != tuple(x.shape[1:]):
        raise UserError(f"{model} expects images of shape {expected}; {info.name} has {tuple(x.shape[1:])}")
    result = metrics(predictor.predict(x), y, info.labels)
    return {"model": model, "format": predictor.format, "dataset": info.name, "split": split, **result}


def cli(argv: list[str], prog: str = "keras-resnet evaluate") -> int:
    p = argparse.ArgumentParser(
        prog=prog, description="Evaluate a trained model on a dataset split: top-1, top-5 (more than 5 classes), "
                               "loss and per-class accuracy.")
    p.add_argument("model", help="a model file: " + ", ".join(LOADERS))
    p.add_argument("--dataset", default="digits", help="digits, cifar10, cifar100 or folder:PATH (default: digits)")
    p.add_argument("--data-dir", help="where the dataset files are (see keras-resnet train --help)")
    p.add_argument("--split", choices=data_lib.SPLITS, default="test", help="default: test")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, help="evaluate the first N images only")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    args = p.parse_args(argv)
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("batch size and limit must be positive integers")
    result = evaluate(args.model, args.dataset, args.split, args.data_dir, args.batch_size, args.limit)
    print(f"{result['model']} on {result['dataset']} ({result['split']}, {result['images']} images)")
    print(f"  accuracy  {result['accuracy']:.4f}")
    if "top5_accuracy" in result:
        print(f"  top-5     {result['top5_accuracy']:.4f}")
    print(f"  loss      {result['loss']:.4f}")
    print("  per class: " + ", ".join(f"{name} {acc:.3f}" if acc is not None else f"{name} -"
                                      for name, acc in result["per_class_accuracy"].items()))
    if args.json:
        print(json.dumps(result), flush=True)
    return 0
