"""Hostile .keras and .h5 files: the safe loader refuses them before Keras reads them, in one line, in bounded
memory, and never runs code from them (issue 10, items 2, 5 and 8)."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from keras_resnet.core.errors import ModelFileError, UnsafeModelError
from keras_resnet.io import allowlist, model_checks, model_io

from . import files
from .conftest import run_python

h5py = pytest.importorskip("h5py")


def _config(path: str) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _refused(path, match: str, error=ModelFileError, **kwargs) -> str:
    with pytest.raises(error, match=match) as info:
        model_checks.check_model_file(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---- the allow-list --------------------------------------------------------------------------------------------


def test_allow_list_names_keras_built_ins_only():
    keras = pytest.importorskip("keras")
    modules = [keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.optimizers,
               keras.optimizers.schedules, keras.losses, keras.metrics, keras.dtype_policies, keras.models]
    public = {name for m in modules for name in dir(m) if isinstance(getattr(m, name), type)} | {"Functional"}
    assert allowlist.KERAS_CLASSES <= public, sorted(allowlist.KERAS_CLASSES - public)
    for code_runner in ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "MeanMetricWrapper",
                        "TFOpLambda", "Layer", "__lambda__", "__typespec__", "function"):
        assert code_runner not in allowlist.ALLOWED_CLASSES
    functions = {name for m in (keras.activations, keras.losses, keras.metrics) for name in dir(m)
                 if callable(getattr(m, name))}
    assert allowlist.ALLOWED_FUNCTIONS <= functions, sorted(allowlist.ALLOWED_FUNCTIONS - functions)
    assert not {"get", "serialize", "deserialize"} & allowlist.ALLOWED_FUNCTIONS


def test_keras_resnet_training_models_pass(resnet_keras):
    found = model_checks.check_model_file(resnet_keras)
    assert found.keras_version.startswith("3") and found.layers > 60
    names = {obj["class_name"] for obj, _ in allowlist._walk(found.config)}
    assert {"ChannelPadding", "ResNetSchedule", "SGD", "Normalization", "Functional"} <= names


def test_channel_padding_arguments_from_a_file_are_checked(resnet_keras, tmp_path):
    """A registered layer's config is untrusted too: ChannelPadding with stride 0 is one ModelFileError line."""
    pytest.importorskip("keras")
    config = _config(resnet_keras)
    layers = [obj for obj, _ in allowlist._walk(config) if obj.get("class_name") == "ChannelPadding"]
    assert layers and all(layer["config"]["stride"] == 2 for layer in layers)
    layers[0]["config"]["stride"] = 0
    path = files.rewrite_keras(resnet_keras, tmp_path / "stride0.keras", config_json=files.json_bytes(config))
    with pytest.raises(ModelFileError, match="could not load") as info:
        model_io.load_model(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name,mutation,problem", [
    ("lambda", {"class_name": "Lambda"}, "a Lambda layer"),
    ("escaped", {"class_name": "\u004cambda"}, "a Lambda layer"),  # what json.loads gives for "\u004cambda"
    ("keras_lambda", {"config": {"class_name": "__lambda__", "config": {"code": "..."}}}, "a Lambda layer"),
    ("tfsm", {"class_name": "TFSMLayer"}, "class TFSMLayer"),
    ("module", {"module": "os"}, "from module 'os'"),
    ("registered", {"registered_name": "evil>Dense"}, "registered as 'evil>Dense'"),
    ("function", {"config": {"class_name": "function", "config": "system", "module": "os"}}, "module 'os'"),
    ("function_name", {"config": {"class_name": "function", "config": "exec", "module": "builtins"}},
     "function exec"),
    ("not_a_string", {"class_name": ["Dense"]}, "class_name that is a JSON array"),
])
def test_off_list_classes_are_refused_naming_the_layer(small_keras, tmp_path, name, mutation, problem):
    config = _config(small_keras)
    conv = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "conv")
    for key, value in mutation.items():
        if key == "config":
            conv["config"]["activation"] = value  # a serialized object inside the layer's config
        else:
            conv[key] = value
    path = files.rewrite_keras(small_keras, tmp_path / f"{name}.keras", config_json=files.json_bytes(config))
    message = _refused(path, "refusing to load it", UnsafeModelError)
    assert "layer 'conv'" in message and problem in message and "--unsafe" in message
    assert model_checks.check_model_file(path, unsafe=True)  # --unsafe skips the allow-list only


def test_escaped_lambda_in_raw_json_is_decoded_before_the_check(small_keras, tmp_path):
    text = json.dumps(_config(small_keras)).replace('"class_name": "Conv2D"', '"class_name": "\\u004cambda"')
    assert "Lambda" not in text  # a substring test on the raw text sees nothing
    path = files.rewrite_keras(small_keras, tmp_path / "escaped.keras", config_json=text.encode())
    assert "a Lambda layer" in _refused(path, "layer 'conv'", UnsafeModelError)


def test_nested_models_are_walked(tmp_path):
    keras = pytest.importorskip("keras")
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Lambda(lambda t: t * 2.0, name="hidden_code")(inner_in), name="inner")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)))
    path = str(tmp_path / "nested.keras")
    outer.save(path)
    assert "layer 'hidden_code'" in _refused(path, "Lambda layer", UnsafeModelError)


# ---- malformed archives and JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry,content,match", [
    ("metadata_json", b"[]", "metadata.json is a JSON array"),
    ("metadata_json", b'"3.15"', "metadata.json is a JSON string"),
    ("config_json", b"[1,2,3]", "model config is a JSON array"),
    ("config_json", b"null", "model config is a JSON null"),
    ("config_json", b'{"class_name": "Functional"}', "no class_name and config"),
    ("config_json", b"{not json", "not UTF-8 JSON"),
    ("config_json", b"\xff\xfe{}", "not UTF-8 JSON"),
    ("config_json", b'{"a": NaN}', "NaN is not a JSON number"),
    ("config_json", b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
])
def test_malformed_json_is_a_model_file_error(small_keras, tmp_path, entry, content, match):
    path = files.rewrite_keras(small_keras, tmp_path / "bad.keras", **{entry: content})
    _refused(path, match)


def test_missing_config_and_foreign_zip(small_keras, tmp_path):
    entries = files.keras_entries(small_keras)
    del entries["config.json"]
    _refused(files.write_zip(tmp_path / "noconfig.keras", entries), "has no config.json")
    _refused(files.write_zip(tmp_path / "other.keras", {"readme.txt": b"hello"}), "has no config.json")


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_archives_say_so(small_keras, tmp_path, fraction):
    data = open(small_keras, "rb").read()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: int(len(data) * fraction)])
    _refused(path, "corrupt or truncated")


def test_bit_flipped_entry_fails_its_crc(small_keras, tmp_path):
    data = bytearray(open(small_keras, "rb").read())
    with zipfile.ZipFile(small_keras) as archive:
        info = archive.getinfo("model.weights.h5")
    data[info.header_offset + 30 + len(info.filename) + 2000] ^= 0x10  # inside the stored weights
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(data))
    _refused(path, "Bad CRC")


@pytest.mark.parametrize("name", ["../escape.h5", "/abs/model.h5", "a/../../b.json"])
def test_entry_names_outside_the_archive(small_keras, tmp_path, name):
    entries = {**files.keras_entries(small_keras), name: b"x"}
    _refused(files.write_zip(tmp_path / "names.keras", entries), "points outside the archive")


def test_duplicate_entries(small_keras, tmp_path):
    entries = files.keras_entries(small_keras)
    path = files.write_zip(tmp_path / "dup.keras", entries)
    with zipfile.ZipFile(path, "a") as archive:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive.writestr("config.json", b"{}")
    _refused(path, "appears twice")


# ---- bombs ------------------------------------------------------------------------------------------------------

BOMBS = {
    "metadata_2gb": lambda src, tmp: files.rewrite_keras(src, tmp / "m.keras", metadata_json=("zeros", 2 * files.GB)),
    "weights_2gb": lambda src, tmp: files.rewrite_keras(src, tmp / "w.keras", model_weights_h5=("zeros", 2 * files.GB)),
    "h5_in_keras_2gb": lambda src, tmp: files.rewrite_keras(
        src, tmp / "h.keras", model_weights_h5=open(files.h5_bomb(tmp / "b.h5"), "rb").read()),
    "h5_unallocated_8gb": lambda src, tmp: files.h5_bomb(tmp / "u.h5", 8 * files.GB, allocated=False),
    "h5_gzip_2gb": lambda src, tmp: files.h5_bomb(tmp / "g.h5"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_in_bounded_memory(small_keras, tmp_path, name):
    path = BOMBS[name](small_keras, tmp_path)
    assert os.path.getsize(path) < 5 << 20
    result = run_python(f"""
        from keras_resnet.io import model_checks
        from keras_resnet.core.errors import ModelFileError
        try:
            model_checks.check_model_file({path!r})
            RESULT = {{"refused": None}}
        except ModelFileError as error:
            RESULT = {{"refused": str(error)}}
    """)
    assert result["refused"] and ("bomb" in result["refused"] or "declares" in result["refused"]), result
    assert result["peak_mb"] < 300, result  # a bomb is refused from its declared sizes, never inflated


def test_declared_total_is_capped(small_keras, tmp_path, monkeypatch):
    monkeypatch.setattr(model_checks, "MAX_TOTAL_BYTES", 1000)
    _refused(small_keras, "declares .* in all")


# ---- .h5 (tf_keras QAT files) -------------------------------------------------------------------------------------


def test_h5_without_model_config(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f["w"] = [1.0, 2.0]
    _refused(path, "holds no model_config")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    _refused(tmp_path / "junk.h5", "not a readable")


@pytest.mark.parametrize("config,match", [
    ("[1, 2, 3]", "a JSON array"),
    ('{"class_name": "Functional", "config": {"layers": [{"class_name": "\\u004cambda", "config": {"name": "x"}}]}}',
     "layer 'x' uses a Lambda layer"),
    ('{"class_name": "Functional", "config": {"layers": [{"class_name": "TFOpLambda", "config": {"name": "op"}}]}}',
     "layer 'op' uses a TFOpLambda layer"),
])
def test_h5_model_config_is_parsed_and_walked(tmp_path, config, match):
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config.encode()
    _refused(path, match)


def test_files_that_are_not_regular(tmp_path):
    os.mkfifo(tmp_path / "pipe.keras")
    _refused(tmp_path / "pipe.keras", "not a regular file")
    os.symlink(tmp_path / "gone.keras", tmp_path / "broken.keras")
    _refused(tmp_path / "broken.keras", "not a regular file")
