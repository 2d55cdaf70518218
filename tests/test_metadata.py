"""keras_resnet.metadata: embedded JSON survives, replaces itself, and leaves the model's results alone."""

import numpy as np
import pytest

from keras_resnet.build import build_model
from keras_resnet.convert import TFLiteModel, convert_model
from keras_resnet.metadata import embed_metadata, read_all_metadata, read_metadata


def test_embed_read_replace_and_identical_outputs():
    content = convert_model(build_model("resnet20", input_shape=(16, 16, 3)), quantization="float32")
    meta = {"schema": "keras_resnet.metadata/1", "labels": ["zéro", "un"], "input": {"height": 16}}
    tagged = embed_metadata(content, meta)
    assert read_metadata(tagged) == meta and read_metadata(content) is None
    others = set(read_all_metadata(content))  # the converter's own entries (min_runtime_version, ...)
    again = embed_metadata(tagged, {**meta, "labels": ["a", "b"]})
    assert read_metadata(again)["labels"] == ["a", "b"] and set(read_all_metadata(again)) == others | {"keras_resnet"}
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(TFLiteModel(again)(x), TFLiteModel(content)(x))
    with pytest.raises(ValueError, match="not a TFLite model"):
        embed_metadata(b"PK\x03\x04 not a flatbuffer", meta)
