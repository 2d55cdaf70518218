"""Write :mod:`keras_resnet.model.models` from :data:`keras_resnet.spec.specs.MODELS`: ``python -m keras_resnet.model._generate_models``.

The generated module is committed, so every named model is a plain ``def`` that IDEs, type checkers and grep
find; ``tests/test_models_module.py`` fails when it is out of date with the table.
"""

from __future__ import annotations

import os
import sys

from keras_resnet.spec.specs import MODELS

HEADER = '''"""The named models, one function each: ``ResNet50``, ``ResNet50V2``, ``ResNet20``, ``Plain56``, ``Highway20``, ...

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
'''

TEMPLATE = '''

@register("{key}")
def {function}(include_top=True, weights={weights}, input_tensor=None, input_shape=None, pooling=None,
{indent}classes={classes}, classifier_activation="softmax", name="{key}", **kwargs):
    """{doc}"""
    return build_named("{key}", include_top=include_top, weights=weights, input_tensor=input_tensor,
                       input_shape=input_shape, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation, name=name, **kwargs)
'''


def source() -> str:
    parts = [HEADER]
    for key, spec in MODELS.items():
        weights = '"imagenet"' if spec.keras_weights else "None"
        doc = spec.describe() + (" keras.applications' ImageNet weights by default." if spec.keras_weights else "")
        parts.append(TEMPLATE.format(key=key, function=spec.function, weights=weights, classes=spec.classes,
                                     indent=" " * (len(spec.function) + 5), doc=doc))
    names = ", ".join(f'"{spec.function}"' for spec in MODELS.values())
    parts.append(f"\n\n__all__ = [\"REGISTRY\", \"register\", {names}]\n")
    return "".join(parts)


PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.py")

if __name__ == "__main__":
    with open(PATH, "w", encoding="utf-8") as f:
        f.write(source())
    print(f"wrote {PATH} ({len(MODELS)} models)", file=sys.stderr)
