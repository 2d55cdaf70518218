"""The one safe loader (keras_resnet.io.model_io.load_model): refuses code-running files unless unsafe, fails in one line."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_resnet.core.errors import ModelFileError, UnsafeModelError  # noqa: E402
from keras_resnet.io.model_io import load_model  # noqa: E402


def _lambda_model():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_lambda_models_are_refused_unless_unsafe(tmp_path):
    path = tmp_path / "lambda.keras"
    _lambda_model().save(path)
    with pytest.raises(UnsafeModelError, match="Lambda") as error:
        load_model(path)
    assert "--unsafe" in str(error.value) and "\n" not in str(error.value)
    model = load_model(path, unsafe=True)
    x = np.ones((1, 4, 4, 3), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), 2.0 * np.ones((1, 3)))


def test_keras_resnet_models_load_safely(tmp_path):
    from keras_resnet import ResNet20

    model = ResNet20(input_shape=(16, 16, 3), classes=3)  # option A: the registered ChannelPadding layer
    model.save(tmp_path / "r20.keras")
    loaded = load_model(tmp_path / "r20.keras")
    assert loaded.count_params() == model.count_params() and loaded.get_layer("conv3_block1_0_pad")


@pytest.mark.parametrize("name,content,message", [
    ("missing.keras", None, "does not exist"),
    ("folder.keras", "dir", "is a folder"),
    ("model.onnx", b"x", "expected a .keras"),
    ("corrupt.keras", b"PK\x03\x04garbage", "corrupt|truncated|not a readable"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_read_json_file_refuses_big_deep_and_broken_files(tmp_path):
    from keras_resnet.core.errors import ModelFileError
    from keras_resnet.core.files import read_json_file

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json_file(good, max_bytes=100, max_depth=4) == {"a": [1, 2]}
    with pytest.raises(ModelFileError, match="larger than 10 bytes; not a preset"):
        read_json_file(good, max_bytes=10, max_depth=4, what="preset")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50 + "]" * 50)
    with pytest.raises(ModelFileError):
        read_json_file(deep, max_bytes=1000, max_depth=4)
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": NaN}')
    with pytest.raises(ModelFileError):
        read_json_file(broken, max_bytes=1000, max_depth=4)
