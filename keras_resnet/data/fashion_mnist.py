"""The ``fashion-mnist`` dataset: Zalando's Fashion-MNIST from its four IDX files, and :func:`read_idx` for one file.

60,000 training and 10,000 test 28×28 grayscale images of 10 clothing classes, read from the four original IDX
files (gzipped or not) in ``data_dir``, else in ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install
dataset-fashion-mnist``), else in Keras' cache ``~/.keras/datasets/fashion-mnist``, else downloaded through
``keras.datasets.fashion_mnist`` (:mod:`keras_resnet.data.downloads`). Zero-padded (2 pixels each side, no
resampling) to 32×32×1 so the CIFAR networks apply unchanged. Validation: 5,000 training images (stratified,
seeded); test: the official 10,000.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.data import downloads, splitting

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


def _files(folder: str) -> dict[str, str] | None:
    """The four IDX files in ``folder`` (``.gz`` preferred over raw), or ``None`` if one is missing."""
    found = {}
    for part, (stem, _) in FASHION_MNIST_FILES.items():
        path = next((os.path.join(folder, stem + ext) for ext in (".gz", "") if
                     os.path.isfile(os.path.join(folder, stem + ext))), None)
        if path is None:
            return None
        found[part] = path
    return found


def _where() -> str:
    names = ", ".join(stem + ".gz" for stem, _ in FASHION_MNIST_FILES.values())
    return (f"install it with `apt-get install dataset-fashion-mnist` (files in {FASHION_MNIST_DIR}), or pass "
            f"--data-dir DIR where DIR holds {names} (gzipped or not)")


def _locate(data_dir: str | None) -> dict[str, str]:
    if data_dir is not None:
        for folder in (data_dir, os.path.join(data_dir, "fashion-mnist")):
            files = _files(folder)
            if files:
                return files
        if not os.path.isdir(data_dir):
            raise DataError(f"fashion-mnist: data directory {data_dir} does not exist; {_where()}")
        raise DataError(f"fashion-mnist: no Fashion-MNIST IDX files in {data_dir}; {_where()}")
    cache = downloads.keras_cache("fashion-mnist")
    for folder in (FASHION_MNIST_DIR, cache):
        files = _files(folder)
        if files:
            return files
    # not installed, not cached: keras.datasets downloads the same four .gz files into its cache
    downloads.download_fashion_mnist(_where())
    files = _files(cache)
    if files is None:
        raise DataError(f"fashion-mnist: downloaded, but the IDX files are not in {cache}; {_where()}")
    return files


def load(data_dir: str | None):
    """``(splits, labels, source)``: the three splits ``{name: (x, y)}`` (32×32×1), the class names and the folder
    of the IDX files read."""
    files = _locate(data_dir)
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
    keep, val = splitting.stratified_split(y, 5000 / 60000)  # 500 per class of the official 60,000
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]),
              "test": (prepare(parts["test_images"]), parts["test_labels"].astype(np.int64))}
    return splits, list(FASHION_MNIST_LABELS), os.path.dirname(files["train_images"])
