"""Conversion to .tflite: modes, targets, validation in resnet-edge, metadata, safety (atomic, no overwrite, clear
errors). Every test converts: the whole module is in the slow tier."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("resnet_edge")

from keras_resnet.cli.main import main  # noqa: E402
from keras_resnet.core.errors import ConfigError, ValidationError  # noqa: E402
from keras_resnet.export import convert as C  # noqa: E402
from keras_resnet.export import ops, targets, trace, validate  # noqa: E402
from keras_resnet.export.metadata import build_metadata  # noqa: E402
from keras_resnet.io.model_io import load_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def digits_model() -> str:
    from shared_models import trained_digits_model

    return trained_digits_model()


@pytest.mark.isa
@pytest.mark.parametrize("mode,max_ratio", [("float32", 1.05), ("float16", 0.55), ("dynamic", 0.35),
                                            ("int8", 0.4)])
def test_modes_validate_against_keras(digits_model, tmp_path, mode, max_ratio):
    out = tmp_path / f"{mode}.tflite"
    report = C.convert(digits_model, str(out), quantization=mode, calibration_data="digits",
                       calibration_samples=64, validation_samples=100, dataset="digits")
    assert out.exists() and report.size_bytes == out.stat().st_size
    assert report.agreement >= targets.MIN_AGREEMENT[mode]
    assert report.size_ratio <= max_ratio
    assert report.tflite_accuracy > 0.85 and report.validation == "digits"
    if mode == "int8":  # full integer, option-A downsampling blocks included
        assert report.float_ops == [] and report.io_type == "int8"
    if mode == "float32":
        assert report.max_abs_diff < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left


@pytest.mark.isa
def test_gpu_and_edgetpu_targets(digits_model, tmp_path, monkeypatch):
    gpu = C.convert(digits_model, str(tmp_path / "gpu.tflite"), target="gpu", validation_samples=32)
    assert gpu.quantization == "float16" and gpu.io_type == "float32" and gpu.gpu_unsupported == []
    # PTQ of a CIFAR ResNet with option-A blocks is fully integer (ChannelPadding traced as PAD).
    ptq = C.convert(digits_model, str(tmp_path / "ptq.tflite"), target="edgetpu", calibration_data="digits",
                    calibration_samples=32, validation_samples=32, min_agreement=0.8)
    assert ptq.float_ops == [] and ptq.io_type == "uint8" and "PAD" in ptq.ops
    real = ops.op_summary
    monkeypatch.setattr(C, "op_summary", lambda content: (real(content)[0], ["CONV_2D#3"]))
    with pytest.raises(ValidationError, match="not fully integer: 1 ops would stay float.*CONV_2D#3"):
        C.convert(digits_model, str(tmp_path / "tpu.tflite"), target="edgetpu", calibration_data="digits",
                  calibration_samples=32, validation_samples=16)
    assert not (tmp_path / "tpu.tflite").exists()
    monkeypatch.undo()
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    tpu = C.convert(plain, str(tmp_path / "tpu.tflite"), target="edgetpu", calibration_data="digits",
                    calibration_samples=32, validation_samples=32, min_agreement=0.8)
    assert tpu.quantization == "int8" and tpu.io_type == "uint8" and tpu.float_ops == []
    from resnet_edge import Classifier

    details = Classifier(str(tmp_path / "tpu.tflite"), warn=lambda message: None).engine.input
    assert list(details.shape) == [1, 32, 32, 3] and details.dtype == "uint8"


def test_qat_model_converts_without_calibration(tmp_path, digits_model):
    from keras_resnet.quant import tfmot_qat as Q

    qat = Q.quantize_model(load_model(digits_model))
    from keras_resnet.data import datasets as data

    x, _ = data.load("digits", "train")
    Q.calibrate_ranges(qat, x, batches=2)
    path = Q.save_qat_model(qat, str(tmp_path / "qat.h5"))
    assert main(["convert", path, "-o", str(tmp_path / "qat.tflite"), "--target", "edgetpu", "--io-type", "int8",
                 "--validation-data", "digits", "--validation-samples", "64"]) == 0
    assert ops.op_summary((tmp_path / "qat.tflite").read_bytes())[1] == []
    with pytest.raises(ConfigError, match="int8 only"):
        C.convert(path, str(tmp_path / "f16.tflite"), quantization="float16")


def test_metadata_is_embedded(digits_model, tmp_path):
    from keras_resnet.export import metadata

    out = tmp_path / "m.tflite"
    report = C.convert(digits_model, str(out), dataset="digits", validation_samples=16)
    assert report.metadata
    meta = metadata.read_metadata(str(out))
    assert meta["quantization"] == "float32" and meta["input"]["mean"] == [0.0, 0.0, 0.0]
    assert len(meta["labels"]) == 10 and meta["normalization_in_model"]["std"][0] > 1


def test_metadata_dict_follows_the_contract(digits_model):
    from keras_resnet.quant import tfmot_qat as Q

    model = load_model(digits_model)
    meta = build_metadata(model, "resnet20", "int8", None)
    assert meta["schema"] == "keras_resnet.metadata/1" and meta["labels"] == [str(i) for i in range(10)]
    assert meta["input"]["height"] == 32 and meta["input"]["layout"] == "NHWC"
    layer = model.get_layer("normalization")
    np.testing.assert_allclose(meta["normalization_in_model"]["std"], np.sqrt(np.ravel(layer.variance)), rtol=1e-5)
    qat_meta = build_metadata(Q.quantize_model(model), "resnet20", "int8", None)  # from the depthwise twin
    np.testing.assert_allclose(qat_meta["normalization_in_model"]["mean"], meta["normalization_in_model"]["mean"],
                               rtol=1e-4)


def test_errors_leave_nothing_behind(digits_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.tflite"

    def run(*args):
        code = main(["convert", *args])
        return code, capsys.readouterr().err

    code, err = run(str(tmp_path / "missing.keras"), "-o", str(out))
    assert code == 2 and "does not exist" in err
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    code, err = run(str(corrupt), "-o", str(out))
    assert code == 2 and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit:
        main(["convert", digits_model, "-o", str(out), "--quantize", "int4"])
    assert exit.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err
    code, err = run(digits_model, "-o", str(out), "--quantize", "int8")
    assert code == 2 and "calibration" in err
    small = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    small.save(tmp_path / "small.keras")
    code, err = run(str(tmp_path / "small.keras"), "-o", str(out), "--quantize", "int8", "--calibration-data",
                    "digits")
    assert code == 2 and "32×32×3" in err and "64×64×3" in err
    code, err = run(digits_model, "-o", str(out), "--min-agreement", "1.01", "--validation-samples", "8")
    assert code == 2 and "--min-agreement must be in [0, 1]; got 1.01" in err and err.count("\n") == 1
    real = validate.compare  # a conversion the device runner disagrees with: refused after validation, nothing written
    monkeypatch.setattr(validate, "compare", lambda *args, **kwargs: {**real(*args, **kwargs), "agreement": 0.5})
    code, err = run(digits_model, "-o", str(out), "--validation-samples", "8")
    assert code == 2 and "agreement with the Keras model is 0.5000" in err and "nothing written" in err
    assert err.count("\n") == 1
    monkeypatch.undo()
    assert not out.exists()
    out.write_bytes(b"keep me")
    code, err = run(digits_model, "-o", str(out), "--validation-samples", "8")
    assert code == 2 and "--force" in err and out.read_bytes() == b"keep me"
    assert run(digits_model, "-o", str(out), "--validation-samples", "8", "--force")[0] == 0
    assert out.read_bytes()[4:8] == b"TFL3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.keras", "o.tflite", "small.keras"]


def test_lambda_models_are_refused_unless_unsafe(tmp_path, capsys):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "lambda.keras")
    out = tmp_path / "l.tflite"
    assert main(["convert", str(tmp_path / "lambda.keras"), "-o", str(out)]) == 2
    assert "Lambda" in capsys.readouterr().err and not out.exists()
    assert main(["convert", str(tmp_path / "lambda.keras"), "-o", str(out), "--unsafe",
                 "--validation-samples", "8"]) == 0
    assert out.exists()


def test_evaluate_accepts_tflite(digits_model, tmp_path):
    from keras_resnet.train import evaluate

    out = tmp_path / "e.tflite"
    C.convert(digits_model, str(out), quantization="float16", validation_samples=16)
    predictor = evaluate.load_predictor(str(out))
    assert (predictor.format, predictor.input_shape) == ("tflite", (32, 32, 3))
    from keras_resnet.data import datasets as data

    x, y = data.load("digits", "test")
    assert np.mean(predictor.predict(x[:100]).argmax(-1) == y[:100]) > 0.85
    result = evaluate.evaluate(str(out), dataset="digits", limit=100)  # resnet-edge, as on a device
    assert result["format"] == "tflite" and result["images"] == 100 and result["accuracy"] > 0.85


def _partitions(path: str) -> int:
    """XNNPACK partitions the runtime made of a model (its DELEGATE nodes)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())


def test_option_a_subsampling_keeps_the_cpu_graph_in_one_xnnpack_partition(tmp_path):
    """ChannelPadding's subsample is traced as SPACE_TO_DEPTH + channel slice + PAD, all XNNPACK ops: int8 ResNet-20
    runs as one partition (its int8 SOFTMAX aside), where MaxPooling2D(1, 2) (earlier files) or a stride-2 slice
    split it; ``check`` predicts each case. The odd 15² input exercises the padded space-to-depth."""
    import tensorflow as tf
    from resnet_edge.check import check

    from keras_resnet.model import blocks
    from keras_resnet.model.registry import build_model

    def fallbacks(path):
        return [f.op.split("#")[0] for f in check(path, "cpu").findings if f.severity == "fallback"]

    model = build_model("resnet20", weights=None, input_shape=(15, 15, 3), classes=10)
    x = np.random.default_rng(0).uniform(0, 255, (8, 15, 15, 3)).astype("float32")
    for mode in ("float32", "int8"):
        path = str(tmp_path / f"{mode}.tflite")
        with open(path, "wb") as f:
            f.write(trace.convert_model(model, quantization=mode, batch=1,
                                        io_type="int8" if mode == "int8" else "float32",
                                        calibration=x if mode == "int8" else None))
        assert _partitions(path) == 1 and fallbacks(path) == (["SOFTMAX"] if mode == "int8" else [])
    from resnet_edge import Classifier

    clf = Classifier(str(tmp_path / "float32.tflite"), safe=False, warn=lambda message: None)
    np.testing.assert_allclose(clf.predict_arrays(x[:2]), model.predict(x[:2], verbose=0), atol=1e-5)

    inputs = keras.Input((16, 16, 4))  # an earlier file's shortcut: MaxPooling2D(1, 2), then ChannelPadding
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    y = blocks.ChannelPadding(8)(keras.layers.MaxPooling2D(1, strides=2)(y))
    legacy = keras.Model(inputs, keras.layers.Conv2D(4, 1)(y))
    sliced = tf.function(lambda t: tf.nn.relu(t)[:, ::2, ::2, :] * 2.0,
                         input_signature=[tf.TensorSpec([1, 16, 16, 4], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([sliced.get_concrete_function()], sliced)
    contents = {"maxpool": trace.convert_model(legacy, quantization="float32", batch=1), "slice": converter.convert()}
    for name, content in contents.items():
        path = str(tmp_path / f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        left = {"maxpool": ["MAX_POOL_2D"], "slice": ["STRIDED_SLICE"]}[name]
        assert fallbacks(path) == left and _partitions(path) == 2, name
