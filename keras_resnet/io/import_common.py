"""What the three importers (timm / torchvision state dicts, keras-hub presets) share: the ``SOURCE:ARCH`` syntax,
PyTorch's BatchNorm epsilon, and the Keras graph an imported model gets (0–255 pixels → ``Normalization`` with the
source's mean/std → the package's own ResNet), so QAT and TFLite see plain Keras layers one by one.
"""

from __future__ import annotations

from keras_resnet.core.errors import ConfigError
from keras_resnet.io.preprocessing import Preprocessing
from keras_resnet.spec.specs import Arch, BlockOptions

TORCH_BN_EPSILON = 1e-5  # PyTorch's (and keras-hub's) BatchNorm epsilon; the package's is 1.001e-5
SOURCES = ("timm", "torchvision", "keras-hub")


def parse_source(text: str) -> tuple[str, str, str | None]:
    """``"timm:resnet50.a1_in1k"`` → ``("timm", "resnet50", "a1_in1k")``; the tag is None when absent.
    ``"keras-hub:PATH"`` → ``("keras-hub", PATH, None)`` (a preset directory)."""
    source, sep, rest = str(text).partition(":")
    if source == "keras-hub" and rest:
        return source, rest, None
    if not sep or source not in SOURCES or not rest:
        raise ConfigError(f"expected SOURCE:ARCH with SOURCE one of {', '.join(SOURCES)} (e.g. timm:resnet50d or "
                          f"torchvision:resnet50); got {text!r}")
    arch, _, tag = rest.partition(".")
    return source, arch, tag or None


def build_keras_model(arch: Arch, opts: BlockOptions, *, classes: int, preprocessing: Preprocessing,
                      input_shape: tuple[int, ...] | None = None, include_top: bool = True,
                      classifier_activation: str | None = "softmax", name: str = "resnet"):
    """``Input (0–255 pixels) → Normalization → ResNet(arch)``, the layout the package's models have."""
    import keras

    from keras_resnet.model.build import ResNet

    size = preprocessing.input_size
    inputs = keras.Input(shape=tuple(input_shape or (size, size, 3)))
    mean = [255.0 * m for m in preprocessing.mean]
    variance = [(255.0 * s) ** 2 for s in preprocessing.std]
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalization")(inputs)
    backbone = ResNet(arch, input_tensor=x, options=opts, classes=classes, include_top=include_top,
                      pooling=None if include_top else "avg", classifier_activation=classifier_activation,
                      name=name, stem=arch.stem)
    return keras.Model(inputs, backbone.output, name=name)  # one input, not ResNet's list of source inputs


__all__ = ["SOURCES", "TORCH_BN_EPSILON", "build_keras_model", "parse_source"]
