"""The ``cifar10`` and ``cifar100`` datasets: the official "python version" batches, read without running code.

From ``data_dir`` (the folder that holds ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself),
else from Keras' cache ``~/.keras/datasets``, else downloaded (:mod:`keras_resnet.data.downloads`) into that cache.
Every batch and the meta file are read with :mod:`keras_resnet.core.safe_pickle`, which runs no code from the
files. Validation: 5,000 training images (stratified, seeded); test: the official test batch.
"""

from __future__ import annotations

import glob
import os
import pickle

import numpy as np

from keras_resnet.core import safe_pickle
from keras_resnet.core.errors import DataError
from keras_resnet.data import downloads, splitting

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR = {  # name: (folder, train files, test files, label key, meta file, meta key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                "batches.meta", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}
NAMES: tuple[str, ...] = tuple(_CIFAR)


def _cifar_folder(key: str, data_dir: str | None) -> str | None:
    folder = _CIFAR[key][0]
    if data_dir is not None:
        candidates = [data_dir, os.path.join(data_dir, folder)]
    else:
        cache = downloads.keras_cache()
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


def _locate(key: str, data_dir: str | None) -> str:
    folder = _cifar_folder(key, data_dir)
    if folder is None and data_dir is not None:
        if not os.path.isdir(data_dir):
            raise DataError(f"{key}: data directory {data_dir} does not exist; {_where(key)}")
        raise DataError(f"{key}: no {_CIFAR[key][0]} files in {data_dir}; {_where(key)}")
    if folder is None:  # not cached: download and extract the archive keras.datasets uses, then read it here
        extracted = downloads.download_cifar(key, _CIFAR[key][0], _where(key))
        folder = _cifar_folder(key, extracted) or _cifar_folder(key, None)
        if folder is None:
            raise DataError(f"{key}: downloaded, but no {_CIFAR[key][0]} in ~/.keras/datasets; {_where(key)}")
    return folder


def load(key: str, data_dir: str | None):
    """``(splits, labels, source)`` of ``key`` (``"cifar10"`` or ``"cifar100"``): the three splits
    ``{name: (x, y)}``, the class names (from the meta file when it has them) and the folder read."""
    folder = _locate(key, data_dir)
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
    keep, val = splitting.stratified_split(y, 5000 / 50000)
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]), "test": (x_test, y_test)}
    return splits, labels, folder
