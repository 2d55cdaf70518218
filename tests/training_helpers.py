"""Helpers shared by the training tests: the real `keras-resnet` command, tiny CIFAR folders, image folders."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
ENV.pop("KERAS_RESNET_DEBUG", None)
ENV.pop("TF_CONFIG", None)


def command() -> list[str]:
    """The installed `keras-resnet` console script next to this interpreter (else the module)."""
    script = Path(sys.executable).with_name("keras-resnet")
    if script.exists():
        return [str(script)]
    found = shutil.which("keras-resnet")
    return [found] if found else [sys.executable, "-m", "keras_resnet.cli"]


def popen(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*command(), *args], env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), *args], env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cifar_image(label: int, index: int) -> np.ndarray:
    """A 32×32×3 uint8 image whose pixels encode (label, index, channel): R=label, G=index, B=row."""
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0] = label
    image[..., 1] = index % 256
    image[..., 2] = np.arange(32, dtype=np.uint8)[:, None]
    return image


def _rows(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([im.transpose(2, 0, 1).reshape(-1) for im in images]).astype(np.uint8)  # official CHW rows


def write_cifar10(root: Path, per_batch: int = 20) -> Path:
    """A tiny cifar-10-batches-py folder in the official format (5 train batches, a test batch, meta)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    index = 0
    for b in range(1, 7):
        labels = [i % 10 for i in range(per_batch)]
        images = []
        for label in labels:
            images.append(cifar_image(label, index))
            index += 1
        batch = {b"batch_label": b"batch", b"labels": labels, b"data": _rows(images),
                 b"filenames": [b"x.png"] * per_batch}
        name = f"data_batch_{b}" if b <= 5 else "test_batch"
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return folder


def write_cifar100(root: Path, train: int = 200, test: int = 100) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, count in (("train", train), ("test", test)):
        fine = [i % 100 for i in range(count)]
        batch = {b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                 b"data": _rows([cifar_image(f, i) for i, f in enumerate(fine)])}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}, f)
    return folder


def write_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 10, size: int = 40) -> Path:
    """One sub-folder of PNG images per class; class k's images are filled with gray level 60·k + noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(60 * k + rng.integers(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root
