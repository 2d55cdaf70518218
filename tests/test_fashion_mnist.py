"""Fashion-MNIST: the IDX reader on tiny generated files (and hostile ones), the loader, the real Debian files."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.data import datasets as data
from keras_resnet.data import fashion_mnist

STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def idx_bytes(array: np.ndarray, *, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic, big-endian dimensions, data (header fields can be forged)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    dims = array.shape if dims is None else dims
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims) + array.tobytes()


def write(path: Path, content: bytes, gz: bool) -> Path:
    path = Path(str(path) + ".gz") if gz else path
    path.write_bytes(gzip.compress(content, compresslevel=1) if gz else content)
    return path


def tiny_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def write_fashion(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, labels=None) -> dict:
    """A miniature Fashion-MNIST: image k's top-left pixel is its index, labels k mod 10."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = tiny_images(n, seed=n)
        x[:, 0, 0] = np.arange(n)
        y = np.arange(n, dtype=np.uint8) % 10 if labels is None else np.asarray(labels[split], np.uint8)
        write(folder / STEMS[f"{split}_images"], idx_bytes(x), gz)
        write(folder / STEMS[f"{split}_labels"], idx_bytes(y), gz)
        parts[split] = (x, y)
    return parts


@pytest.fixture
def peak_memory():
    """Peak Python/numpy allocation (bytes) during the test body, via tracemalloc."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    yield lambda: tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    x = tiny_images(7)
    y = np.array([0, 9, 3, 3, 1, 2, 8], np.uint8)
    images = fashion_mnist.read_idx(str(write(tmp_path / "i", idx_bytes(x), gz)), "images")
    labels = fashion_mnist.read_idx(str(write(tmp_path / "l", idx_bytes(y), gz)), "labels")
    assert images.dtype == np.uint8 and images.shape == (7, 28, 28) and np.array_equal(images, x)
    assert np.array_equal(labels, y)
    other = tiny_images(3)[:, :20, :24]
    path = str(write(tmp_path / "o", idx_bytes(other), gz))
    assert fashion_mnist.read_idx(path, "images", image_size=None).shape == (3, 20, 24)
    with pytest.raises(DataError, match="20×24, expected 28×28"):
        fashion_mnist.read_idx(path, "images")
    with pytest.raises(ConfigError, match="kind"):
        fashion_mnist.read_idx(path, "pixels")


@pytest.mark.parametrize("gz", [True, False])
def test_hostile_headers_are_clean_errors_without_big_allocations(tmp_path, gz, peak_memory):
    x = tiny_images(4)
    cases = {
        "magic": (idx_bytes(x, magic=0x00000d03), "images", r"magic 0x00000d03, expected 0x00000803"),
        "labels as images": (idx_bytes(np.zeros(4)), "images", "magic 0x00000801"),
        "huge count": (idx_bytes(x, dims=(2**31, 28, 28)), "images", "2,147,483,648 images, more than the limit"),
        "huge labels": (idx_bytes(np.zeros(4), dims=(2**32 - 1,)), "labels", "more than the limit"),
        "huge bytes": (idx_bytes(x, dims=(900_000, 28, 28)), "images", "bytes of data, more than the limit"),
        "huge side": (idx_bytes(x, dims=(4, 2**20, 2**20)), "images", "expected 28×28"),
        "truncated": (idx_bytes(x)[:-100], "images", r"truncated .*4 images = 3,136 bytes.*only 3,036"),
        "short header": (idx_bytes(x)[:10], "images", "header of 10 bytes"),
        "trailing": (idx_bytes(x) + b"\0", "images", "longer than its header says"),
        "empty": (b"", "labels", "header of 0 bytes"),
    }
    for name, (content, kind, message) in cases.items():
        path = write(tmp_path / name.replace(" ", "_"), content, gz)
        with pytest.raises(DataError, match=message):
            fashion_mnist.read_idx(str(path), kind)
    with pytest.raises(DataError, match="more than the limit of 3"):
        fashion_mnist.read_idx(str(write(tmp_path / "cap", idx_bytes(x), gz)), "images", max_items=3)
    assert peak_memory() < 8 * 2**20, "a hostile header made the reader allocate"


def test_gzip_bomb_is_not_decompressed_past_the_declared_size(tmp_path, peak_memory):
    header = idx_bytes(tiny_images(2))  # declares 2 images = 1,568 bytes
    bomb = tmp_path / "bomb.gz"
    zeros = bytes(2**20)
    with gzip.open(bomb, "wb", compresslevel=9) as f:  # 1,568 bytes + 64 MiB of zeros, ~64 kB on disk
        f.write(header)
        for _ in range(64):
            f.write(zeros)
    assert bomb.stat().st_size < 2**20
    tracemalloc.reset_peak()
    with pytest.raises(DataError, match="longer than its header says"):
        fashion_mnist.read_idx(str(bomb), "images")
    assert peak_memory() < 8 * 2**20


def test_corrupt_gzip_and_missing_file_are_data_errors(tmp_path):
    good = gzip.compress(idx_bytes(tiny_images(3)))
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(good[:10] + b"\xff" * 40)  # a gzip header, then a deflate block of the reserved type
    with pytest.raises(DataError, match="cannot read .* as an IDX file") as caught:
        fashion_mnist.read_idx(str(corrupt), "images")
    assert caught.value.__cause__ is not None
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError):
        fashion_mnist.read_idx(str(cut), "images")
    with pytest.raises(DataError, match="cannot read"):
        fashion_mnist.read_idx(str(tmp_path / "absent"), "labels")


@pytest.mark.parametrize("gz", [True, False])
def test_load_and_info_from_data_dir(tmp_path, gz):
    parts = write_fashion(tmp_path / "fm", n_train=120, n_test=30, gz=gz)
    for alias in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        info = data.info(alias, str(tmp_path / "fm"))
        assert info.name == "fashion-mnist" and info.num_classes == 10 and info.flip
        assert info.labels[0] == "T-shirt/top" and info.labels[9] == "Ankle boot" and len(info.labels) == 10
        assert info.image_shape == (32, 32, 1) and len(info.mean) == len(info.variance) == 1
        assert info.sizes == {"train": 110, "val": 10, "test": 30}  # 5,000 / 60,000 of 120, one per class
        assert info.source == str(tmp_path / "fm")
    x, y = data.load("fashion-mnist", "train", str(tmp_path / "fm"))
    xv, yv = data.load("fashion-mnist", "val", str(tmp_path / "fm"))
    xt, yt = data.load("fashion-mnist", "test", str(tmp_path / "fm"))
    assert x.dtype == np.uint8 and x.shape == (110, 32, 32, 1) and y.dtype == np.int64
    assert sorted(yv.tolist()) == list(range(10))  # stratified
    x_all, y_all = parts["train"]
    index = x[:, 2, 2, 0].astype(int)  # the top-left pixel of the 28×28 image, after 2 pixels of padding
    assert np.array_equal(x[:, 2:30, 2:30, 0], x_all[index]) and np.array_equal(y, y_all[index])
    for images in (x, xv, xt):
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        assert not images[:, border].any()  # zero padding, no resampling
    assert not set(index) & set(xv[:, 2, 2, 0].tolist())  # disjoint train / val
    assert np.array_equal(xt[:, 2:30, 2:30, 0], parts["test"][0]) and np.array_equal(yt, parts["test"][1])
    assert info.mean[0] == pytest.approx(x.mean())


def test_data_dir_may_be_the_parent_folder(tmp_path):
    write_fashion(tmp_path / "fashion-mnist")
    assert data.info("fashion-mnist", str(tmp_path)).sizes["test"] == 20


def test_bad_datasets_are_data_errors(tmp_path):
    labels = {"train": np.arange(60) % 10, "test": np.r_[np.arange(19) % 10, 10]}
    write_fashion(tmp_path / "label", labels=labels)
    with pytest.raises(DataError, match="label 10; expected 0..9"):
        data.load("fashion-mnist", "test", str(tmp_path / "label"))
    write_fashion(tmp_path / "count")
    (tmp_path / "count" / (STEMS["train_labels"] + ".gz")).write_bytes(gzip.compress(idx_bytes(np.zeros(59))))
    with pytest.raises(DataError, match="60 images but .* 59 labels"):
        data.load("fashion-mnist", "train", str(tmp_path / "count"))
    write_fashion(tmp_path / "swap")
    os.replace(tmp_path / "swap" / (STEMS["test_labels"] + ".gz"), tmp_path / "swap" / "x")
    os.replace(tmp_path / "swap" / (STEMS["test_images"] + ".gz"), tmp_path / "swap" / (STEMS["test_labels"] + ".gz"))
    os.replace(tmp_path / "swap" / "x", tmp_path / "swap" / (STEMS["test_images"] + ".gz"))
    with pytest.raises(DataError, match="not an IDX images file"):
        data.load("fashion-mnist", "test", str(tmp_path / "swap"))


def test_missing_files_name_the_package_and_data_dir(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist.*--data-dir"):
        data.info("fashion-mnist", str(tmp_path))
    with pytest.raises(DataError, match="does not exist.*apt-get install dataset-fashion-mnist"):
        data.info("fashion-mnist", str(tmp_path / "nowhere"))

    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", str(tmp_path / "not-installed"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    data._load_all.cache_clear()
    try:
        with pytest.raises(DataError, match=r"could not be downloaded \(OSError\).*apt-get install "
                                            r"dataset-fashion-mnist.*--data-dir") as caught:
            data.load("fashion-mnist", "train")
        assert isinstance(caught.value.__cause__, OSError)
        write_fashion(tmp_path / "keras" / "datasets" / "fashion-mnist")  # Keras' cache is the third source
        assert data.info("fashion-mnist").source == str(tmp_path / "keras" / "datasets" / "fashion-mnist")
    finally:
        data._load_all.cache_clear()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(fashion_mnist.FASHION_MNIST_DIR),
                    reason=f"needs the Debian package dataset-fashion-mnist ({fashion_mnist.FASHION_MNIST_DIR}); "
                           f"apt-get install dataset-fashion-mnist")
def test_real_debian_files():
    info = data.info("fashion-mnist")
    assert info.source == fashion_mnist.FASHION_MNIST_DIR and info.image_shape == (32, 32, 1)
    assert info.sizes == {"train": 55000, "val": 5000, "test": 10000}
    x, y = data.load("fashion-mnist", "train")
    xt, yt = data.load("fashion-mnist", "test")
    assert x.shape == (55000, 32, 32, 1) and xt.shape == (10000, 32, 32, 1)
    assert np.bincount(yt).tolist() == [1000] * 10 and np.bincount(y).tolist() == [5500] * 10
    assert info.mean[0] == pytest.approx(72.94 * 28 * 28 / 32 / 32, abs=0.1)  # the known 28×28 mean, zero-padded
    assert not x[:, :2].any() and not xt[:, :, -2:].any()
