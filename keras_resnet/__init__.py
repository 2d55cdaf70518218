"""keras_resnet: residual networks for Keras 3 that train, quantize and run on edge devices.

Importing the package is cheap: it loads neither Keras nor TensorFlow (the ``keras-resnet`` command starts in
well under a second). The named models (``ResNet50``, ``ResNet20``, ``Plain56``, ...) live in
:mod:`keras_resnet.model.models`, blocks in :mod:`keras_resnet.model.blocks`, the depth table in :mod:`keras_resnet.spec.specs`;
``keras_resnet.ResNet50`` and the other names below are loaded on first access.

Saved models need keras_resnet's registered classes (``ChannelPadding``, ``ResNetSchedule``, the native QAT layers
of :mod:`keras_resnet.quant.native_layers`). They are
registered with Keras as soon as both this package and Keras are imported, in either order, so
``import keras_resnet; keras.saving.load_model("best.keras")`` works.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import TYPE_CHECKING, Any

from keras_resnet.core.version import VERSION as __version__
from keras_resnet.spec.specs import MODELS, VARIANTS, Arch, BlockOptions

# name -> module for the lazily loaded public names (Keras is imported with the first of them).
_LAZY: dict[str, str] = {
    "basic_block": "keras_resnet.model.blocks",
    "block": "keras_resnet.model.blocks",
    "bottleneck_block": "keras_resnet.model.blocks",
    "stack": "keras_resnet.model.blocks",
    "ChannelPadding": "keras_resnet.model.blocks",
    "ResNet": "keras_resnet.model.build",
    "build_model": "keras_resnet.model.registry",
    "load_weights": "keras_resnet.model.build",
    "transfer_weights": "keras_resnet.model.build",
    "ResNetSchedule": "keras_resnet.model.schedules",
    "from_keras_hub": "keras_resnet.io.hub",
    "from_timm": "keras_resnet.io.hub",
    "from_torchvision": "keras_resnet.io.hub",
    "load_mlperf_tiny_weights": "keras_resnet.io.keras2_h5",
    **{spec.function: "keras_resnet.model.models" for spec in MODELS.values()},
}

__all__ = ["Arch", "BlockOptions", "MODELS", "VARIANTS", "__version__", *_LAZY]

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time these load on first access
    from keras_resnet.io.hub import from_keras_hub, from_timm, from_torchvision  # noqa: F401
    from keras_resnet.io.keras2_h5 import load_mlperf_tiny_weights  # noqa: F401
    from keras_resnet.model.blocks import ChannelPadding, basic_block, block, bottleneck_block, stack  # noqa: F401
    from keras_resnet.model.build import ResNet, load_weights, transfer_weights  # noqa: F401
    from keras_resnet.model.models import *  # noqa: F403
    from keras_resnet.model.registry import build_model  # noqa: F401
    from keras_resnet.model.schedules import ResNetSchedule  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_resnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _register_with_keras() -> None:
    """Import the modules whose classes are registered Keras serializables."""
    importlib.import_module("keras_resnet.model.blocks")
    importlib.import_module("keras_resnet.model.schedules")
    importlib.import_module("keras_resnet.quant.native_layers")  # the native QAT layers (QATConv, ...)


class _RegisterAfterKerasImport(importlib.abc.MetaPathFinder):
    """Runs :func:`_register_with_keras` right after ``import keras`` completes, then removes itself.

    Importing Keras here would cost every ``keras-resnet`` command several seconds; registering only when a
    keras_resnet model is loaded through keras_resnet would break plain ``keras.saving.load_model``.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_keras = spec.loader.exec_module

        def exec_module(module):
            exec_keras(module)
            _register_with_keras()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _register_with_keras()
elif not any(isinstance(finder, _RegisterAfterKerasImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKerasImport())
