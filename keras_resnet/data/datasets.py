"""Datasets and tf.data input pipelines for training and evaluation.

Every dataset is loaded into memory as ``uint8`` images ``N×H×W×C`` (``C`` = 3, or 1 for Fashion-MNIST)
and ``int64`` labels, split into ``train``/``val``/``test`` with a fixed seed:

``digits``
    scikit-learn's bundled handwritten digits (1,797 real 8×8 scans, 10 classes), scaled to 0–255,
    upsampled bilinearly to 32×32 and replicated to 3 channels. Always available offline.
    Stratified split: 20% test, then 20% of the rest as validation (1,149 / 288 / 360 images).
``cifar10``, ``cifar100``
    The official "python version" batches: from ``data_dir`` (the folder that holds
    ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself), else from Keras' cache
    ``~/.keras/datasets``, else downloaded (``keras.utils.get_file``, the archive ``keras.datasets`` uses) into
    that cache. Read with :mod:`keras_resnet.core.safe_pickle`, which runs no code from the files. Validation: 5,000
    training images (stratified, seeded); test: the official test batch.
``fashion-mnist`` (also ``fashionmnist``, ``fashion_mnist``)
    Zalando's Fashion-MNIST: 60,000 training and 10,000 test 28×28 grayscale images of 10 clothing classes,
    read from the four original IDX files (gzipped or not) in ``data_dir``, else in
    ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install dataset-fashion-mnist``), else in Keras'
    cache ``~/.keras/datasets/fashion-mnist``, else downloaded through ``keras.datasets.fashion_mnist``.
    Zero-padded (2 pixels each side, no resampling) to 32×32×1 so the CIFAR networks apply unchanged.
    Validation: 5,000 training images (stratified, seeded); test: the official 10,000.
``folder:PATH`` (or ``folder`` with ``data_dir=PATH``)
    Images (.jpg, .jpeg, .png, .bmp, .gif) in one sub-folder per class, decoded with Pillow in threads,
    converted to RGB and resized (bilinear) to ``image_size`` (default 32). Only regular files are opened;
    unreadable, corrupt or oversized images and non-files (FIFOs, devices, broken links) are listed in
    :attr:`DatasetInfo.skipped` and skipped with a warning, or refused (``bad_images="refuse"``). The whole
    dataset at ``image_size`` must fit ``FOLDER_MAX_BYTES``. If PATH holds ``train/`` (and optionally ``val/``
    and ``test/``) those are the splits; missing splits (or all of them, for a plain class-per-folder PATH) are carved out
    with the same stratified seeded split as ``digits``.

Pixel values stay in [0, 255]: normalisation is a layer of the model (see :func:`keras_resnet.train.loop.model_for_dataset`),
so the pipelines below only augment, shuffle, batch and prefetch.
"""

from __future__ import annotations

import functools
import glob
import gzip
import os
import pickle
import stat
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from keras_resnet.core import safe_pickle
from keras_resnet.core.errors import ConfigError, DataError

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "fashion-mnist", "folder")
SPLITS: tuple[str, ...] = ("train", "val", "test")
SEED = 1234  # the fixed split seed: the same images land in the same split on every machine

Split = Literal["train", "val", "test"]

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR_ARCHIVES = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",  # as keras.datasets
                  "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}
# Horizontal flips: not for digits (a mirrored 2 is not a 2). Fashion-MNIST keeps them: clothes are (nearly)
# left-right symmetric, every entry of the dataset's published table at >= 95% (WRN-28-10, WRN40-4,
# DenseNet-BC, MobileNet) trains with "random crops/horizontal flips", and docs/results.md records the measurement.
_NO_FLIP = ("digits",)
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


def load(name: str, split: Split, data_dir: str | None = None, *, image_size: int | None = None,
         bad_images: str = "skip") -> tuple[np.ndarray, np.ndarray]:
    """Images (``uint8`` N×H×W×3) and integer labels of one split of a dataset.

    ``bad_images`` (folder datasets): ``"skip"`` leaves unreadable images out (listed in
    :attr:`DatasetInfo.skipped`, one warning), ``"refuse"`` raises :class:`DataError` naming them.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
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
    if key == "digits":
        splits, labels, source = _digits()
    elif key in _CIFAR:
        splits, labels, source = _cifar(key, path)
    elif key == "fashion-mnist":
        splits, labels, source = _fashion_mnist(path)
    else:
        splits, labels, source, skipped = _folder(path, image_size or 32)
    if key != "folder":
        skipped = ()
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
            raise DataError(f"{key}: data directory {data_dir} does not exist; {_where(key)}")
        raise DataError(f"{key}: no {_CIFAR[key][0]} files in {data_dir}; {_where(key)}")
    if folder is None:  # not cached: download and extract the archive keras.datasets uses, then read it here
        # (not keras.datasets.*.load_data(): it unpickles the batches with plain pickle)
        import keras

        url = CIFAR_ARCHIVES[key]
        try:
            # fname as keras.datasets names it: the same cache folder, ~/.keras/datasets/<folder>/<folder>
            extracted = keras.utils.get_file(fname=_CIFAR[key][0], origin=url, extract=True, cache_subdir="datasets")
        except Exception as error:  # network errors differ by platform; all mean "could not fetch"
            raise DataError(f"{key} is not on this machine and could not be downloaded "
                            f"({error.__class__.__name__}); {_where(key)}") from error
        folder = _cifar_folder(key, os.fspath(extracted)) or _cifar_folder(key, None)
        if folder is None:
            raise DataError(f"{key}: downloaded, but no {_CIFAR[key][0]} in ~/.keras/datasets; {_where(key)}")
    _, train_files, test_files, label_key, meta_file, meta_key = _CIFAR[key]

    def read(files):
        xs, ys = [], []
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    batch = safe_pickle.load(f)  # plain data and number arrays only: no code runs
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                ys.append(np.asarray(batch[label_key], dtype=np.int64))
            except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as error:
                raise DataError(f"{key}: cannot read {path} as a CIFAR python batch "
                                f"({error.__class__.__name__}: {error})") from error
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)

    x, y = read(train_files)
    x_test, y_test = read(test_files)
    labels = CIFAR10_LABELS if key == "cifar10" else [str(i) for i in range(100)]
    try:
        with open(os.path.join(folder, meta_file), "rb") as f:
            names = safe_pickle.load(f)[meta_key]
        if len(names) == len(labels):
            labels = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except safe_pickle.UnsafePickleError as error:  # optional, but a file naming code is refused, not skipped
        raise DataError(f"{key}: refusing {os.path.join(folder, meta_file)}: {error}") from error
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError):
        pass  # the meta file is optional: fall back to the known names
    keep, val = stratified_split(y, 5000 / 50000)
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]), "test": (x_test, y_test)}
    return splits, labels, folder


# ---- Fashion-MNIST (IDX files) ---------------------------------------------------------------------------

FASHION_MNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                        "Ankle boot"]
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
FASHION_MNIST_FILES = {  # part: (file stem, IDX kind)
    "train_images": ("train-images-idx3-ubyte", "images"),
    "train_labels": ("train-labels-idx1-ubyte", "labels"),
    "test_images": ("t10k-images-idx3-ubyte", "images"),
    "test_labels": ("t10k-labels-idx1-ubyte", "labels"),
}
FASHION_MNIST_PAD = 2  # 28×28 -> 32×32: zero border (the images' own background is 0), no resampling

IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # dtype byte 0x08 (unsigned byte), 3 or 1 dims
IDX_MAX_ITEMS = 1_000_000  # hard caps checked against the header BEFORE anything is allocated or decompressed
IDX_MAX_BYTES = 256 * 2**20  # the largest real file (60,000 × 28 × 28) is 47 MB
IDX_MAX_SIDE = 1024
_CHUNK = 2**20


def read_idx(path: str, kind: str, *, image_size: tuple[int, int] | None = (28, 28), max_items: int = IDX_MAX_ITEMS,
             max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """A ``uint8`` array from an IDX file (gzipped or not): ``N×H×W`` for ``kind="images"``, ``N`` for labels.

    The header is checked before anything is allocated: magic ``0x00000803`` / ``0x00000801`` (unsigned bytes,
    3 / 1 dimensions), ``image_size`` (``None``: any size up to ``IDX_MAX_SIDE``), and the declared size against
    ``max_items``/``max_bytes``. The body is then read (decompressed) in bounded chunks up to declared size + 1
    byte, so a truncated file, trailing data or a gzip bomb is a :class:`DataError`, never a big allocation.
    """
    if kind not in IDX_MAGIC:
        raise ConfigError(f"IDX kind must be 'images' or 'labels'; got {kind!r}")
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            return _read_idx_stream(f, path, kind, image_size, max_items, max_bytes)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path} as an IDX file ({error.__class__.__name__}: {error})") from error


def _read_idx_stream(f, path: str, kind: str, image_size, max_items: int, max_bytes: int) -> np.ndarray:
    ndim = 3 if kind == "images" else 1
    header = _read_exactly(f, 4)
    if len(header) == 4:
        magic = int.from_bytes(header, "big")
        if magic != IDX_MAGIC[kind]:
            raise DataError(f"{path}: not an IDX {kind} file (magic 0x{magic:08x}, expected "
                            f"0x{IDX_MAGIC[kind]:08x}: unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})")
        header += _read_exactly(f, 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path}: not an IDX {kind} file (header of {len(header)} bytes, expected {4 + 4 * ndim})")
    dims = tuple(int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = dims[0]
    if count > max_items:
        raise DataError(f"{path}: header declares {count:,} {kind}, more than the limit of {max_items:,}")
    if kind == "images":
        side = dims[1:]
        if image_size is not None and side != tuple(image_size):
            raise DataError(f"{path}: images are {side[0]}×{side[1]}, expected {image_size[0]}×{image_size[1]}")
        if min(side) < 1 or max(side) > IDX_MAX_SIDE:
            raise DataError(f"{path}: image size {side[0]}×{side[1]} is out of range (1..{IDX_MAX_SIDE})")
    size = int(np.prod(dims, dtype=np.int64))
    if size > max_bytes:
        raise DataError(f"{path}: header declares {size:,} bytes of data, more than the limit of {max_bytes:,}")
    body = _read_exactly(f, size + 1)  # one byte more than declared: tells trailing data from the exact size
    if len(body) != size:
        what = "truncated" if len(body) < size else "longer than its header says"
        raise DataError(f"{path}: {what} (header: {count:,} {kind} = {size:,} bytes of data; the file has "
                        f"{'only ' + format(len(body), ',') if len(body) < size else 'more'})")
    return np.frombuffer(bytes(body), dtype=np.uint8).reshape(dims)


def _read_exactly(f, n: int) -> bytearray:
    """At most ``n`` bytes, read (and, for gzip, decompressed) ``_CHUNK`` at a time; fewer at end of file."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(_CHUNK, n - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def _fashion_mnist_files(folder: str) -> dict[str, str] | None:
    """The four IDX files in ``folder`` (``.gz`` preferred over raw), or ``None`` if one is missing."""
    found = {}
    for part, (stem, _) in FASHION_MNIST_FILES.items():
        path = next((os.path.join(folder, stem + ext) for ext in (".gz", "") if
                     os.path.isfile(os.path.join(folder, stem + ext))), None)
        if path is None:
            return None
        found[part] = path
    return found


def _fashion_mnist_where() -> str:
    names = ", ".join(stem + ".gz" for stem, _ in FASHION_MNIST_FILES.values())
    return (f"install it with `apt-get install dataset-fashion-mnist` (files in {FASHION_MNIST_DIR}), or pass "
            f"--data-dir DIR where DIR holds {names} (gzipped or not)")


def _fashion_mnist_locate(data_dir: str | None) -> dict[str, str]:
    if data_dir is not None:
        for folder in (data_dir, os.path.join(data_dir, "fashion-mnist")):
            files = _fashion_mnist_files(folder)
            if files:
                return files
        if not os.path.isdir(data_dir):
            raise DataError(f"fashion-mnist: data directory {data_dir} does not exist; {_fashion_mnist_where()}")
        raise DataError(f"fashion-mnist: no Fashion-MNIST IDX files in {data_dir}; {_fashion_mnist_where()}")
    cache = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "datasets", "fashion-mnist")
    for folder in (FASHION_MNIST_DIR, cache):
        files = _fashion_mnist_files(folder)
        if files:
            return files
    import keras

    try:  # not installed, not cached: keras.datasets downloads the same four .gz files into its cache
        keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # network errors differ by platform; all mean "could not fetch"
        raise DataError(f"fashion-mnist is not on this machine and could not be downloaded "
                        f"({error.__class__.__name__}); {_fashion_mnist_where()}") from error
    files = _fashion_mnist_files(cache)
    if files is None:
        raise DataError(f"fashion-mnist: downloaded, but the IDX files are not in {cache}; {_fashion_mnist_where()}")
    return files


def _fashion_mnist(data_dir: str | None):
    files = _fashion_mnist_locate(data_dir)
    parts = {part: read_idx(path, FASHION_MNIST_FILES[part][1]) for part, path in files.items()}
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"fashion-mnist: {files[split + '_images']} holds {len(images):,} images but "
                            f"{files[split + '_labels']} {len(labels):,} labels")
        if len(labels) and labels.max() >= len(FASHION_MNIST_LABELS):
            raise DataError(f"fashion-mnist: {files[split + '_labels']} has label {int(labels.max())}; "
                            f"expected 0..{len(FASHION_MNIST_LABELS) - 1}")
    if len(parts["train_labels"]) < 2 * len(FASHION_MNIST_LABELS) or not len(parts["test_labels"]):
        raise DataError(f"fashion-mnist: too few images ({len(parts['train_labels'])} train, "
                        f"{len(parts['test_labels'])} test) in {os.path.dirname(files['train_images'])}")

    def prepare(images):
        p = FASHION_MNIST_PAD
        return np.ascontiguousarray(np.pad(images, ((0, 0), (p, p), (p, p)))[..., None])

    x, y = prepare(parts["train_images"]), parts["train_labels"].astype(np.int64)
    keep, val = stratified_split(y, 5000 / 60000)  # 500 per class of the official 60,000
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]),
              "test": (prepare(parts["test_images"]), parts["test_labels"].astype(np.int64))}
    return splits, list(FASHION_MNIST_LABELS), os.path.dirname(files["train_images"])


# ---- image folders ---------------------------------------------------------------------------------------

_SPLIT_DIRS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # as keras.utils.image_dataset_from_directory
MAX_IMAGE_PIXELS = 50_000_000  # per image, read from the header before decoding (a 50 MP photo is ~150 MB as RGB)
# The decoded dataset (images × size² × 3 bytes of uint8), checked before any decoding: 4 GiB holds 1.4 million
# 32×32 images or 28,000 224×224 ones; --image-size 20000 on a handful of images is refused, not swapped to death.
FOLDER_MAX_BYTES = 4 << 30
_DECODE_THREADS = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding and resizing


def _list_images(directory: str, class_names: list[str]) -> tuple[list[str], list[int], list[str]]:
    """Image paths and labels under ``directory/CLASS/`` (recursively; linked folders visited once), and
    ``"path: reason"`` for each name with an image extension that is not a regular file. Nothing is opened."""
    paths, labels, bad = [], [], []
    for label, name in enumerate(class_names):
        root = os.path.join(directory, name)
        seen = set()
        for folder, dirs, names in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:  # a link back up the tree: walk it once
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for entry in sorted(names):
                if not entry.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                full = os.path.join(folder, entry)
                try:
                    mode = os.stat(full).st_mode  # follows links: a link to a regular file is fine
                except OSError as error:
                    bad.append(f"{full}: {'broken link' if os.path.islink(full) else error.strerror}")
                    continue
                if not stat.S_ISREG(mode):
                    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
                    bad.append(f"{full}: {kind}")
                    continue
                paths.append(full)
                labels.append(label)
    return paths, labels, bad


def _decode(path: str, size: int) -> np.ndarray | str:
    """``size×size×3`` uint8, or the reason the image cannot be read. Opens regular files only (never blocks on a
    FIFO swapped in after the scan) and checks the pixel count in the header before decoding."""
    from PIL import Image

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return "not a regular file"
            with Image.open(f) as image:  # lazy: reads the header only
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return f"{width}×{height} pixels, more than {MAX_IMAGE_PIXELS / 1e6:.0f} MP"
                image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when that is still >= size
                rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8)
    except Exception as error:  # noqa: BLE001 - hostile files raise anything (OSError, SyntaxError, struct.error...)
        return f"{error.__class__.__name__}: {error}"[:200]


def _read_images(directory: str, size: int, class_names: list[str] | None = None):
    """``(x, y, class_names, skipped)`` of one class-per-folder directory."""
    subdirs = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if class_names is None:
        class_names = subdirs
    else:
        unknown = sorted(set(subdirs) - set(class_names))
        if unknown:
            raise DataError(f"image folder {directory} has class folders {unknown} that the training split lacks "
                            f"(its classes: {class_names})")
        subdirs = [c for c in class_names if c in subdirs]
    paths, labels, bad = _list_images(directory, [c for c in class_names if c in subdirs])
    if subdirs != class_names:  # a split without some classes: labels index the full list
        index = [class_names.index(c) for c in subdirs]
        labels = [index[label] for label in labels]
    if not paths and not bad:
        raise DataError(f"image folder {directory} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class "
                        f"sub-folders")
    return paths, labels, class_names, bad


def _decode_all(paths: list[str], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images of ``paths`` (in order), a mask of those that decoded, and the reasons for the rest."""
    x = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    bad = []
    with ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
        for i, (path, result) in enumerate(zip(paths, pool.map(lambda p: _decode(p, size), paths))):
            if isinstance(result, str):
                bad.append(f"{path}: {result}")
            else:
                x[i] = result
                ok[i] = True
    return x, ok, bad


def _folder(path: str | None, size: int):
    if not path or not os.path.isdir(path):
        raise DataError(f"image folder {path} does not exist; expected PATH/CLASS_NAME/*.jpg|png|bmp|gif")
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    named = {split: next((os.path.join(path, d) for d in dirs if d in subdirs), None)
             for split, dirs in _SPLIT_DIRS.items()}
    layout = named["train"] is not None and set(subdirs) <= {d for dirs in _SPLIT_DIRS.values() for d in dirs}
    directories = {"all": path} if not layout else {s: d for s, d in named.items() if d is not None}
    listed = {}
    names = None
    for split in ("all", "train", "val", "test"):  # train first: its classes name the labels of val and test
        if split in directories:
            listed[split] = _read_images(directories[split], size, names)
            names = listed[split][2]
    if len(names) < 2:
        raise DataError(f"image folder {path} needs at least 2 class sub-folders; found {names}")
    count = sum(len(paths) for paths, *_ in listed.values())
    need = count * size * size * 3
    if need > FOLDER_MAX_BYTES:
        raise DataError(f"image folder {path}: {count:,} images at --image-size {size} need {need / 2**30:.1f} GiB "
                        f"of memory, more than the limit of {FOLDER_MAX_BYTES / 2**30:.0f} GiB; use a smaller "
                        f"image size")
    read, skipped = {}, []
    for split, (paths, labels, _, bad) in listed.items():
        x, ok, undecoded = _decode_all(paths, size)
        skipped += bad + undecoded
        y = np.asarray(labels, dtype=np.int64)
        if not ok.all():
            x, y = x[ok], y[ok]
        if not len(y):
            raise DataError(f"image folder {directories[split]} holds no readable images "
                            f"({len(bad) + len(undecoded)} unreadable, e.g. {(bad + undecoded)[0]})")
        read[split] = (x, y)
    if not layout:
        return _three_way(*read["all"]), names, path, skipped
    x, y = read["train"]
    splits = {}
    if "test" not in read:
        keep, test = stratified_split(y, 0.2)
        splits["test"] = (x[test], y[test])
        x, y = x[keep], y[keep]
    else:
        splits["test"] = read["test"]
    if "val" not in read:
        keep, val = stratified_split(y, 0.2, SEED + 1)
        splits["val"] = (x[val], y[val])
        x, y = x[keep], y[keep]
    else:
        splits["val"] = read["val"]
    splits["train"] = (x, y)
    return {s: splits[s] for s in SPLITS}, names, path, skipped


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
                   pad: int = 4, augment: bool = True, drop_remainder: bool = False, shard_by_data: bool = True,
                   randaugment: tuple[int, float] | None = None, mix: dict | None = None,
                   num_classes: int | None = None):
    """Shuffled (reshuffled every epoch, seeded), batched, augmented, prefetched ``(float32 image, int64 label)``.

    The modern recipe's options (:mod:`keras_resnet.data.augment`), after pad/crop/flip: ``randaugment=(N, M)``, and
    ``mix`` (keyword arguments of :func:`~keras_resnet.data.augment.mix_batch`), which needs ``num_classes`` and makes
    the labels one-hot ``float32`` rows (soft where mixed).
    """
    import tensorflow as tf

    from keras_resnet.data import augment as augment_lib

    if mix is not None and num_classes is None:
        raise ConfigError("mixup/cutmix needs num_classes (the labels become one-hot rows)")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment or randaugment or mix:
        def transform(batch, s):
            images, labels = batch
            # The pad/crop/flip draws use `s` as before the recipe options existed: old runs stay reproducible.
            images = augment_batch(images, s, pad=pad, flip=flip) if augment else tf.cast(images, tf.float32)
            if randaugment:
                images = augment_lib.rand_augment(images, tf.random.experimental.stateless_fold_in(
                    tf.cast(s, tf.int32), 101), ops=randaugment[0], magnitude=randaugment[1])
            if mix is not None:
                images, labels = augment_lib.mix_batch(images, tf.one_hot(labels, num_classes), tf.random.experimental
                                                       .stateless_fold_in(tf.cast(s, tf.int32), 202), **mix)
            return images, labels

        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, randoms)).map(transform, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True)
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
