"""Named-model lookup: :func:`build_model` builds a :data:`~keras_resnet.spec.specs.MODELS` entry by name.

It sits above both :mod:`keras_resnet.model.build` (the builder) and the generated :mod:`keras_resnet.model.models`
(whose :data:`~keras_resnet.model.models.REGISTRY` maps each key to its function), so imports run one way:
registry -> models -> build.
"""

from __future__ import annotations

from keras_resnet.model.models import REGISTRY
from keras_resnet.spec.specs import model_spec


def build_model(model: str, **kwargs):
    """Build a named model, e.g. ``build_model("resnet20", classes=100)`` (case, ``-`` and ``_`` ignored).

    The same as calling its function in :mod:`keras_resnet.model.models` (``ResNet20(classes=100)``), whose
    defaults (ImageNet weights for the models keras.applications publishes) apply.
    """
    key, _ = model_spec(model)
    return REGISTRY[key](**kwargs)
