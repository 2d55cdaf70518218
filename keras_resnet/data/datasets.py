"""Datasets by name: :func:`load` one split, :func:`info` (a :class:`DatasetInfo`) of ``digits``, ``cifar10``,
``cifar100``, ``fashion-mnist`` or ``folder:PATH``.

Every dataset is loaded into memory (once per process: a small cache) as ``uint8`` images ``N×H×W×C`` (``C`` = 3,
or 1 for Fashion-MNIST) and ``int64`` labels, split into ``train``/``val``/``test`` with a fixed seed
(:mod:`keras_resnet.data.splitting`). One module reads each source:

``digits``
    :mod:`keras_resnet.data.digits`: scikit-learn's bundled handwritten digits, 32×32×3. Always available offline.
``cifar10``, ``cifar100``
    :mod:`keras_resnet.data.cifar`: the official "python version" batches from ``data_dir``, Keras' cache or a
    download (:mod:`keras_resnet.data.downloads`), read with :mod:`keras_resnet.core.safe_pickle`.
``fashion-mnist`` (also ``fashionmnist``, ``fashion_mnist``)
    :mod:`keras_resnet.data.fashion_mnist`: the four IDX files from ``data_dir``, Debian's
    ``/usr/share/datasets/fashion-mnist``, Keras' cache or a download; zero-padded to 32×32×1.
``folder:PATH`` (or ``folder`` with ``data_dir=PATH``)
    :mod:`keras_resnet.data.folders`: one sub-folder of images per class, resized to ``image_size`` (default 32).
    Unreadable images are listed in :attr:`DatasetInfo.skipped` and skipped with a :class:`DataWarning`, or
    refused (``bad_images="refuse"``).

Pixel values stay in [0, 255]: normalisation is a layer of the model (see
:func:`keras_resnet.train.recipe.model_for_dataset`); the tf.data pipelines are :mod:`keras_resnet.data.pipeline`.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.data import cifar, digits, fashion_mnist, folders, splitting

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "fashion-mnist", "folder")
# Horizontal flips: not for digits (a mirrored 2 is not a 2). Fashion-MNIST keeps them: clothes are (nearly)
# left-right symmetric, every entry of the dataset's published table at >= 95% (WRN-28-10, WRN40-4,
# DenseNet-BC, MobileNet) trains with "random crops/horizontal flips", and docs/results.md records the measurement.
_NO_FLIP = ("digits",)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a pipeline need to know about a dataset.

    ``mean``/``variance`` are per-channel statistics of the training split's pixels (0–255 scale),
    the constants of the model's ``normalization`` layer. ``flip``: whether horizontal flips are a valid
    augmentation (not for digits or text). ``sizes``: images per split. ``skipped``: ``"path: reason"`` for each
    image of a folder dataset left out (corrupt, unreadable, too large, not a regular file).
    """

    name: str
    num_classes: int
    labels: list[str]
    image_shape: tuple[int, int, int]
    flip: bool
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    variance: tuple[float, ...] = (1.0, 1.0, 1.0)
    sizes: dict[str, int] = field(default_factory=dict)
    source: str = ""
    skipped: tuple[str, ...] = ()  # folder datasets: images that could not be read, with the reason


def _squash(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_KEYS = {_squash(n): n for n in DATASETS}  # fashionmnist, fashion_mnist, Fashion-MNIST -> fashion-mnist


def parse_name(name: str, data_dir: str | None = None) -> tuple[str, str | None]:
    """``("folder", PATH)`` for ``folder:PATH``; otherwise the lower-cased known name and ``data_dir``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"dataset must be a name; choose from {', '.join(DATASETS)} (folder:PATH for images)")
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not path:
            raise ConfigError("dataset folder:PATH needs a PATH, e.g. folder:/data/flowers")
        return "folder", path
    key = _KEYS.get(_squash(name))
    if key is None:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} "
                        f"(folder:PATH for a folder of class sub-folders)")
    if key == "folder" and not data_dir:
        raise ConfigError("dataset 'folder' needs --data-dir PATH (a folder with one sub-folder of images per class)")
    return key, data_dir


def load(name: str, split: splitting.Split, data_dir: str | None = None, *, image_size: int | None = None,
         bad_images: str = "skip") -> tuple[np.ndarray, np.ndarray]:
    """Images (``uint8`` N×H×W×3) and integer labels of one split of a dataset.

    ``bad_images`` (folder datasets): ``"skip"`` leaves unreadable images out (listed in
    :attr:`DatasetInfo.skipped`, one warning), ``"refuse"`` raises :class:`DataError` naming them.
    """
    if split not in splitting.SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(splitting.SPLITS)}")
    key, path = parse_name(name, data_dir)
    splits, meta = _load_all(key, _norm(path), image_size if key == "folder" else None)
    _check_bad_images(meta, bad_images)
    return splits[split]


def info(name: str, data_dir: str | None = None, *, image_size: int | None = None,
         bad_images: str = "skip") -> DatasetInfo:
    """Classes, label names, image shape, flip and normalisation constants of a dataset (loads it)."""
    key, path = parse_name(name, data_dir)
    meta = _load_all(key, _norm(path), image_size if key == "folder" else None)[1]
    _check_bad_images(meta, bad_images)
    return meta


BAD_IMAGES = ("skip", "refuse")
_warned: set[tuple[str, tuple[int, ...]]] = set()  # (dataset, image shape) already warned about: once per load


class DataWarning(UserWarning):
    """Images of a folder dataset were skipped."""


def _check_bad_images(meta: DatasetInfo, bad_images: str) -> None:
    if bad_images not in BAD_IMAGES:
        raise ConfigError(f"bad_images must be one of {', '.join(BAD_IMAGES)}; got {bad_images!r}")
    if not meta.skipped:
        return
    count = len(meta.skipped)
    listed = "; ".join(meta.skipped[:5]) + (f"; and {count - 5} more" if count > 5 else "")
    if bad_images == "refuse":
        raise DataError(f"{meta.name}: {count} unreadable image{'s' if count > 1 else ''} ({listed}); remove "
                        f"them or use bad_images=skip")
    if (meta.name, meta.image_shape) not in _warned:
        _warned.add((meta.name, meta.image_shape))
        warnings.warn(f"{meta.name}: skipped {count} unreadable image{'s' if count > 1 else ''} ({listed})",
                      DataWarning, stacklevel=3)


def _norm(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


@functools.lru_cache(maxsize=4)
def _load_all(key: str, path: str | None, image_size: int | None):
    skipped = ()
    if key == "digits":
        splits, labels, source = digits.load()
    elif key in cifar.NAMES:
        splits, labels, source = cifar.load(key, path)
    elif key == "fashion-mnist":
        splits, labels, source = fashion_mnist.load(path)
    else:
        splits, labels, source, skipped = folders.load(path, image_size or 32)
    for x, y in splits.values():
        x.setflags(write=False)
        y.setflags(write=False)
    x_train = splits["train"][0]
    mean, variance = _channel_stats(x_train)
    meta = DatasetInfo(
        name=key if key != "folder" else f"folder:{path}",
        num_classes=len(labels),
        labels=list(labels),
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        flip=key not in _NO_FLIP,
        mean=mean,
        variance=variance,
        sizes={s: int(len(y)) for s, (_, y) in splits.items()},
        source=source,
        skipped=tuple(skipped),
    )
    return splits, meta


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) variance of uint8 images, one float32 channel copy at a time."""
    means, variances = [], []
    for c in range(x.shape[-1]):
        channel = x[..., c].astype(np.float32)
        mean = float(channel.mean(dtype=np.float64))
        means.append(mean)
        variances.append(float(np.square(channel - np.float32(mean)).mean(dtype=np.float64)))
    return tuple(means), tuple(variances)
