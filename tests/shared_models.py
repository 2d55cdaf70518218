"""Trained models that several test files need, made once and kept on disk for every process that asks.

A trained digits ResNet-20 took 8 epochs in each pytest-xdist worker (a session fixture is per process), another 6 in
tests/test_qat_native.py and one more CLI run in tests/test_docs.py; now one is trained per code version. A
``cached`` entry lives in ``.pytest-fixture-cache/NAME-KEY/`` (git-ignored; ``KERAS_RESNET_FIXTURE_CACHE`` moves
it). KEY hashes what decides the result: every source file of keras_resnet, the code and parameters that make the
entry, and the Keras, TensorFlow and NumPy versions. An edit to the library or to the maker trains afresh; a rerun of
unchanged code, or the other xdist worker, reuses the files. An exclusive lock (fcntl.flock) on ``NAME-KEY.lock``
makes a second process wait for the first rather than train the same model beside it. Entries are read-only: a test
that writes next to a shared model fails loudly instead of changing it for the tests after it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("KERAS_RESNET_FIXTURE_CACHE") or ROOT / ".pytest-fixture-cache")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@functools.cache
def _library_digest() -> str:
    """keras_resnet's sources as this process first saw them (one key per process, though files change later)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "keras_resnet").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def code_key(make: Callable, params: dict) -> str:
    """A hash of keras_resnet's sources, ``make``'s source, ``params`` and the versions the result depends on."""
    digest = hashlib.sha256(_library_digest().encode())
    digest.update(inspect.getsource(make).encode())
    versions = {name: _version(name) for name in ("keras", "tensorflow", "numpy", "ai-edge-litert")}
    digest.update(json.dumps([params, versions], sort_keys=True).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): two processes may each make the entry; the rename keeps one
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_only(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _drop_stale(name: str, age: float = 86400) -> None:
    """Remove this entry's folders and locks for other code versions, once a day old: a test run started a little
    earlier from another state of the working tree may still be reading a newer one."""
    now = time.time()
    for stale in CACHE.iterdir():
        if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}(\.partial|\.lock)?", stale.name) and (
                now - stale.stat().st_mtime > age):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def cached(name: str, make: Callable[[Path], None], **params) -> Path:
    """The folder ``make(folder, **params)`` filled, made by the first process to ask for this code version."""
    key = code_key(make, params)
    folder = CACHE / f"{name}-{key}"
    if (folder / ".done").exists():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    with _locked(CACHE / f"{name}-{key}.lock"):
        if (folder / ".done").exists():  # made by the process that held the lock before us
            return folder
        _drop_stale(name)
        work = CACHE / f"{name}-{key}.partial"
        shutil.rmtree(work, ignore_errors=True)  # left by a process that died holding the lock
        work.mkdir()
        make(work, **params)
        (work / ".done").write_text(json.dumps(params, sort_keys=True))
        _read_only(work)
        work.rename(folder)
    return folder


# ---- the entries -------------------------------------------------------------------------------------------------


def _train_digits(folder: Path, *, model: str, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    import keras

    from keras_resnet.data import datasets as data
    from keras_resnet.train import recipe as train

    keras.utils.set_random_seed(seed)
    net = train.model_for_dataset(model, data.info("digits"))
    x, y = data.load("digits", "train")
    net.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy")
    net.fit(x.astype("float32"), y, epochs=epochs, batch_size=batch_size, verbose=0)
    net.save(folder / "model.keras")


def trained_digits_model(tmp_path_factory=None) -> str:
    """ResNet-20 trained briefly on digits (8 SGD epochs, ~97% test accuracy), shared by the QAT, convert, aeq, check,
    micro and docs tests. Read-only: load it, and write what you make from it under your own tmp_path.
    (``tmp_path_factory`` is accepted and unused: the model is no longer kept per process.)"""
    folder = cached("digits-resnet20", _train_digits, model="resnet20", epochs=8, batch_size=64, lr=0.05, seed=0)
    return str(folder / "model.keras")


def _convert_int8(folder: Path, *, model: str) -> None:
    from keras_resnet.cli.main import main

    assert main(["convert", model, "--output", str(folder / "model.tflite"), "--quantize", "int8",
                 "--calibration-data", "digits", "--min-agreement", "0"]) == 0


def trained_digits_int8() -> str:
    """``trained_digits_model`` converted to an int8 .tflite by the command line (PTQ on digits images)."""
    folder = cached("digits-resnet20-int8", _convert_int8, model=trained_digits_model())
    return str(folder / "model.tflite")
