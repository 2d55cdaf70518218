"""The ``folder:PATH`` datasets: images in one sub-folder per class, decoded with Pillow in threads.

Images (.jpg, .jpeg, .png, .bmp, .gif) are converted to RGB and resized (bilinear) to ``image_size``. Only
regular files are opened; unreadable, corrupt or oversized images and non-files (FIFOs, devices, broken links) are
returned as ``skipped`` (``"path: reason"``), never raised one by one. The whole dataset at ``image_size`` must fit
:data:`FOLDER_MAX_BYTES`, checked before anything is decoded. If PATH holds ``train/`` (and optionally ``val/`` and
``test/``) those are the splits; missing splits (or all of them, for a plain class-per-folder PATH) are carved out
with the stratified seeded split of :mod:`keras_resnet.data.splitting`.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_resnet.core.errors import DataError
from keras_resnet.data import splitting

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


def load(path: str | None, size: int):
    """``(splits, labels, source, skipped)``: the three splits ``{name: (x, y)}`` at ``size×size×3``, the class
    names (the sub-folders, of ``train/`` when PATH has split folders), PATH, and ``"path: reason"`` for each
    image left out."""
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
        return splitting.three_way(*read["all"]), names, path, skipped
    x, y = read["train"]
    splits = {}
    if "test" not in read:
        keep, test = splitting.stratified_split(y, 0.2)
        splits["test"] = (x[test], y[test])
        x, y = x[keep], y[keep]
    else:
        splits["test"] = read["test"]
    if "val" not in read:
        keep, val = splitting.stratified_split(y, 0.2, splitting.SEED + 1)
        splits["val"] = (x[val], y[val])
        x, y = x[keep], y[keep]
    else:
        splits["val"] = read["val"]
    splits["train"] = (x, y)
    return {s: splits[s] for s in splitting.SPLITS}, names, path, skipped

