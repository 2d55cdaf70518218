"""resnet_edge: run keras_resnet TFLite classifiers on devices without TensorFlow.

Needs numpy, Pillow and a TFLite runtime (ai-edge-litert, or tflite-runtime 2.14 on old boards).
"""

__version__ = "0.1.0"

from .classifier import Classifier, Result  # noqa: E402
from .metadata import read_metadata  # noqa: E402
from .preprocess import ImageError, InputSpec, load_image  # noqa: E402
from .runtime import ModelError, RuntimeUnavailable, open_model, select_runtime  # noqa: E402

__all__ = ["Classifier", "ImageError", "InputSpec", "ModelError", "Result", "RuntimeUnavailable", "load_image",
           "open_model", "read_metadata", "select_runtime"]
