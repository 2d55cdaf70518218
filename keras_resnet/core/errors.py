"""The errors keras_resnet raises on purpose.

Each is a ``ValueError`` or ``OSError`` subclass (so ``except ValueError`` in user code keeps working) and also
an :class:`Error`, the one type the command line turns into a single ``error:`` line with exit code 2.
Anything else that escapes (a ``ValueError`` from deep inside TensorFlow, a ``KeyError``) is a bug and ends
as a traceback with its cause chain.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every error that describes a problem with the caller's input, not with keras_resnet."""


class ConfigError(Error, ValueError):
    """An argument or option value is out of range, unknown or inconsistent with another."""


class DataError(Error, ValueError):
    """A dataset is missing, malformed or does not fit the model."""


class ModelFileError(Error, ValueError):
    """A model file is missing, truncated, of the wrong kind, or cannot be loaded or converted."""


class UnsafeModelError(ModelFileError):
    """A model file would run code (a Lambda layer, a non-allow-listed class) when loaded."""


class ValidationError(Error, ValueError):
    """A converted model disagrees with its Keras original by more than the allowed threshold."""


class OutputExistsError(Error, FileExistsError):
    """An output file or folder exists and ``force``/``--force`` was not given."""


class OutputError(Error, OSError):
    """An output cannot be written (a folder where a file should go, no permission, disk full)."""
