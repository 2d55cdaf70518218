"""keras_resnet.export.metadata: embedded JSON survives, replaces itself, and leaves the model's results alone.

The quick tests use deploy/'s committed fixture (a tiny float32 model without keras_resnet metadata); the slow one
embeds into a ResNet-20 fresh from the converter.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from keras_resnet.core.errors import ModelFileError
from keras_resnet.export import metadata
from keras_resnet.export.metadata import embed_metadata, read_all_metadata, read_metadata

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "tests" / "fixtures"
META = {"schema": metadata.SCHEMA, "labels": ["zéro", "un"], "input": {"height": 16}}


def _outputs(content: bytes, folder: pathlib.Path, name: str, x: np.ndarray) -> np.ndarray:
    from resnet_edge import Classifier

    path = folder / name
    path.write_bytes(content)
    return Classifier(path, safe=False, warn=lambda message: None).run(x)


def _check_embed_read_replace(content: bytes, folder: pathlib.Path, size: int) -> None:
    tagged = embed_metadata(content, META)
    assert read_metadata(tagged) == META and read_metadata(content) is None
    others = set(read_all_metadata(content))  # the converter's own entries (min_runtime_version, ...)
    again = embed_metadata(tagged, {**META, "labels": ["a", "b"]})
    assert read_metadata(again)["labels"] == ["a", "b"] and set(read_all_metadata(again)) == others | {"keras_resnet"}
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    np.testing.assert_array_equal(_outputs(again, folder, "again.tflite", x), _outputs(content, folder, "plain.tflite", x))


def test_one_schema_shared_with_the_device_runner():
    import resnet_edge.metadata

    assert metadata.SCHEMA == resnet_edge.metadata.SCHEMA == "keras_resnet.metadata/1"
    assert metadata.NAME == resnet_edge.metadata.NAME == "keras_resnet"
    assert metadata.read_metadata is resnet_edge.metadata.read_metadata


def test_embed_read_replace_and_identical_outputs(tmp_path):
    _check_embed_read_replace((FIXTURES / "nometa.tflite").read_bytes(), tmp_path, 32)


def test_embedding_changes_no_op(tmp_path):
    from keras_resnet.export.ops import op_summary

    content = (FIXTURES / "nometa.tflite").read_bytes()
    counts, floating = op_summary(content)
    assert counts.get("CONV_2D", 0) >= 1 and floating  # a float32 model: every op reads float tensors
    assert op_summary(embed_metadata(content, META)) == (counts, floating)


def test_not_a_tflite_model_is_refused():
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        embed_metadata(b"PK\x03\x04 not a flatbuffer", META)


@pytest.mark.slow
def test_embed_into_a_converted_resnet(tmp_path):
    from keras_resnet.export.trace import convert_model
    from keras_resnet.model.registry import build_model

    content = convert_model(build_model("resnet20", input_shape=(16, 16, 3)), quantization="float32")
    _check_embed_read_replace(content, tmp_path, 16)
