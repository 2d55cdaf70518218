"""resnet-edge: run keras_resnet ``.tflite`` classifiers on small devices (numpy + Pillow + a TFLite runtime).

    from resnet_edge import Classifier
    clf = Classifier("model.tflite", threads=2)
    clf.predict("cat.jpg", top_k=5)        # [(class id, label, score), ...]
"""

from .classifier import Classifier, Result
from .metadata import check_model, read_metadata
from .preprocess import DEFAULT_MAX_PIXELS, ImageError, InputSpec, load_image, preprocess
from .runtime import ModelError, RuntimeUnavailable, open_model, select_runtime

try:  # the one version is deploy/setup.cfg's
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("resnet-edge")
except PackageNotFoundError:  # a copied source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["Classifier", "Result", "InputSpec", "ImageError", "ModelError", "RuntimeUnavailable", "DEFAULT_MAX_PIXELS",
           "check_model", "load_image", "open_model", "preprocess", "read_metadata", "select_runtime"]
