"""The named values of the deployment contract that keras_resnet shares: check targets, resize modes and filters.

Defined once, here; keras_resnet's options (``keras-resnet convert --target``, ``--resize``, ``--interpolation``)
import them. Imports nothing, and the package's ``__init__`` loads its modules lazily, so importing this keeps
``keras-resnet --help`` free of numpy and Pillow.
"""

# `resnet-edge check --target`: XNNPACK, the GPU delegate, edgetpu_compiler 16.0, TensorFlow Lite Micro
TARGETS = ("cpu", "gpu", "edgetpu", "mcu")
RESIZE_MODES = ("stretch", "center_crop")  # how a runner fits an image to the model's input (metadata "resize")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # the runner's Pillow resize filters (metadata "interpolation")

__all__ = ["INTERPOLATIONS", "RESIZE_MODES", "TARGETS"]
