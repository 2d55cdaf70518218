"""The one safe loader for model files: Keras 3 ``.keras`` and tfmot QAT (tf_keras) ``.h5`` files.

Model files come from strangers (see docs/security.md). :func:`load_model` first runs every check of
:func:`keras_resnet.io.model_checks.check_model_file` (archive entries, sizes and CRCs, HDF5 datasets, and the
allow-list walk of :mod:`keras_resnet.io.allowlist` over the config); only then does Keras (``safe_mode`` on) or
tf_keras read the file. ``unsafe=True`` (``--unsafe``) skips only the allow-list.

Every failure is a :class:`~keras_resnet.core.errors.ModelFileError` (:class:`UnsafeModelError` for the allow-list)
with one line of explanation and its cause chained.
"""

from __future__ import annotations

import os

from keras_resnet.core import compat
from keras_resnet.core.errors import ModelFileError, UnsafeModelError
from keras_resnet.io.allowlist import UNSAFE_HINT
from keras_resnet.io.model_checks import check_model_file, first_line


def load_model(path: str | os.PathLike, *, unsafe: bool = False, keras3_only: bool = False):
    """Load a Keras 3 ``.keras`` model (not compiled), or a tf_keras QAT model saved by ``keras-resnet qat``.

    Raises :class:`ModelFileError` for missing, corrupt, oversized or foreign files (with ``keras3_only``, for
    tf_keras files too, before tf_keras is imported) and :class:`UnsafeModelError` for files naming classes off the
    allow-list (a Lambda layer: arbitrary code) unless ``unsafe``.
    """
    path = os.fspath(path)
    found = check_model_file(path, unsafe=unsafe)
    version = found.keras_version or ""
    tf_keras = path.endswith(".h5") or version.startswith("2")
    if tf_keras and keras3_only:
        raise ModelFileError(f"{path} is a tf_keras (Keras 2) model; this command takes Keras 3 .keras files "
                             f"(convert it with `keras-resnet convert`)")
    try:
        if tf_keras:
            return _load_tf_keras(path, unsafe)
        import keras

        import keras_resnet.model.blocks  # noqa: F401  (registers ChannelPadding)
        import keras_resnet.model.schedules  # noqa: F401  (registers ResNetSchedule)

        with compat.recursion_limit(compat.recursion_limit_for(found.layers)):
            return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ModelFileError:
        raise
    except Exception as error:  # Keras raises ValueError/TypeError/OSError/KeyError/RecursionError for bad files
        text = str(error).strip()
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(f"{path} contains a Lambda layer (arbitrary Python code); refusing to load it. "
                                   f"{UNSAFE_HINT}") from error
        raise ModelFileError(f"could not load {path}: {first_line(error)}") from error


def _load_tf_keras(path: str, unsafe: bool):
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS before tf_keras loads
    import tf_keras

    from keras_resnet.model.blocks import tf_keras_channel_padding

    with tfmot.quantization.keras.quantize_scope({"ChannelPadding": tf_keras_channel_padding()}):
        kwargs = {"safe_mode": not unsafe} if path.endswith(".keras") else {}
        return tf_keras.models.load_model(path, compile=False, **kwargs)


__all__ = ["load_model"]
