"""keras_resnet.model.models is generated from the depth table (keras_resnet.spec.specs.MODELS) and committed: it is up to date,
and every named model is a plain function, in REGISTRY and on the package."""

from __future__ import annotations

import ast
import inspect
import pathlib

import keras_resnet
from keras_resnet.model import _generate_models
from keras_resnet.spec import specs


def test_models_py_is_generated_from_the_table():
    committed = pathlib.Path(_generate_models.PATH).read_text(encoding="utf-8")
    assert _generate_models.source() == committed, (
        "keras_resnet/model/models.py is out of date with keras_resnet.spec.specs.MODELS: "
        "run python -m keras_resnet.model._generate_models and commit the result")


def test_every_model_is_a_greppable_def():
    tree = ast.parse(pathlib.Path(_generate_models.PATH).read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {spec.function for spec in specs.MODELS.values()} <= defined


def test_every_model_is_registered_and_on_the_package():
    from keras_resnet.model import models

    assert list(models.REGISTRY) == list(specs.MODELS)
    for key, spec in specs.MODELS.items():
        function = getattr(models, spec.function)
        assert models.REGISTRY[key] is function, key
        assert getattr(keras_resnet, spec.function) is function, spec.function
        assert spec.function in models.__all__ and spec.function in keras_resnet.__all__
        parameters = inspect.signature(function).parameters
        assert parameters["classes"].default == spec.classes
        assert parameters["weights"].default == ("imagenet" if spec.keras_weights else None)
        assert parameters["name"].default == key


def test_names_are_normalized_once():
    assert specs.normalize_name("ResNet-50_v2") == "resnet50v2"
    assert specs.model_spec("ResNet-20")[0] == "resnet20"
