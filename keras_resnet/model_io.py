"""The one safe loader for model files: Keras 3 ``.keras`` and tfmot QAT (tf_keras) ``.h5`` files.

Files come from strangers, so a file that would run code when loaded is refused unless ``unsafe``:
``.keras`` files load with Keras' ``safe_mode`` (no Lambda layers), and ``.h5`` files have their
``model_config`` checked for Lambda layers before tf_keras (which has no safe mode) sees them. Every
failure is a :class:`~keras_resnet.errors.ModelFileError` with one line of explanation and its cause chained.
"""

from __future__ import annotations

import json
import os
import zipfile

from keras_resnet import compat
from keras_resnet.errors import ModelFileError, UnsafeModelError

MODEL_SUFFIXES = (".keras", ".h5")
_UNSAFE_HINT = "Pass --unsafe (unsafe=True) only if you trust the file"


def keras_archive_info(path: str) -> tuple[str | None, int]:
    """``(keras_version, layer count)`` of a ``.keras`` archive (tf_keras writes 2.x, Keras 3 writes 3.x)."""
    try:
        with zipfile.ZipFile(path) as archive:
            version = json.loads(archive.read("metadata.json")).get("keras_version")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, AttributeError):
        return None, 0
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    return (str(version) if version is not None else None), len(layers) if isinstance(layers, list) else 0


def check_readable(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a folder; pass a .keras or .h5 model file")
    if not path.endswith(MODEL_SUFFIXES):
        raise ModelFileError(f"{path}: expected a .keras (or tf_keras QAT .h5) model file")
    return path


def load_model(path: str | os.PathLike, *, unsafe: bool = False):
    """Load a Keras 3 ``.keras`` model (not compiled), or a tf_keras QAT model saved by ``keras-resnet qat``.

    Raises :class:`ModelFileError` for missing, corrupt or foreign files and :class:`UnsafeModelError` for files
    with Lambda layers (arbitrary code) unless ``unsafe``.
    """
    path = check_readable(path)
    version, layers = keras_archive_info(path) if path.endswith(".keras") else ("2", 0)
    if path.endswith(".keras") and version is None:
        raise ModelFileError(f"{path} is not a readable .keras archive (corrupt or truncated?)")
    try:
        if version.startswith("2"):
            return _load_tf_keras(path, unsafe)
        import keras

        import keras_resnet.blocks  # noqa: F401  (registers ChannelPadding)
        import keras_resnet.schedules  # noqa: F401  (registers ResNetSchedule)

        with compat.recursion_limit(compat.recursion_limit_for(layers)):
            return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ModelFileError:
        raise
    except Exception as error:  # Keras raises ValueError/TypeError/OSError/KeyError for bad files
        text = str(error).strip()
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(f"{path} contains a Lambda layer (arbitrary Python code); refusing to load it. "
                                   f"{_UNSAFE_HINT}") from error
        first = text.splitlines()[0] if text else type(error).__name__
        raise ModelFileError(f"could not load {path}: {first[:300]}") from error


def _load_tf_keras(path: str, unsafe: bool):
    if path.endswith(".h5") and not unsafe:
        import h5py

        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
        if config is not None and '"Lambda"' in (config.decode() if isinstance(config, bytes) else config):
            raise UnsafeModelError(f"{path} contains a Lambda layer (arbitrary Python code); refusing to load it. "
                                   f"{_UNSAFE_HINT}")
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS before tf_keras loads
    import tf_keras

    from keras_resnet.blocks import tf_keras_channel_padding

    with tfmot.quantization.keras.quantize_scope({"ChannelPadding": tf_keras_channel_padding()}):
        kwargs = {"safe_mode": not unsafe} if path.endswith(".keras") else {}
        return tf_keras.models.load_model(path, compile=False, **kwargs)
