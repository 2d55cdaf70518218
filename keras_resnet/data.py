"""Datasets and tf.data input pipelines for training and evaluation.

Every dataset is loaded into memory as ``uint8`` images ``N×H×W×3`` and ``int64`` labels, split into
``train``/``val``/``test`` with a fixed seed:

``digits``
    scikit-learn's bundled handwritten digits (1,797 real 8×8 scans, 10 classes), scaled to 0–255,
    upsampled bilinearly to 32×32 and replicated to 3 channels. Always available offline.
    Stratified split: 20% test, then 20% of the rest as validation (1,149 / 288 / 360 images).
``cifar10``, ``cifar100``
    The official "python version" batches: from ``data_dir`` (the folder that holds
    ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself), else from Keras' cache
    ``~/.keras/datasets``, else downloaded through ``keras.datasets``. Validation: 5,000 training images
    (stratified, seeded); test: the official test batch.
``folder:PATH`` (or ``folder`` with ``data_dir=PATH``)
    Images in one sub-folder per class, read with ``keras.utils.image_dataset_from_directory`` and resized
    to ``image_size`` (default 32). If PATH holds ``train/`` (and optionally ``val/`` and ``test/``) those
    are the splits; missing splits (or all of them, for a plain class-per-folder PATH) are carved out
    with the same stratified seeded split as ``digits``.

Pixel values stay in [0, 255]: normalisation is a layer of the model (see :func:`keras_resnet.train.model_for_dataset`),
so the pipelines below only augment, shuffle, batch and prefetch.
"""

from __future__ import annotations

import functools
import glob
import os
import pickle
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from keras_resnet.errors import DataError as UserError

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "folder")
SPLITS: tuple[str, ...] = ("train", "val", "test")
SEED = 1234  # the fixed split seed: the same images land in the same split on every machine

Split = Literal["train", "val", "test"]

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR = {  # name: (folder, train files, test files, label key, meta file, meta key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                "batches.meta", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a pipeline need to know about a dataset.

    ``mean``/``variance`` are per-channel statistics of the training split's pixels (0–255 scale),
    the constants of the model's ``normalization`` layer. ``flip``: whether horizontal flips are a valid
    augmentation (not for digits or text). ``sizes``: images per split.
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


def parse_name(name: str, data_dir: str | None = None) -> tuple[str, str | None]:
    """``("folder", PATH)`` for ``folder:PATH``; otherwise the lower-cased known name and ``data_dir``."""
    if not isinstance(name, str) or not name:
        raise UserError(f"dataset must be a name; choose from {', '.join(DATASETS)} (folder:PATH for images)")
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not path:
            raise UserError("dataset folder:PATH needs a PATH, e.g. folder:/data/flowers")
        return "folder", path
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} "
                        f"(folder:PATH for a folder of class sub-folders)")
    if key == "folder" and not data_dir:
        raise UserError("dataset 'folder' needs --data-dir PATH (a folder with one sub-folder of images per class)")
    return key, data_dir


def load(name: str, split: Split, data_dir: str | None = None, *, image_size: int | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """Images (``uint8`` N×H×W×3) and integer labels of one split of a dataset."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    key, path = parse_name(name, data_dir)
    splits, _ = _load_all(key, _norm(path), image_size if key == "folder" else None)
    return splits[split]


def info(name: str, data_dir: str | None = None, *, image_size: int | None = None) -> DatasetInfo:
    """Classes, label names, image shape, flip and normalisation constants of a dataset (loads it)."""
    key, path = parse_name(name, data_dir)
    return _load_all(key, _norm(path), image_size if key == "folder" else None)[1]


def _norm(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


@functools.lru_cache(maxsize=4)
def _load_all(key: str, path: str | None, image_size: int | None):
    if key == "digits":
        splits, labels, source = _digits()
    elif key in _CIFAR:
        splits, labels, source = _cifar(key, path)
    else:
        splits, labels, source = _folder(path, image_size or 32)
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
        flip=key != "digits",
        mean=mean,
        variance=variance,
        sizes={s: int(len(y)) for s, (_, y) in splits.items()},
        source=source,
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


def stratified_split(y: np.ndarray, fraction: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``round(fraction·n_c)`` images of each class held out, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        count = int(round(fraction * len(members)))
        if 0 < fraction and len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        held.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held_out)
    return keep, held_out


def _three_way(x: np.ndarray, y: np.ndarray, test: float = 0.2, val: float = 0.2) -> dict:
    rest, test_idx = stratified_split(y, test)
    keep, val_idx = stratified_split(y[rest], val, SEED + 1)
    train_idx = rest[keep]
    val_idx = rest[val_idx]
    return {"train": (x[train_idx], y[train_idx]), "val": (x[val_idx], y[val_idx]), "test": (x[test_idx], y[test_idx])}


def _digits():
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in small])
    x = np.repeat(big[..., None], 3, axis=-1)
    y = bunch.target.astype(np.int64)
    return _three_way(x, y), [str(i) for i in range(10)], "sklearn.datasets.load_digits (8×8 → 32×32×3)"


# ---- CIFAR -----------------------------------------------------------------------------------------------


def _cifar_folder(key: str, data_dir: str | None) -> str | None:
    folder = _CIFAR[key][0]
    if data_dir is not None:
        candidates = [data_dir, os.path.join(data_dir, folder)]
    else:
        cache = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "datasets")
        candidates = [os.path.join(cache, folder), *glob.glob(os.path.join(cache, "*", folder))]
    needed = _CIFAR[key][1] + _CIFAR[key][2]
    for candidate in candidates:
        if all(os.path.isfile(os.path.join(candidate, f)) for f in needed):
            return candidate
    return None


def _where(key: str) -> str:
    folder, train, test = _CIFAR[key][:3]
    return (f"pass --data-dir DIR where DIR/{folder}/ holds {', '.join(train + test)} "
            f"(the python version from {CIFAR_URL}, extracted)")


def _cifar(key: str, data_dir: str | None):
    folder = _cifar_folder(key, data_dir)
    if folder is None and data_dir is not None:
        if not os.path.isdir(data_dir):
            raise UserError(f"{key}: data directory {data_dir} does not exist; {_where(key)}")
        raise UserError(f"{key}: no {_CIFAR[key][0]} files in {data_dir}; {_where(key)}")
    if folder is None:  # not cached: let keras.datasets download it, then read its cache
        import keras

        try:
            getattr(keras.datasets, key).load_data()
        except Exception as error:  # network errors differ by platform; all mean "could not fetch"
            raise UserError(f"{key} is not on this machine and could not be downloaded "
                            f"({error.__class__.__name__}); {_where(key)}") from None
        folder = _cifar_folder(key, None)
        if folder is None:
            raise UserError(f"{key}: downloaded, but no {_CIFAR[key][0]} in ~/.keras/datasets; {_where(key)}")
    _, train_files, test_files, label_key, meta_file, meta_key = _CIFAR[key]

    def read(files):
        xs, ys = [], []
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                ys.append(np.asarray(batch[label_key], dtype=np.int64))
            except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as error:
                raise UserError(f"{key}: cannot read {path} as a CIFAR python batch "
                                f"({error.__class__.__name__}: {error})") from None
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)

    x, y = read(train_files)
    x_test, y_test = read(test_files)
    labels = CIFAR10_LABELS if key == "cifar10" else [str(i) for i in range(100)]
    try:
        with open(os.path.join(folder, meta_file), "rb") as f:
            names = pickle.load(f, encoding="bytes")[meta_key]
        if len(names) == len(labels):
            labels = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError):
        pass  # the meta file is optional: fall back to the known names
    keep, val = stratified_split(y, 5000 / 50000)
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]), "test": (x_test, y_test)}
    return splits, labels, folder


# ---- image folders ---------------------------------------------------------------------------------------

_SPLIT_DIRS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


def _folder(path: str | None, size: int):
    import keras

    if not path or not os.path.isdir(path):
        raise UserError(f"image folder {path} does not exist; expected PATH/CLASS_NAME/*.jpg|png|bmp|gif")
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    named = {split: next((os.path.join(path, d) for d in dirs if d in subdirs), None)
             for split, dirs in _SPLIT_DIRS.items()}
    layout = named["train"] is not None and set(subdirs) <= {d for dirs in _SPLIT_DIRS.values() for d in dirs}

    def read(directory: str, class_names=None):
        try:
            ds = keras.utils.image_dataset_from_directory(
                directory, labels="inferred", label_mode="int", class_names=class_names, color_mode="rgb",
                batch_size=None, image_size=(size, size), shuffle=False, verbose=False)
        except ValueError as error:
            if "No images found" in str(error):
                raise UserError(f"image folder {directory} holds no images (.jpg, .png, .bmp, .gif) in class "
                                f"sub-folders") from None
            raise UserError(f"image folder {directory}: {error}".splitlines()[0]) from None
        names = list(ds.class_names)
        xs, ys = [], []
        for image, label in ds.batch(256).as_numpy_iterator():
            xs.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
            ys.append(label.astype(np.int64))
        if not xs:
            raise UserError(f"image folder {directory} holds no images (jpeg, png, bmp, gif) in class sub-folders")
        return np.concatenate(xs), np.concatenate(ys), names

    if not layout:
        x, y, names = read(path)
        if len(names) < 2:
            raise UserError(f"image folder {path} needs at least 2 class sub-folders; found {names}")
        return _three_way(x, y), names, path
    x, y, names = read(named["train"])
    splits = {}
    if named["test"] is None:
        keep, test = stratified_split(y, 0.2)
        splits["test"] = (x[test], y[test])
        x, y = x[keep], y[keep]
    else:
        splits["test"] = read(named["test"], names)[:2]
    if named["val"] is None:
        keep, val = stratified_split(y, 0.2, SEED + 1)
        splits["val"] = (x[val], y[val])
        x, y = x[keep], y[keep]
    else:
        splits["val"] = read(named["val"], names)[:2]
    splits["train"] = (x, y)
    return {s: splits[s] for s in SPLITS}, names, path


# ---- tf.data pipelines -----------------------------------------------------------------------------------


def augment_batch(images, seeds, *, pad: int = 4, flip: bool = True):
    """He et al.'s augmentation on a batch of ``uint8`` images: zero-pad ``pad`` pixels, random crop back, flip.

    ``seeds``: ``int64[2]`` (stateless, so the result depends only on the seed). Returns ``float32`` in [0, 255].
    Vectorised over the batch (one gather instead of a crop per image): cheap on the CPU cores the model needs.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    seeds = tf.cast(seeds, tf.int32)
    offsets = tf.random.stateless_uniform([n, 2], seed=seeds, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]  # n×h
    cols = offsets[:, 1:] + tf.range(w)[None, :]  # n×w
    if flip:
        mirror = tf.random.stateless_uniform([n, 1], seed=seeds[::-1], minval=0, maxval=2, dtype=tf.int32)
        cols = tf.where(mirror == 1, tf.reverse(cols, axis=[1]), cols)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # n×h×(w+2p)×c
    out = tf.gather(out, cols, axis=2, batch_dims=1)  # n×h×w×c
    return tf.cast(out, tf.float32)


def train_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, *, flip: bool = True, seed: int = 0,
                   pad: int = 4, augment: bool = True, drop_remainder: bool = False, shard_by_data: bool = True):
    """Shuffled (reshuffled every epoch, seeded), batched, augmented, prefetched ``(float32 image, int64 label)``."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, randoms)).map(
            lambda batch, s: (augment_batch(batch[0], s, pad=pad, flip=flip), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda image, label: (tf.cast(image, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, shard_by_data)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, *, shard_by_data: bool = True):
    """Deterministic (in order, no augmentation) batched ``(float32 image, int64 label)`` pipeline."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda image, label: (tf.cast(image, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return _finish(ds, shard_by_data)


def _finish(ds, shard_by_data: bool):
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    if shard_by_data:  # multi-worker: every worker reads the (in-memory) data and takes every n-th batch
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
