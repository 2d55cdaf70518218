"""The images a conversion works with: calibration images for int8 ranges and held-out validation images.

Both are pixels (uint8-valued float32) from a dataset split, an ``.npz`` or random pixels, preprocessed for the
Keras model as the device runner does (``(x - mean) / std`` with the metadata's mean and std).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.quant.common import check_images
from keras_resnet.spec.conversion import ConvertSpec


@dataclass(frozen=True)
class Pixels:
    """Per-channel mean and std the runner subtracts and divides by (``--mean``, ``--std``; metadata)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, spec: ConvertSpec, channels: int) -> Pixels:
        mean = tuple(spec.mean or [0.0] * channels)
        std = tuple(spec.std or [1.0] * channels)
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(f"--mean and --std need {channels} values each")
        return cls(mean, std)

    def prepare(self, model, x: np.ndarray, source: str) -> np.ndarray:
        """Pixels -> model input, as the runner does; DataError for images of another size than the model's."""
        check_images(model, x, source)
        return ((x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)


def images(source: str | None, split: str, count: int, shape: tuple[int, ...], *, data_dir: str | None = None,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` uint8-valued float32 pixel images (and labels) of a dataset split, or random pixels."""
    if source in (None, "random"):
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (count, *shape)).astype(np.float32), None
    if source.endswith(".npz") and os.path.isfile(source):
        with np.load(source) as f:
            x = f["x"] if "x" in f else f[list(f.keys())[0]]
            y = f["y"] if "y" in f else None
    else:
        from keras_resnet.data import datasets as data

        x, y = data.load(source, split, data_dir, image_size=shape[0])  # folder datasets: at the model's size
    if len(x) == 0:
        raise DataError(f"{source} has no {split} images")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(x))[:count])
    return np.asarray(x[keep], np.float32), None if y is None else np.asarray(y)[keep]


def calibration_images(spec: ConvertSpec, model, shape: tuple[int, ...], pixels: Pixels) -> np.ndarray:
    """``spec.calibration_samples`` model-ready images of ``spec.calibration_data``'s train split."""
    if spec.calibration_data is None:
        raise ConfigError("int8 post-training quantization needs --calibration-data DATASET (or 'random' for "
                          "latency-only work); a QAT model needs none")
    x, _ = images(spec.calibration_data, "train", spec.calibration_samples, shape, data_dir=spec.data_dir)
    return pixels.prepare(model, x, f"calibration data {spec.calibration_data}")


def validation_source(spec: ConvertSpec) -> str:
    """``--validation-data``, else the calibration dataset (its val split), else ``--dataset``, else random."""
    return spec.validation_data or (spec.calibration_data if spec.calibration_data not in (None, "random")
                                    else None) or spec.dataset or "random"
