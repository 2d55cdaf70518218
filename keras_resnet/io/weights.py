"""Read PyTorch weight files from strangers with numpy only: ``.safetensors`` and ``torch.save`` zips (``.pth``/``.bin``).

No torch, no code from the file, bounded memory:

- :func:`read_safetensors` parses the 8-byte little-endian header length and the JSON header itself, checks every
  tensor's dtype (F32, F16, BF16, F64, I64, I32), shape and byte range against the file's size before reading it,
  and returns float32 (or int64) numpy arrays.
- :func:`read_torch` reads the zip written by ``torch.save`` (``ARCHIVE/data.pkl`` plus one ``ARCHIVE/data/KEY``
  entry per storage) through a restricted unpickler: the only globals it resolves are the tensor rebuild functions
  (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``), ``collections.OrderedDict`` and the typed
  storages (``torch.FloatStorage``, ...), each mapped to a numpy stand-in. Anything else (``os.system``,
  ``builtins.eval``, ``torch.load``...) is refused by name, before anything is called, with
  :class:`~keras_resnet.core.errors.UnsafeModelError`. The legacy (pre-1.6, non-zip) format is refused.
- :func:`read_weights` picks the reader by suffix and unwraps ``{"state_dict": ...}``-style checkpoints.

Every other failure (truncated, oversized, inconsistent) is a :class:`~keras_resnet.core.errors.ModelFileError`.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from keras_resnet.core.errors import ModelFileError, UnsafeModelError

MAX_BYTES = 4 << 30  # the whole file (ResNeXt-101 64x4d, the largest supported: 330 MB)
MAX_HEADER_BYTES = 64 << 20  # a safetensors JSON header (ResNet-152: 60 KB)
MAX_PICKLE_BYTES = 64 << 20  # data.pkl of a state dict (ResNet-152: 50 KB)
MAX_ENTRIES = 100_000
MAX_TENSORS = 100_000

# safetensors dtype → (numpy dtype as stored, itemsize); BF16 is widened to float32 after reading.
_SAFETENSORS_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8),
                       "I64": ("<i8", 8), "I32": ("<i4", 4)}
# torch typed storages (as pickled by torch.save) → (numpy dtype, itemsize); "bf16" is widened like BF16.
_STORAGES = {"FloatStorage": ("<f4", 4), "HalfStorage": ("<f2", 2), "BFloat16Storage": ("bf16", 2),
             "DoubleStorage": ("<f8", 8), "LongStorage": ("<i8", 8), "IntStorage": ("<i4", 4),
             "ShortStorage": ("<i2", 2), "CharStorage": ("i1", 1), "ByteStorage": ("u1", 1),
             "BoolStorage": ("?", 1)}
_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _bf16(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) → float32: the top half of a float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _as_output(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return array


def _check_size(path: str, max_bytes: int) -> int:
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise ModelFileError(f"cannot read weights file {path}: {error.strerror or error}") from error
    if not os.path.isfile(path):
        raise ModelFileError(f"{path} is not a regular file")
    if size > max_bytes:
        raise ModelFileError(f"{path} is {size / (1 << 20):,.0f} MB (at most {max_bytes / (1 << 20):,.0f} MB)")
    return size


# ---- safetensors ---------------------------------------------------------------------------------------------


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8 or \
            not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in value):
        raise ModelFileError(f"{what}: a tensor shape must be a list of at most 8 non-negative integers")
    return tuple(value)


def read_safetensors(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """``{name: array}`` from a ``.safetensors`` file (floats as float32), every range checked before reading."""
    path = os.fspath(path)
    size = _check_size(path, max_bytes)
    if size < 8:
        raise ModelFileError(f"{path} is not a safetensors file: {size} bytes (truncated?)")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise ModelFileError(f"{path} is not a safetensors file (or is truncated): its header claims {n:,} "
                                 f"bytes; the file has {size - 8:,} after the length")
        raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise ModelFileError(f"{path}: the safetensors header is not valid JSON "
                                 f"({type(error).__name__})") from error
        if not isinstance(header, dict) or len(header) > MAX_TENSORS:
            raise ModelFileError(f"{path}: the safetensors header is not an object of at most {MAX_TENSORS:,} "
                                 f"tensors")
        data_start, data_size = 8 + n, size - 8 - n
        tensors: dict[str, np.ndarray] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            what = f"{path}: tensor {name!r}"
            if not isinstance(entry, dict) or entry.get("dtype") not in _SAFETENSORS_DTYPES:
                dtype = entry.get("dtype") if isinstance(entry, dict) else None
                raise ModelFileError(f"{what} has dtype {dtype!r}; supported: {', '.join(_SAFETENSORS_DTYPES)}")
            shape = _shape(entry.get("shape"), what)
            offsets = entry.get("data_offsets")
            if not isinstance(offsets, list) or len(offsets) != 2 or \
                    not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
                raise ModelFileError(f"{what}: data_offsets must be two integers")
            begin, end = offsets
            numpy_dtype, itemsize = _SAFETENSORS_DTYPES[entry["dtype"]]
            if not 0 <= begin <= end <= data_size:
                raise ModelFileError(f"{what} lies at bytes {begin}..{end}, outside the {data_size:,} data bytes "
                                     f"of the file (truncated?)")
            if end - begin != math.prod(shape) * itemsize:
                raise ModelFileError(f"{what}: shape {list(shape)} {entry['dtype']} needs "
                                     f"{math.prod(shape) * itemsize:,} bytes; its range holds {end - begin:,}")
            f.seek(data_start + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:
                raise ModelFileError(f"{what}: the file ends early (truncated?)")
            array = np.frombuffer(data, numpy_dtype).reshape(shape)
            tensors[name] = _bf16(array) if entry["dtype"] == "BF16" else _as_output(array)
    return tensors


# ---- torch.save zip ------------------------------------------------------------------------------------------


class _StorageType:
    """What ``torch.FloatStorage`` (etc.) resolves to: a marker carrying the numpy dtype; never called."""

    def __init__(self, name: str):
        self.name = name
        self.dtype, self.itemsize = _STORAGES[name]

    def __call__(self, *args, **kwargs):
        raise UnsafeModelError(f"the pickle calls torch.{self.name} directly; only tensor storages are allowed")


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` as a float32 ``.safetensors`` file (what :func:`read_safetensors` reads; the benchmarks and
    tests use it for random-weight stand-ins of published checkpoints)."""
    header, offset, arrays = {}, 0, []
    for name, value in tensors.items():
        array = np.ascontiguousarray(value, np.float32)
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for array in arrays:
            f.write(array.tobytes())


class _Storage:
    """One ``data/KEY`` entry of the archive, read once, as a flat numpy array."""

    def __init__(self, kind: _StorageType, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel
        self.array: np.ndarray | None = None


def _rebuild_tensor(storage=None, offset=None, size=None, stride=None, requires_grad=False, hooks=None,
                    metadata=None, *rest):
    """The stand-in for ``torch._utils._rebuild_tensor_v2``: a strided view of a storage, bounds-checked, copied."""
    if rest or not isinstance(storage, _Storage):
        raise UnsafeModelError("the pickle rebuilds a tensor from something other than a storage of the archive")
    ints = (isinstance(offset, int) and not isinstance(offset, bool) and isinstance(size, tuple)
            and isinstance(stride, tuple) and len(size) == len(stride) <= 8
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (*size, *stride)))
    if not ints or offset < 0:
        raise ModelFileError("the pickle rebuilds a tensor with an invalid offset, size or stride")
    if hooks not in (None, {}) and not (isinstance(hooks, OrderedDict) and not hooks):
        raise UnsafeModelError("the pickle attaches backward hooks to a tensor")
    if metadata is not None and not (isinstance(metadata, dict) and not metadata):
        raise ModelFileError("the pickle attaches metadata to a tensor; not supported")
    count = math.prod(size)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if count else offset
    if count > storage.numel:  # stride-0 views could claim any size: copying them would exhaust memory
        raise ModelFileError(f"a tensor of shape {list(size)} has more elements than its storage of "
                             f"{storage.numel} (corrupt file?)")
    if count and last >= storage.numel:
        raise ModelFileError(f"a tensor of shape {list(size)} reaches element {last} of a storage of "
                             f"{storage.numel} (corrupt file?)")
    return _Tensor(storage, offset, size, stride)


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def resolve(self) -> np.ndarray:
        flat = self.storage.array
        assert flat is not None
        if not math.prod(self.size):
            return np.zeros(self.size, flat.dtype)
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * flat.itemsize for s in self.stride], writeable=False)
        return _as_output(np.array(view))


def _rebuild_parameter(data=None, requires_grad=False, hooks=None, *rest):
    if rest or not isinstance(data, _Tensor):
        raise UnsafeModelError("the pickle rebuilds a parameter from something other than a tensor")
    return data


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage], sizes: dict[str, int]):
        super().__init__(file)
        self.storages, self.sizes = storages, sizes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise UnsafeModelError(f"the weights file's pickle names {module}.{name}, which could run code; refusing "
                               f"to load it (allowed: tensors, their storages and dicts)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise UnsafeModelError(f"the pickle refers to an unexpected persistent object {str(pid)[:80]}")
        _, kind, key, _, numel = pid
        if not _KEY.match(key) or key not in self.sizes:
            raise ModelFileError(f"the pickle refers to storage {key[:64]!r}, which the archive does not hold")
        if numel < 0 or numel * kind.itemsize != self.sizes[key]:
            raise ModelFileError(f"storage {key!r} declares {numel} {kind.name} elements but holds "
                                 f"{self.sizes[key]} bytes")
        if key in self.storages:
            storage = self.storages[key]
            if storage.kind.name != kind.name:
                raise ModelFileError(f"storage {key!r} is read as two different types")
            return storage
        storage = self.storages[key] = _Storage(kind, key, numel)
        return storage


def _containers(value: Any, depth: int = 0) -> Any:
    """Replace the tensor stand-ins in nested dicts, lists and tuples by numpy arrays."""
    if depth > 32:
        raise ModelFileError("the pickle nests containers more than 32 deep")
    if isinstance(value, _Tensor):
        return value.resolve()
    if isinstance(value, dict):
        return {k: _containers(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_containers(v, depth + 1) for v in value)
    if isinstance(value, (_Storage, _StorageType)):
        raise UnsafeModelError("the pickle holds a bare storage; only tensors are allowed")
    return value


def read_torch(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Any:
    """The object a ``torch.save`` zip holds (normally a state dict) with numpy arrays for its tensors."""
    path = os.fspath(path)
    _check_size(path, max_bytes)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        with open(path, "rb") as f:
            head = f.read(2)
        legacy = " (an old, pre-1.6 torch.save file: re-save it with a current torch, or as .safetensors)" \
            if head[:1] == b"\x80" else " (corrupt or truncated?)"
        raise ModelFileError(f"{path} is not a torch.save zip archive{legacy}") from error
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ModelFileError(f"{path}: the archive has {len(infos):,} entries (at most {MAX_ENTRIES:,})")
        pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
        if len(pickles) != 1:
            raise ModelFileError(f"{path}: expected one ARCHIVE/data.pkl entry (a torch.save file); found "
                                 f"{len(pickles)}")
        root = pickles[0].filename[: -len("data.pkl")]
        sizes: dict[str, int] = {}
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1 << 20:
                raise ModelFileError(f"{path}: entry {info.filename!r} is compressed (torch.save stores entries "
                                     f"uncompressed)")
            total += info.file_size
            if info.filename.startswith(root + "data/"):
                sizes[info.filename[len(root) + 5:]] = info.file_size
        if total > max_bytes:
            raise ModelFileError(f"{path}: the archive declares {total / (1 << 20):,.0f} MB (at most "
                                 f"{max_bytes / (1 << 20):,.0f} MB)")
        if pickles[0].file_size > MAX_PICKLE_BYTES:
            raise ModelFileError(f"{path}: data.pkl is {pickles[0].file_size:,} bytes (at most {MAX_PICKLE_BYTES:,})")
        if root + "byteorder" in archive.namelist() and archive.read(root + "byteorder").strip() != b"little":
            raise ModelFileError(f"{path}: big-endian torch files are not supported")
        storages: dict[str, _Storage] = {}
        try:
            value = _TorchUnpickler(io.BytesIO(archive.read(pickles[0])), storages, sizes).load()
            for storage in storages.values():
                data = archive.read(root + "data/" + storage.key)
                dtype = storage.kind.dtype
                storage.array = _bf16(np.frombuffer(data, "<u2")) if dtype == "bf16" else np.frombuffer(data, dtype)
        except (UnsafeModelError, ModelFileError):
            raise
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, UnicodeDecodeError, MemoryError, RecursionError, OverflowError,
                struct.error) as error:
            raise ModelFileError(f"{path} is not a readable torch.save file (corrupt or truncated?): "
                                 f"{type(error).__name__}: {error}"[:300]) from error
    return _containers(value)


# ---- either ----------------------------------------------------------------------------------------------------

STATE_DICT_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module", "net")


def state_dict(value: Any, path: str = "weights") -> dict[str, np.ndarray]:
    """The ``{name: array}`` mapping inside a checkpoint: the value itself when it maps names to arrays, else its
    first entry among :data:`STATE_DICT_KEYS` that does; a ``module.`` prefix (DataParallel) is dropped."""
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        found = value
    else:
        found = None
        for key in STATE_DICT_KEYS:
            inner = value.get(key) if isinstance(value, dict) else None
            if isinstance(inner, dict) and inner and all(isinstance(v, np.ndarray) for v in inner.values()):
                found = inner
                break
        if found is None:
            keys = ", ".join(map(str, list(value)[:8])) if isinstance(value, dict) else type(value).__name__
            raise ModelFileError(f"{path} holds no state dict of tensors (top-level: {keys})")
    if all(str(k).startswith("module.") for k in found):
        found = {k[len("module."):]: v for k, v in found.items()}
    return {str(k): v for k, v in found.items()}


def read_weights(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """A state dict from a ``.safetensors`` or ``.pth``/``.pt``/``.bin`` (torch.save zip) file."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ModelFileError(f"weights file {path} does not exist")
    if path.endswith(".safetensors"):
        return state_dict(read_safetensors(path, max_bytes=max_bytes), path)
    if path.endswith((".pth", ".pt", ".bin", ".ckpt")):
        return state_dict(read_torch(path, max_bytes=max_bytes), path)
    raise ModelFileError(f"{path}: expected a .safetensors or .pth/.pt/.bin (torch.save) weights file")


__all__ = ["MAX_BYTES", "read_safetensors", "read_torch", "read_weights", "state_dict"]
