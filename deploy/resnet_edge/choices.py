"""The named values of the deployment contract that keras_resnet shares: check targets, resize modes and filters.

Defined once, here; keras_resnet's options (``keras-resnet convert --target``, ``--resize``, ``--interpolation``)
import them. Imports nothing, and the package's ``__init__`` loads its modules lazily, so importing this keeps
``keras-resnet --help`` free of numpy and Pillow.
"""

# Arm Ethos-U NPUs: every accelerator config of Vela 5.2 (`vela --accelerator-config`), a target each
ETHOS_U_TARGETS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
                   "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
# `resnet-edge check --target`: XNNPACK, the GPU delegate, edgetpu_compiler 16.0, Vela 5.2, TensorFlow Lite Micro
TARGETS = ("cpu", "gpu", "edgetpu", *ETHOS_U_TARGETS, "mcu")
RESIZE_MODES = ("stretch", "center_crop")  # how a runner fits an image to the model's input (metadata "resize")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # the runner's Pillow resize filters (metadata "interpolation")

__all__ = ["ETHOS_U_TARGETS", "INTERPOLATIONS", "RESIZE_MODES", "TARGETS"]
