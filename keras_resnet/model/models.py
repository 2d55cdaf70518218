"""The named models, one function each: ``ResNet50``, ``ResNet50V2``, ``ResNet20``, ``Plain56``, ``Highway20``, ...

GENERATED from :data:`keras_resnet.spec.specs.MODELS` by ``python -m keras_resnet.model._generate_models``; do not edit.

Every function takes keras.applications' arguments (``include_top, weights, input_tensor, input_shape, pooling,
classes, classifier_activation, name``) plus keyword-only ``variant`` (one of
:data:`~keras_resnet.spec.specs.VARIANTS`), ``features`` (a dict of stage outputs), ``library`` ("keras" or
"tf_keras") and any :class:`~keras_resnet.spec.specs.BlockOptions` field. :data:`REGISTRY` maps each model's key
(``"resnet50"``) to its function; :func:`keras_resnet.model.registry.build_model` looks names up there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras_resnet.model.build import build_named

REGISTRY: dict[str, Callable[..., Any]] = {}


def register(key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a model function to :data:`REGISTRY` under ``key`` (a :data:`~keras_resnet.spec.specs.MODELS` key)."""

    def add(function: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[key] = function
        return function

    return add


@register("resnet18")
def ResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet18", **kwargs):
    """ResNet18: basic ImageNet network, depth 18, blocks (2, 2, 2, 2)."""
    return build_named("resnet18", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet18v2")
def ResNet18V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet18v2", **kwargs):
    """ResNet18V2: pre-activation basic ImageNet network, depth 18, blocks (2, 2, 2, 2)."""
    return build_named("resnet18v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain18")
def Plain18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", name="plain18", **kwargs):
    """Plain18: plain (no shortcut) basic ImageNet network, depth 18, blocks (2, 2, 2, 2)."""
    return build_named("plain18", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet34")
def ResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet34", **kwargs):
    """ResNet34: basic ImageNet network, depth 34, blocks (3, 4, 6, 3)."""
    return build_named("resnet34", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet34v2")
def ResNet34V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet34v2", **kwargs):
    """ResNet34V2: pre-activation basic ImageNet network, depth 34, blocks (3, 4, 6, 3)."""
    return build_named("resnet34v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain34")
def Plain34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", name="plain34", **kwargs):
    """Plain34: plain (no shortcut) basic ImageNet network, depth 34, blocks (3, 4, 6, 3)."""
    return build_named("plain34", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet50")
def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet50", **kwargs):
    """ResNet50: bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet50", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet50v2")
def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet50v2", **kwargs):
    """ResNet50V2: pre-activation bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet50v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain50")
def Plain50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", name="plain50", **kwargs):
    """Plain50: plain (no shortcut) bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3)."""
    return build_named("plain50", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet101")
def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name="resnet101", **kwargs):
    """ResNet101: bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet101", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet101v2")
def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet101v2", **kwargs):
    """ResNet101V2: pre-activation bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet101v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain101")
def Plain101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="plain101", **kwargs):
    """Plain101: plain (no shortcut) bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3)."""
    return build_named("plain101", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet152")
def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name="resnet152", **kwargs):
    """ResNet152: bottleneck ImageNet network, depth 152, blocks (3, 8, 36, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet152", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet152v2")
def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet152v2", **kwargs):
    """ResNet152V2: pre-activation bottleneck ImageNet network, depth 152, blocks (3, 8, 36, 3). keras.applications' ImageNet weights by default."""
    return build_named("resnet152v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain152")
def Plain152(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="plain152", **kwargs):
    """Plain152: plain (no shortcut) bottleneck ImageNet network, depth 152, blocks (3, 8, 36, 3)."""
    return build_named("plain152", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet200")
def ResNet200(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name="resnet200", **kwargs):
    """ResNet200: bottleneck ImageNet network, depth 200, blocks (3, 24, 36, 3)."""
    return build_named("resnet200", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet200v2")
def ResNet200V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet200v2", **kwargs):
    """ResNet200V2: pre-activation bottleneck ImageNet network, depth 200, blocks (3, 24, 36, 3)."""
    return build_named("resnet200v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain200")
def Plain200(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="plain200", **kwargs):
    """Plain200: plain (no shortcut) bottleneck ImageNet network, depth 200, blocks (3, 24, 36, 3)."""
    return build_named("plain200", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet8")
def ResNet8(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name="resnet8", **kwargs):
    """ResNet8: basic CIFAR network, depth 8, blocks (1, 1, 1). MLPerf Tiny's image-classification reference, layer for layer."""
    return build_named("resnet8", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet20")
def ResNet20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet20", **kwargs):
    """ResNet20: basic CIFAR network, depth 20, blocks (3, 3, 3)."""
    return build_named("resnet20", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet20v2")
def ResNet20V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="resnet20v2", **kwargs):
    """ResNet20V2: pre-activation basic CIFAR network, depth 20, blocks (3, 3, 3)."""
    return build_named("resnet20v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain20")
def Plain20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name="plain20", **kwargs):
    """Plain20: plain (no shortcut) basic CIFAR network, depth 20, blocks (3, 3, 3)."""
    return build_named("plain20", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway20")
def Highway20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="highway20", **kwargs):
    """Highway20: highway basic CIFAR network, depth 20, blocks (3, 3, 3)."""
    return build_named("highway20", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet32")
def ResNet32(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet32", **kwargs):
    """ResNet32: basic CIFAR network, depth 32, blocks (5, 5, 5)."""
    return build_named("resnet32", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet32v2")
def ResNet32V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="resnet32v2", **kwargs):
    """ResNet32V2: pre-activation basic CIFAR network, depth 32, blocks (5, 5, 5)."""
    return build_named("resnet32v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain32")
def Plain32(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name="plain32", **kwargs):
    """Plain32: plain (no shortcut) basic CIFAR network, depth 32, blocks (5, 5, 5)."""
    return build_named("plain32", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway32")
def Highway32(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="highway32", **kwargs):
    """Highway32: highway basic CIFAR network, depth 32, blocks (5, 5, 5)."""
    return build_named("highway32", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet44")
def ResNet44(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet44", **kwargs):
    """ResNet44: basic CIFAR network, depth 44, blocks (7, 7, 7)."""
    return build_named("resnet44", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet44v2")
def ResNet44V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="resnet44v2", **kwargs):
    """ResNet44V2: pre-activation basic CIFAR network, depth 44, blocks (7, 7, 7)."""
    return build_named("resnet44v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain44")
def Plain44(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name="plain44", **kwargs):
    """Plain44: plain (no shortcut) basic CIFAR network, depth 44, blocks (7, 7, 7)."""
    return build_named("plain44", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway44")
def Highway44(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="highway44", **kwargs):
    """Highway44: highway basic CIFAR network, depth 44, blocks (7, 7, 7)."""
    return build_named("highway44", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet56")
def ResNet56(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet56", **kwargs):
    """ResNet56: basic CIFAR network, depth 56, blocks (9, 9, 9)."""
    return build_named("resnet56", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet56v2")
def ResNet56V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="resnet56v2", **kwargs):
    """ResNet56V2: pre-activation basic CIFAR network, depth 56, blocks (9, 9, 9)."""
    return build_named("resnet56v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain56")
def Plain56(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name="plain56", **kwargs):
    """Plain56: plain (no shortcut) basic CIFAR network, depth 56, blocks (9, 9, 9)."""
    return build_named("plain56", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway56")
def Highway56(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="highway56", **kwargs):
    """Highway56: highway basic CIFAR network, depth 56, blocks (9, 9, 9)."""
    return build_named("highway56", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet110")
def ResNet110(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="resnet110", **kwargs):
    """ResNet110: basic CIFAR network, depth 110, blocks (18, 18, 18)."""
    return build_named("resnet110", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet110v2")
def ResNet110V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=10, classifier_activation="softmax", name="resnet110v2", **kwargs):
    """ResNet110V2: pre-activation basic CIFAR network, depth 110, blocks (18, 18, 18)."""
    return build_named("resnet110v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain110")
def Plain110(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="plain110", **kwargs):
    """Plain110: plain (no shortcut) basic CIFAR network, depth 110, blocks (18, 18, 18)."""
    return build_named("plain110", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway110")
def Highway110(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="highway110", **kwargs):
    """Highway110: highway basic CIFAR network, depth 110, blocks (18, 18, 18)."""
    return build_named("highway110", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet1202")
def ResNet1202(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name="resnet1202", **kwargs):
    """ResNet1202: basic CIFAR network, depth 1202, blocks (200, 200, 200)."""
    return build_named("resnet1202", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet1202v2")
def ResNet1202V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=10, classifier_activation="softmax", name="resnet1202v2", **kwargs):
    """ResNet1202V2: pre-activation basic CIFAR network, depth 1202, blocks (200, 200, 200)."""
    return build_named("resnet1202v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("plain1202")
def Plain1202(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name="plain1202", **kwargs):
    """Plain1202: plain (no shortcut) basic CIFAR network, depth 1202, blocks (200, 200, 200)."""
    return build_named("plain1202", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("highway1202")
def Highway1202(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=10, classifier_activation="softmax", name="highway1202", **kwargs):
    """Highway1202: highway basic CIFAR network, depth 1202, blocks (200, 200, 200)."""
    return build_named("highway1202", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet164v2")
def ResNet164V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=10, classifier_activation="softmax", name="resnet164v2", **kwargs):
    """ResNet164V2: pre-activation bottleneck CIFAR network, depth 164, blocks (18, 18, 18)."""
    return build_named("resnet164v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet1001v2")
def ResNet1001V2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=10, classifier_activation="softmax", name="resnet1001v2", **kwargs):
    """ResNet1001V2: pre-activation bottleneck CIFAR network, depth 1001, blocks (111, 111, 111)."""
    return build_named("resnet1001v2", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet50d")
def ResNet50D(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name="resnet50d", **kwargs):
    """ResNet50D: bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). ResNet-D: deep 3x3 stem, average-pool shortcuts. timm's / torchvision's resnet50d layout (stride on the 3x3, no conv biases)."""
    return build_named("resnet50d", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("seresnet50")
def SEResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="seresnet50", **kwargs):
    """SEResNet50: bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). Squeeze-and-excitation in every block. timm's / torchvision's seresnet50 layout (stride on the 3x3, no conv biases)."""
    return build_named("seresnet50", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("wideresnet502")
def WideResNet50_2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="wideresnet502", **kwargs):
    """WideResNet50_2: bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). Wide: bottleneck width x2. timm's / torchvision's wide_resnet50_2 layout (stride on the 3x3, no conv biases)."""
    return build_named("wideresnet502", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnet101d")
def ResNet101D(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet101d", **kwargs):
    """ResNet101D: bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). ResNet-D: deep 3x3 stem, average-pool shortcuts. timm's / torchvision's resnet101d layout (stride on the 3x3, no conv biases)."""
    return build_named("resnet101d", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("seresnet101")
def SEResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="seresnet101", **kwargs):
    """SEResNet101: bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). Squeeze-and-excitation in every block. timm's / torchvision's seresnet101 layout (stride on the 3x3, no conv biases)."""
    return build_named("seresnet101", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("wideresnet1012")
def WideResNet101_2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name="wideresnet1012", **kwargs):
    """WideResNet101_2: bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). Wide: bottleneck width x2. timm's / torchvision's wide_resnet101_2 layout (stride on the 3x3, no conv biases)."""
    return build_named("wideresnet1012", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnext5032x4d")
def ResNeXt50_32x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name="resnext5032x4d", **kwargs):
    """ResNeXt50_32x4d: bottleneck ImageNet network, depth 50, blocks (3, 4, 6, 3). ResNeXt 32x4d (grouped 3x3 convs). timm's / torchvision's resnext50_32x4d layout (stride on the 3x3, no conv biases)."""
    return build_named("resnext5032x4d", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


@register("resnext10132x8d")
def ResNeXt101_32x8d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", name="resnext10132x8d", **kwargs):
    """ResNeXt101_32x8d: bottleneck ImageNet network, depth 101, blocks (3, 4, 23, 3). ResNeXt 32x8d (grouped 3x3 convs). timm's / torchvision's resnext101_32x8d layout (stride on the 3x3, no conv biases)."""
    return build_named("resnext10132x8d", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)


__all__ = ["REGISTRY", "register", "ResNet18", "ResNet18V2", "Plain18", "ResNet34", "ResNet34V2", "Plain34", "ResNet50", "ResNet50V2", "Plain50", "ResNet101", "ResNet101V2", "Plain101", "ResNet152", "ResNet152V2", "Plain152", "ResNet200", "ResNet200V2", "Plain200", "ResNet8", "ResNet20", "ResNet20V2", "Plain20", "Highway20", "ResNet32", "ResNet32V2", "Plain32", "Highway32", "ResNet44", "ResNet44V2", "Plain44", "Highway44", "ResNet56", "ResNet56V2", "Plain56", "Highway56", "ResNet110", "ResNet110V2", "Plain110", "Highway110", "ResNet1202", "ResNet1202V2", "Plain1202", "Highway1202", "ResNet164V2", "ResNet1001V2", "ResNet50D", "SEResNet50", "WideResNet50_2", "ResNet101D", "SEResNet101", "WideResNet101_2", "ResNeXt50_32x4d", "ResNeXt101_32x8d"]
