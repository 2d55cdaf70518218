"""Downloads through Keras (``keras.utils.get_file``, ``keras.datasets``) into Keras' cache, with one clear error.

Only for datasets that are neither in ``data_dir`` nor already cached. Offline (or on any fetch failure) the
error is one :class:`DataError` line that names the dataset and says where to put the files instead.
"""

from __future__ import annotations

import os

from keras_resnet.core.errors import DataError

CIFAR_ARCHIVES = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",  # as keras.datasets
                  "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}


def keras_cache(*parts: str) -> str:
    """Keras' dataset cache, ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), joined with ``parts``."""
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "datasets", *parts)


def _offline(name: str, error: Exception, where: str) -> DataError:
    return DataError(f"{name} is not on this machine and could not be downloaded "
                     f"({error.__class__.__name__}); {where}")


def download_cifar(key: str, folder: str, where: str) -> str:
    """Download and extract the archive ``keras.datasets`` uses for ``key``; the path ``get_file`` returns.

    Not ``keras.datasets.*.load_data()``: it unpickles the batches with plain pickle. ``where``: the hint of the
    error when the download fails.
    """
    import keras

    try:
        # fname as keras.datasets names it: the same cache folder, ~/.keras/datasets/<folder>/<folder>
        extracted = keras.utils.get_file(fname=folder, origin=CIFAR_ARCHIVES[key], extract=True,
                                         cache_subdir="datasets")
    except Exception as error:  # network errors differ by platform; all mean "could not fetch"
        raise _offline(key, error, where) from error
    return os.fspath(extracted)


def download_fashion_mnist(where: str) -> None:
    """Let ``keras.datasets.fashion_mnist`` download its four ``.gz`` IDX files into ``keras_cache("fashion-mnist")``."""
    import keras

    try:
        keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # network errors differ by platform; all mean "could not fetch"
        raise _offline("fashion-mnist", error, where) from error
