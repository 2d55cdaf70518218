"""keras_resnet: residual networks for Keras 3 that train, quantize and run on edge devices.

Builders (``ResNet50``, ``ResNet20``, ``Plain56``, ``Highway20``, ...) live in :mod:`keras_resnet.build`,
blocks in :mod:`keras_resnet.blocks`. Nothing here imports TensorFlow directly; Keras imports its backend.
"""

from keras_resnet.blocks import BlockOptions, basic_block, block, bottleneck_block, stack
from keras_resnet.build import *  # noqa: F403  (the named models: ResNet18 ... ResNet1202, Plain*, Highway*)
from keras_resnet.build import __all__ as _build_all
from keras_resnet.schedules import ResNetSchedule  # registered: compiled .keras files load

__version__ = "0.1.0"
__all__ = ["BlockOptions", "basic_block", "block", "bottleneck_block", "stack", *_build_all]
