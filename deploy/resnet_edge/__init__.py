"""resnet-edge: run keras_resnet ``.tflite`` classifiers on small devices (numpy + Pillow + a TFLite runtime).

    from resnet_edge import Classifier
    clf = Classifier("model.tflite", threads=2)
    clf.predict("cat.jpg", top_k=5)        # [(class id, label, score), ...]
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# name -> module: loaded on first access, so importing a light submodule (resnet_edge.choices, which keras_resnet's
# command line imports) costs neither numpy nor Pillow (~0.18 s measured).
_LAZY = {
    "Classifier": ".classifier", "Result": ".classifier",
    "check_model": ".metadata", "read_metadata": ".metadata",
    "DEFAULT_MAX_PIXELS": ".preprocess", "ImageError": ".preprocess", "InputSpec": ".preprocess",
    "load_image": ".preprocess", "preprocess": ".preprocess",
    "ModelError": ".runtime", "RuntimeUnavailable": ".runtime", "open_model": ".loader",
    "select_runtime": ".runtime",
}

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .classifier import Classifier, Result  # noqa: F401
    from .loader import open_model  # noqa: F401
    from .metadata import check_model, read_metadata  # noqa: F401
    from .preprocess import DEFAULT_MAX_PIXELS, ImageError, InputSpec, load_image, preprocess  # noqa: F401
    from .runtime import ModelError, RuntimeUnavailable, select_runtime  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resnet_edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """Keeps ``resnet_edge.preprocess`` the function, as the eager ``from .preprocess import preprocess`` did: loading
    a submodule binds it on its package, and the submodule ``preprocess`` would otherwise shadow the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "preprocess" and isinstance(value, types.ModuleType):
            value = value.preprocess
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


try:  # the one version is deploy/setup.cfg's
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("resnet-edge")
except PackageNotFoundError:  # a copied source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["Classifier", "Result", "InputSpec", "ImageError", "ModelError", "RuntimeUnavailable", "DEFAULT_MAX_PIXELS",
           "check_model", "load_image", "open_model", "preprocess", "read_metadata", "select_runtime"]
