"""Unpickle untrusted data files (CIFAR python batches) without running code from them.

``pickle.load`` calls whatever callables a file names. :func:`load` allows only what the official CIFAR batches
hold: dicts, lists, tuples, bytes, str, int, float, bool, None (plain pickle opcodes, which call nothing) and numpy
arrays of numbers, which numpy pickles as ``numpy.core.multiarray._reconstruct`` (``numpy._core`` since numpy 2),
``numpy.ndarray`` and ``numpy.dtype`` (protocols 0-4; protocol 5 uses ``numpy._core.numeric._frombuffer``, and
Python 3's protocol 2 writes bytes as ``_codecs.encode(text, "latin1")``). Even those are not called with the
file's arguments: they resolve to stand-ins that record what the file asks for, and the arrays are rebuilt
afterwards with ``np.frombuffer`` from bytes present in the file, after their dtype (plain numbers only, no
objects) and size have been checked. Any other global (``os.system``, ``builtins.eval``, ``numpy.load``...) is
refused with :class:`UnsafePickleError`, before anything is called.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from typing import Any, BinaryIO

import numpy as np

from keras_resnet.core.errors import DataError

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}  # protocol 5
_NDARRAY = ("numpy", "ndarray")
_DTYPE = ("numpy", "dtype")
_ENCODE = ("_codecs", "encode")  # how Python 3 writes bytes in protocol 2: _codecs.encode(text, "latin1")
# Number types only: no object ("O"), void/structured ("V") or string dtypes that could hold or alias anything else.
_KINDS = frozenset("biuf")
MAX_BYTES = 4 << 30  # a CIFAR batch is 30 MB


class PickleDataError(DataError, pickle.UnpicklingError):
    """The file is not a pickle :func:`load` can read (also a ``pickle.UnpicklingError``, as callers expect)."""


class UnsafePickleError(PickleDataError):
    """The file names something other than the plain data and numpy arrays it may hold (code, on load)."""


class _ArrayType:
    """What ``numpy.ndarray`` resolves to: only a marker passed to ``_reconstruct``; calling it is refused."""

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError("the pickle calls numpy.ndarray directly; only numpy's own array pickles are allowed")


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, (bytes, bytearray)) else value


class _Dtype:
    """A recorded ``numpy.dtype(spec, align, copy)`` call and its ``__setstate__``."""

    spec: str | None = None  # class defaults: NEWOBJ creates instances without calling __init__
    order = "="

    def __init__(self, spec=None, align=False, copy=False, *rest):
        spec = _text(spec)
        if rest or not isinstance(spec, str) or len(spec) > 8:
            raise UnsafePickleError(f"the pickle builds a numpy dtype from {type(spec).__name__} {spec!r:.40}")
        self.spec = spec

    def __setstate__(self, state):
        order = _text(state[1]) if isinstance(state, tuple) and len(state) >= 2 else None
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError("the pickle gives a numpy dtype an unexpected state")
        if len(state) > 3 and (state[3] is not None or (len(state) > 4 and state[4] is not None)):
            raise UnsafePickleError("the pickle builds a structured numpy dtype; only number arrays are allowed")
        self.order = order

    def resolve(self) -> np.dtype:
        if not isinstance(self.spec, str):
            raise UnsafePickleError("the pickle holds a numpy dtype without a type")
        try:
            dtype = np.dtype(self.spec)
        except TypeError as error:
            raise UnsafePickleError(f"the pickle names an unknown numpy dtype {self.spec!r}") from error
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise UnsafePickleError(f"the pickle holds a numpy array of {dtype}; only number arrays are allowed")
        return dtype.newbyteorder(self.order) if self.order in "<>" and dtype.itemsize > 1 else dtype


class _Array:
    """A recorded ``_reconstruct(ndarray, shape, dtype)`` and its ``__setstate__`` (the real array comes later)."""

    state: tuple | None = None  # NEWOBJ creates instances without calling __init__

    def __init__(self, subtype=None, shape=None, typecode=None, *rest):
        if not isinstance(subtype, _ArrayType) or rest:
            raise UnsafePickleError("the pickle reconstructs something other than a plain numpy array")

    def __setstate__(self, state):
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("the pickle gives a numpy array an unexpected state")
        _, shape, dtype, fortran, data = state
        return _array(data, dtype, shape, "F" if fortran else "C")


class _Buffer(_Array):
    """A recorded protocol-5 ``_frombuffer(buffer, dtype, shape, order)``."""

    def __init__(self, buffer=None, dtype=None, shape=None, order="C", *rest):
        if rest or _text(order) not in ("C", "F"):
            raise UnsafePickleError("the pickle rebuilds a numpy array with unexpected arguments")
        self.args = (buffer, dtype, shape, _text(order))

    def resolve(self) -> np.ndarray:
        if not hasattr(self, "args"):
            raise UnsafePickleError("the pickle gives a numpy array an unexpected state")
        return _array(*self.args)


def _array(data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """A numpy array from raw bytes present in the file, once its dtype and size are checked."""
    if not isinstance(dtype, _Dtype) or not isinstance(shape, tuple) or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise UnsafePickleError("the pickle gives a numpy array an unexpected shape or dtype")
    dtype_ = dtype.resolve()
    if isinstance(data, str):  # Python 2 pickles read with encoding="latin1"
        data = data.encode("latin1")
    if isinstance(data, pickle.PickleBuffer):
        data = data.raw()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafePickleError("the pickle's numpy array data is not raw bytes")
    count = math.prod(shape)
    if count * dtype_.itemsize != len(data):
        raise UnsafePickleError(f"the pickle's numpy array declares {shape} {dtype_} but holds {len(data)} bytes")
    flat = np.frombuffer(bytes(data), dtype_, count)
    return flat.reshape(shape, order=order).copy()


def _encode(text: Any = None, encoding: Any = None, *rest) -> bytes:
    """The stand-in for ``_codecs.encode``: Latin-1 text to bytes, nothing else."""
    if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("the pickle calls _codecs.encode with unexpected arguments")
    return text.encode("latin1")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _RECONSTRUCT:
            return _Array
        if (module, name) in _FROMBUFFER:
            return _Buffer
        if (module, name) == _ENCODE:
            return _encode
        if (module, name) == _NDARRAY:
            return _ArrayType()
        if (module, name) == _DTYPE:
            return _Dtype
        raise UnsafePickleError(f"the pickle names {module}.{name}, which could run code; refusing to load it "
                                "(allowed: plain data and numpy number arrays)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle refers to persistent objects; refusing to load it")


def _resolve(value: Any) -> Any:
    """Replace the stand-ins in ``value`` by numpy arrays (iteratively; shared objects resolved once)."""
    done: dict[int, Any] = {}

    def convert(v: Any) -> Any:
        if isinstance(v, _Array):
            if id(v) not in done:
                done[id(v)] = v.resolve()
            return done[id(v)]
        if isinstance(v, (_Dtype, _ArrayType)):
            raise UnsafePickleError("the pickle holds a bare numpy dtype or type; only arrays are allowed")
        return v

    root = [value]
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        container = stack.pop()
        if id(container) in seen:
            continue
        seen.add(id(container))
        if isinstance(container, dict):
            for key, item in list(container.items()):
                if isinstance(key, (_Array, _Dtype, _ArrayType)):
                    raise UnsafePickleError("the pickle uses a numpy object as a dict key")
                container[key] = convert(item)
                if isinstance(item, (dict, list)):
                    stack.append(item)
        elif isinstance(container, list):
            for i, item in enumerate(container):
                container[i] = convert(item)
                if isinstance(item, (dict, list, tuple)):
                    stack.append(item)
        elif isinstance(container, tuple):  # tuples are immutable: CIFAR batches hold none with arrays inside
            if any(isinstance(item, (_Array, _Dtype, _ArrayType)) for item in container):
                raise UnsafePickleError("the pickle holds a numpy array inside a tuple")
            stack.extend(item for item in container if isinstance(item, (dict, list, tuple)))
    return root[0]


def load(file: BinaryIO | str | os.PathLike, *, encoding: str = "bytes", max_bytes: int = MAX_BYTES) -> Any:
    """Unpickle a CIFAR python batch (or any pickle of plain data and numpy number arrays) from a path or a
    binary file without running code from it.

    ``encoding``: how Python 2 ``str`` objects are decoded (``"bytes"``, as CIFAR readers use). Raises
    :class:`UnsafePickleError` for anything else the file names, and :class:`PickleDataError` for a file larger
    than ``max_bytes`` or a malformed pickle; both are :class:`~keras_resnet.core.errors.DataError` (a ValueError)
    and ``pickle.UnpicklingError``.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return load(f, encoding=encoding, max_bytes=max_bytes)
    data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PickleDataError(f"the pickle is larger than {max_bytes / (1 << 20):.0f} MB")
    try:
        value = _Unpickler(io.BytesIO(data), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, RecursionError, OverflowError) as error:
        raise PickleDataError(f"not a valid pickle: {type(error).__name__}: {error}"[:300]) from error
    return _resolve(value)


__all__ = ["MAX_BYTES", "PickleDataError", "UnsafePickleError", "load"]
