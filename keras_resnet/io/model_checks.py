"""The checks a model file passes before Keras or tf_keras reads a byte of it (security-critical; docs/security.md).

Model files come from strangers. Before any Keras code sees a file:

- a ``.keras`` archive is checked entry by entry: the number of entries, names (no absolute or ``..`` paths, no
  duplicates), each entry's declared size and compression ratio, the total declared size, and the CRC of every
  entry (read in bounded chunks), so a zip bomb or a truncated file is refused without being inflated;
- the HDF5 weights (``model.weights.h5`` inside a ``.keras``, or the ``.h5`` file itself) are checked dataset by
  dataset: the bytes each dataset declares must be stored in the file (no compressed or unallocated bombs), and
  their total is capped;
- ``config.json`` (or the ``.h5`` ``model_config``) is parsed as JSON (so escapes such as ``"\\u004cambda"`` are
  decoded first), its nesting bounded, and walked against the allow-list of :mod:`keras_resnet.io.allowlist`.

Every failure is a :class:`~keras_resnet.core.errors.ModelFileError` (:class:`UnsafeModelError` for the allow-list)
with one line of explanation and its cause chained. :func:`keras_resnet.io.model_io.load_model` runs
:func:`check_model_file` first.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

from resnet_edge.metadata import load_json

from keras_resnet.core.errors import ModelFileError
from keras_resnet.io.allowlist import check_config, json_kind

MODEL_SUFFIXES = (".keras", ".h5")

# ---- limits ----------------------------------------------------------------------------------------------------

MAX_ENTRIES = 10_000  # a .keras holds 3 entries, plus assets
MAX_JSON_BYTES = 64 << 20  # config.json of ResNet-1202: 2 MB
MAX_TOTAL_BYTES = 4 << 30  # everything a .keras or .h5 declares (ResNet-152 weights: 240 MB)
MAX_RATIO = 100  # declared / stored bytes of one entry or dataset (Keras stores weights uncompressed: 1.0)
RATIO_FLOOR = 1 << 20  # entries and datasets below this size are not ratio-checked
MAX_CONFIG_DEPTH = 256  # ResNet configs are 15 deep; each nested model adds about 4
_CHUNK = 1 << 20


# ---- archive checks ------------------------------------------------------------------------------------------------


@dataclass
class KerasArchive:
    """What :func:`check_keras_archive` found: ``keras_version`` (2.x: tf_keras, 3.x: Keras 3), the parsed
    ``config`` and its layer count."""

    keras_version: str | None
    config: dict
    layers: int


def _mb(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MB" if n < (1 << 30) else f"{n / (1 << 30):,.2f} GB"


def _check_entries(path: str, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise ModelFileError(f"{path}: the archive has {len(entries):,} entries (at most {MAX_ENTRIES:,} allowed)")
    names: set[str] = set()
    total = 0
    for info in entries:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise ModelFileError(f"{path}: archive entry {name!r} points outside the archive")
        if name in names:
            raise ModelFileError(f"{path}: archive entry {name!r} appears twice")
        names.add(name)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ModelFileError(f"{path}: archive entry {name!r} declares {_mb(info.file_size)} stored in "
                                 f"{_mb(info.compress_size)} (more than {MAX_RATIO}x compression: a zip bomb?)")
        if name.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise ModelFileError(f"{path}: archive entry {name!r} declares {_mb(info.file_size)} (JSON entries are "
                                 f"limited to {_mb(MAX_JSON_BYTES)})")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: the archive declares {_mb(total)} in all (at most {_mb(MAX_TOTAL_BYTES)})")
    return entries


def _verify_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read one entry through in bounded chunks: zipfile stops at its declared size and checks its CRC."""
    with archive.open(info) as f:
        while f.read(_CHUNK):
            pass


def read_json_entry(path: str, archive: zipfile.ZipFile, name: str, *, max_depth: int) -> Any:
    try:
        data = archive.read(name)
    except KeyError:
        raise ModelFileError(f"{path}: the archive has no {name} (not a Keras .keras file?)") from None
    try:
        return load_json(data, f"{path}: {name}", max_depth=max_depth)
    except ValueError as error:
        raise ModelFileError(str(error)) from error


def check_keras_archive(path: str, *, unsafe: bool = False) -> KerasArchive:
    """Check a ``.keras`` archive as described in the module docstring, before any Keras code reads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = _check_entries(path, archive)
            for info in entries:
                _verify_entry(archive, info)
            metadata = read_json_entry(path, archive, "metadata.json", max_depth=8) \
                if "metadata.json" in archive.namelist() else {}
            if not isinstance(metadata, dict):
                raise ModelFileError(f"{path}: metadata.json is a JSON {json_kind(metadata)}, not an object")
            config = read_json_entry(path, archive, "config.json", max_depth=MAX_CONFIG_DEPTH)
            check_config(config, path, unsafe=unsafe)
            for info in entries:
                if info.filename.endswith(".h5"):
                    with archive.open(info) as f:
                        check_hdf5(f, f"{path}: {info.filename}", stored=info.file_size)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError) as error:  # RuntimeError: encrypted entries; NotImplementedError: unknown compression
        raise ModelFileError(f"{path} is not a readable .keras archive (corrupt or truncated?): "
                             f"{first_line(error)}") from error
    version = metadata.get("keras_version")
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    return KerasArchive(str(version) if version is not None else None, config,
                        len(layers) if isinstance(layers, list) else 0)


def keras_archive_info(path: str) -> tuple[str | None, int]:
    """``(keras_version, layer count)`` of a ``.keras`` archive (tf_keras writes 2.x, Keras 3 writes 3.x);
    ``(None, 0)`` when the archive does not pass :func:`check_keras_archive` (allow-list not applied)."""
    try:
        info = check_keras_archive(path, unsafe=True)
    except ModelFileError:
        return None, 0
    return info.keras_version, info.layers


def check_hdf5(source, what: str, *, stored: int | None = None) -> None:
    """Refuse an HDF5 file whose datasets declare more bytes than it stores (compressed or unallocated bombs) or
    more than :data:`MAX_TOTAL_BYTES` in all. ``source``: a path or a seekable binary file."""
    import h5py

    try:
        with h5py.File(source, "r") as f:
            total = 0
            datasets: list[Any] = []
            f.visititems(lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
            for name, dataset in datasets:
                declared = int(dataset.size or 0) * int(dataset.dtype.itemsize)
                kept = int(dataset.id.get_storage_size())
                if declared > RATIO_FLOOR and declared > MAX_RATIO * max(kept, 1):
                    raise ModelFileError(f"{what}: dataset {name!r} declares {_mb(declared)} but stores "
                                         f"{_mb(kept)} (a compression bomb?)")
                total += declared
            if total > MAX_TOTAL_BYTES:
                raise ModelFileError(f"{what}: the weights declare {_mb(total)} (at most {_mb(MAX_TOTAL_BYTES)})")
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{what} is not a readable HDF5 file (corrupt or truncated?): "
                             f"{first_line(error)}") from error


def _h5_model_config(path: str) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{path} is not a readable .h5 model (corrupt or truncated?): "
                             f"{first_line(error)}") from error
    if raw is None:
        raise ModelFileError(f"{path} holds no model_config (a weights-only .h5 file?); expected a model saved by "
                             "`keras-resnet qat`")
    if not isinstance(raw, (bytes, str)):
        raise ModelFileError(f"{path}: model_config is not a JSON text")
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: model_config is {_mb(len(raw))} (at most {_mb(MAX_JSON_BYTES)})")
    try:
        return load_json(raw, f"{path}: model_config", max_depth=MAX_CONFIG_DEPTH)
    except ValueError as error:
        raise ModelFileError(str(error)) from error


def first_line(error: BaseException) -> str:
    """The first line of an error's text (at most 300 characters), or its type's name."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


# ---- one file --------------------------------------------------------------------------------------------------


def check_readable(path: str | os.PathLike) -> str:
    """``path`` as a string when it is an existing regular file named ``.keras`` or ``.h5``; ModelFileError
    otherwise."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ModelFileError(f"model file {path} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a folder; pass a .keras or .h5 model file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path} is not a regular file (a broken link, FIFO or device?)")
    if not path.endswith(MODEL_SUFFIXES):
        raise ModelFileError(f"{path}: expected a .keras (or tf_keras QAT .h5) model file")
    return path


def check_model_file(path: str | os.PathLike, *, unsafe: bool = False) -> KerasArchive:
    """All the checks :func:`keras_resnet.io.model_io.load_model` makes before any Keras code reads ``path``;
    returns what they found."""
    path = check_readable(path)
    if path.endswith(".keras"):
        return check_keras_archive(path, unsafe=unsafe)
    check_hdf5(path, path)
    config = _h5_model_config(path)
    check_config(config, path, unsafe=unsafe)
    layers = config["config"].get("layers")
    return KerasArchive("2", config, len(layers) if isinstance(layers, list) else 0)


__all__ = ["MAX_TOTAL_BYTES", "MODEL_SUFFIXES", "KerasArchive", "check_hdf5", "check_keras_archive",
           "check_model_file", "check_readable", "first_line", "keras_archive_info", "read_json_entry"]
