"""Datasets (digits, CIFAR in the official format, image folders) and the tf.data pipelines.

Fashion-MNIST (IDX files) has its own tests in test_fashion_mnist.py."""

from __future__ import annotations

import numpy as np
import pytest
from training_helpers import write_cifar10, write_cifar100, write_image_folder

from keras_resnet.core.errors import ConfigError, DataError, Error
from keras_resnet.data import datasets as data
from keras_resnet.data import pipeline, splitting


def test_registry_and_info_fields():
    assert {"digits", "cifar10", "cifar100", "fashion-mnist", "folder"} <= set(data.DATASETS)
    info = data.info("digits")
    assert (info.name, info.num_classes, info.image_shape, info.flip) == ("digits", 10, (32, 32, 3), False)
    assert info.labels == [str(i) for i in range(10)]
    assert len(info.mean) == len(info.variance) == 3 and 0 < info.mean[0] < 255 and info.variance[0] > 0
    x, _ = data.load("digits", "train")
    assert info.mean[0] == pytest.approx(x[..., 0].mean())
    with pytest.raises(AttributeError):
        info.name = "other"  # frozen


def test_digits_splits_are_fixed_disjoint_stratified():
    parts = {s: data.load("digits", s) for s in splitting.SPLITS}
    sizes = {s: len(y) for s, (_, y) in parts.items()}
    assert sum(sizes.values()) == 1797 and 1100 <= sizes["train"] <= 1200 and sizes["test"] >= 350
    for x, y in parts.values():
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and x.max() == 255
        assert np.array_equal(x[..., 0], x[..., 2])  # gray replicated
        assert set(np.unique(y)) == set(range(10))
        counts = np.bincount(y, minlength=10)
        assert counts.max() - counts.min() <= 0.2 * counts.mean()  # stratified
    rows = {s: {x.tobytes() for x in parts[s][0]} for s in splitting.SPLITS}
    assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"]
    again = data.load("digits", "test")
    assert np.array_equal(again[0], parts["test"][0]) and np.array_equal(again[1], parts["test"][1])


def test_cifar10_official_format(tmp_path):
    write_cifar10(tmp_path)
    for data_dir in (tmp_path, tmp_path / "cifar-10-batches-py"):
        info = data.info("cifar10", str(data_dir))
        assert info.num_classes == 10 and info.labels[0] == "airplane" and info.flip
        x, y = data.load("cifar10", "train", str(data_dir))
        xv, yv = data.load("cifar10", "val", str(data_dir))
        xt, yt = data.load("cifar10", "test", str(data_dir))
        assert (len(x), len(xv), len(xt)) == (90, 10, 20)  # val: 10% of the 100 training images, stratified
        assert sorted(yv.tolist()) == list(range(10))
        # the CHW rows became HWC images: R = label, B = row index
        assert np.array_equal(x[..., 0], np.broadcast_to(y[:, None, None], (len(y), 32, 32)))
        assert np.array_equal(xt[0, :, 5, 2], np.arange(32))
        assert not set(x[:, 0, 0, 1].tolist()) & set(xv[:, 0, 0, 1].tolist())  # disjoint train / val


def test_cifar100_official_format(tmp_path):
    write_cifar100(tmp_path)
    info = data.info("cifar100", str(tmp_path))
    assert info.num_classes == 100 and info.labels[3] == "class3"
    x, y = data.load("cifar100", "test", str(tmp_path))
    assert x.shape == (100, 32, 32, 3) and np.array_equal(x[:, 0, 0, 0], y)


def test_cifar_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py.*--data-dir|--data-dir.*cifar-10-batches-py"):
        data.load("cifar10", "train", str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        data.info("cifar100", str(tmp_path / "nowhere"))
    broken = tmp_path / "b" / "cifar-10-batches-py"
    broken.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (broken / name).write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read"):
        data.load("cifar10", "train", str(tmp_path / "b"))


def test_unknown_names():
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'.*digits.*fashion-mnist"):
        data.load("mnist", "train")
    with pytest.raises(ConfigError, match="unknown split"):
        data.load("digits", "training")
    with pytest.raises(ConfigError, match="--data-dir"):
        data.info("folder")
    for alias in ("fashion-mnist", "fashionmnist", "fashion_mnist", "Fashion-MNIST"):
        assert data.parse_name(alias) == ("fashion-mnist", None)
    assert data.parse_name("CIFAR-10", "/d") == ("cifar10", "/d")


def test_errors_are_typed_and_keep_their_cause(tmp_path):
    broken = tmp_path / "cifar-10-batches-py"
    broken.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (broken / name).write_bytes(b"not a pickle")
    with pytest.raises(DataError) as caught:
        data.load("cifar10", "train", str(tmp_path))
    assert isinstance(caught.value.__cause__, Exception)  # `from error`, not `from None`
    assert isinstance(caught.value, Error) and isinstance(caught.value, ValueError)


def test_image_folder_flat_and_split_layouts(tmp_path):
    flat = write_image_folder(tmp_path / "flat")
    info = data.info(f"folder:{flat}")
    assert info.labels == ["cat", "dog", "fox"] and info.image_shape == (32, 32, 3) and info.flip
    sizes = [len(data.load(f"folder:{flat}", s)[1]) for s in splitting.SPLITS]
    assert sum(sizes) == 30 and min(sizes) >= 3
    x, y = data.load("folder", "train", str(flat), image_size=16)
    assert x.shape[1:] == (16, 16, 3) and x.dtype == np.uint8
    assert np.all(np.abs(x.mean(axis=(1, 2, 3)) - (60 * y + 10)) < 5)  # class k is gray level 60k (+ noise)

    layout = tmp_path / "layout"
    write_image_folder(layout / "train", per_class=8)
    write_image_folder(layout / "test", per_class=2)
    assert len(data.load(f"folder:{layout}", "test")[1]) == 6
    assert len(data.load(f"folder:{layout}", "train")[1]) + len(data.load(f"folder:{layout}", "val")[1]) == 24

    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="no images|No images"):
        data.load(f"folder:{tmp_path / 'empty'}", "train")
    with pytest.raises(DataError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'missing'}", "train")


def _is_crop(out: np.ndarray, image: np.ndarray, pad: int, flips: bool) -> bool:
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    h, w = image.shape[:2]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy:dy + h, dx:dx + w]
            if np.array_equal(out, crop) or (flips and np.array_equal(out, crop[:, ::-1])):
                return True
    return False


@pytest.mark.parametrize("flip", [False, True])
def test_train_pipeline_pads_crops_and_flips_only_when_allowed(flip):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 255, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40, dtype=np.int64)
    ds = pipeline.train_pipeline(x, y, 16, flip=flip, seed=3)
    seen, flipped, shifted = [], 0, 0
    for images, labels in ds:
        assert images.dtype.name == "float32" and images.shape[1:] == (32, 32, 3)
        for out, label in zip(images.numpy().astype(np.uint8), labels.numpy()):
            source = x[label]
            assert _is_crop(out, source, 4, flip)
            assert flip or _is_crop(out, source, 4, False)
            flipped += not _is_crop(out, source, 4, False)
            shifted += not np.array_equal(out, source) and not np.array_equal(out, source[:, ::-1])
            seen.append(int(label))
    assert sorted(seen) == list(range(40)) and seen != list(range(40))  # every image once, shuffled
    assert shifted > 20 and (flipped > 5 if flip else flipped == 0)
    first = [b.numpy() for b, _ in pipeline.train_pipeline(x, y, 16, flip=flip, seed=3)]
    second = [b.numpy() for b, _ in ds]
    assert np.array_equal(first[0], [b.numpy() for b, _ in pipeline.train_pipeline(x, y, 16, flip=flip, seed=3)][0])
    assert not np.array_equal(first[0], second[0])  # a new shuffle and new crops every epoch


def test_eval_pipeline_is_deterministic_raw_pixels():
    x, y = data.load("digits", "val")
    batches = list(pipeline.eval_pipeline(x, y, 100))
    assert [len(b[1]) for b in batches] == [100, 100, len(y) - 200]
    images = np.concatenate([b[0].numpy() for b in batches])
    assert images.dtype == np.float32 and np.array_equal(images, x.astype(np.float32))
    assert np.array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


def test_pipelines_run_without_tf_data_autotuning():
    """pipeline._finish turns autotuning off: with it, one epoch in five stalled ~2.5 s with the cores idle."""
    x = np.zeros((8, 4, 4, 1), np.uint8)
    y = np.arange(8)
    for ds in (pipeline.train_pipeline(x, y, 4), pipeline.eval_pipeline(x, y, 4),
               pipeline.train_pipeline(x, y, 4, augment=False)):
        assert ds.options().autotune.enabled is False
        assert ds.options().deterministic is True
        assert sum(len(b[0]) for b in ds) == 8


def test_stratified_split_keeps_every_class():
    y = np.repeat(np.arange(5), [2, 3, 10, 50, 1])
    keep, held = splitting.stratified_split(y, 0.2)
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(len(y)))
    assert set(y[keep]) == set(range(5)) and set(y[held]) == {0, 1, 2, 3}
