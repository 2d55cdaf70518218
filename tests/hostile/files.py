"""Builders for hostile model and data files (zip bombs, malformed configs, escaped Lambda layers, pickles).

Each writes one file and returns its path. They need numpy and h5py; the tf_keras builders import tf_keras.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

GB = 1 << 30


def _dos_time() -> tuple[int, int]:
    return (0 << 11) | (0 << 5), ((2020 - 1980) << 9) | (1 << 5) | 1


def _zeros_deflate(size: int, chunk: int = 16 << 20) -> tuple[bytes, int]:
    """(raw deflate stream of ``size`` zero bytes, its CRC-32), built in a second: one fully flushed block repeats."""
    assert size % chunk == 0
    block = b"\0" * chunk
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // chunk):
        crc = zlib.crc32(block, crc)
    return one * (size // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH), crc


def write_zip(path: str | os.PathLike, entries: dict[str, bytes | tuple[str, int]]) -> str:
    """A zip archive; an entry's value is its content (stored), or ``("zeros", N)``: N zero bytes, deflated."""
    mtime, mdate = _dos_time()
    local, central = bytearray(), bytearray()
    for name, content in entries.items():
        raw = name.encode()
        if isinstance(content, tuple):
            data, crc = _zeros_deflate(content[1])
            method, size = 8, content[1]
        else:
            data, crc, method, size = content, zlib.crc32(content), 0, len(content)
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, mtime, mdate, crc, len(data), size,
                             len(raw), 0) + raw + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, mtime, mdate, crc, len(data),
                               size, len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(local), 0)
    Path(path).write_bytes(bytes(local + central + end))
    return os.fspath(path)


def keras_entries(path: str | os.PathLike) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite_keras(source: str | os.PathLike, path: str | os.PathLike, **replace: bytes | tuple[str, int]) -> str:
    """A copy of the ``.keras`` archive ``source`` with entries replaced (``config_json=b"..."``: config.json)."""
    entries: dict = keras_entries(source)
    for key, value in replace.items():
        entries[key.replace("_json", ".json").replace("_h5", ".h5").replace("model_weights", "model.weights")] = value
    return write_zip(path, entries)


def h5_bomb(path: str | os.PathLike, size: int = 2 * GB, *, allocated: bool = True) -> str:
    """An HDF5 file with one gzip-compressed float32 dataset declaring ``size`` bytes of zeros, a few MB on disk
    (``allocated=False``: no chunk written at all; reading returns the fill value)."""
    import h5py

    chunk = 1 << 20  # elements
    with h5py.File(path, "w") as f:
        d = f.create_dataset("vars/0", shape=(size // 4,), dtype="f4", chunks=(chunk,), compression="gzip")
        if allocated:
            data = zlib.compress(b"\0" * (chunk * 4), 9)
            for i in range(size // 4 // chunk):
                d.id.write_direct_chunk((i * chunk,), data)
    return os.fspath(path)


def h5_with_config(source: str | os.PathLike, path: str | os.PathLike, config_text: str | bytes) -> str:
    """A copy of the ``.h5`` model ``source`` whose ``model_config`` attribute is replaced by ``config_text``."""
    import shutil

    import h5py

    shutil.copyfile(source, path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = config_text.encode() if isinstance(config_text, str) else config_text
    return os.fspath(path)


def escape_class_name(config_text: str, name: str) -> str:
    """Write ``"class_name": "NAME"`` with its first letter as a JSON \\u escape (what a substring test misses)."""
    escaped = f"\\u{ord(name[0]):04x}" + name[1:]
    out = config_text.replace(f'"class_name": "{name}"', f'"class_name": "{escaped}"')
    assert out != config_text, f"no {name} in the config"
    return out


def tf_keras_lambda_h5(path: str | os.PathLike, marker: str | os.PathLike, *, escape: bool = True) -> str:
    """A tf_keras ``.h5`` model whose Lambda layer creates ``marker`` when the model is rebuilt (code execution),
    its class name written as ``"\\u004cambda"`` when ``escape``."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    function = eval(f"lambda x: (__import__('pathlib').Path({os.fspath(marker)!r}).touch(), x)[1]")  # noqa: S307
    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.Lambda(function)(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x))
    plain = os.fspath(path) + ".plain.h5"
    model.save(plain, save_format="h5")
    if os.path.exists(marker):
        os.remove(marker)  # saving traced the lambda
    import h5py

    with h5py.File(plain, "r") as f:
        config = f.attrs["model_config"]
    config = config.decode() if isinstance(config, bytes) else config
    h5_with_config(plain, path, escape_class_name(config, "Lambda") if escape else config)
    os.remove(plain)
    return os.fspath(path)


def tf_keras_keras(path: str | os.PathLike) -> str:
    """A small tf_keras (Keras 2) model in the ``.keras`` format."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.GlobalAveragePooling2D()(inputs)
    tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x)).save(path)
    return os.fspath(path)


# ---- pickles ---------------------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cifar_batch(n: int = 4, *, fine: bool = False) -> dict:
    """A CIFAR python batch as the official files hold it (bytes keys)."""
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"training batch 1 of 5", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if fine:
        batch[b"fine_labels"], batch[b"coarse_labels"] = list(range(n)), [0] * n
    else:
        batch[b"labels"] = [i % 10 for i in range(n)]
    return batch


def evil_cifar_batch(path: str | os.PathLike, marker: str | os.PathLike) -> str:
    """A CIFAR batch that runs ``touch MARKER`` when unpickled, then is a valid batch."""
    batch = cifar_batch()
    batch[b"batch_label"] = _RunsCode(os.fspath(marker))
    Path(path).write_bytes(pickle.dumps(batch, protocol=2))
    return os.fspath(path)


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()


def py2_cifar_batch(n: int = 4) -> tuple[bytes, np.ndarray, list[int]]:
    """(pickle, data, labels): a CIFAR batch byte for byte as Python 2's cPickle wrote the official files (protocol
    2, str as SHORT_BINSTRING/BINSTRING, numpy.core.multiarray._reconstruct)."""
    data = np.random.default_rng(1).integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]

    def s(text: bytes) -> bytes:
        return (b"U" + bytes([len(text)]) + text) if len(text) < 256 else b"T" + struct.pack("<I", len(text)) + text

    def i(value: int) -> bytes:
        return b"K" + bytes([value]) if value < 256 else b"J" + struct.pack("<i", value)

    array = (b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02" + i(0) + b"\x85" + s(b"b") +
             b"\x87Rq\x03(" + i(1) + i(n) + i(3072) + b"\x86cnumpy\ndtype\nq\x04" + s(b"u1") + i(0) + i(1) +
             b"\x87Rq\x05(" + i(3) + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + i(0) + b"tb\x89" +
             s(data.tobytes()) + b"tb")
    body = (b"\x80\x02}q\x00(" + s(b"data") + array + s(b"labels") + b"](" + b"".join(i(v) for v in labels) +
            b"e" + s(b"batch_label") + s(b"training batch 1 of 5") + s(b"filenames") + b"](" +
            b"".join(s(f"f{k}.png".encode()) for k in range(n)) + b"eu.")
    return body, data, labels
