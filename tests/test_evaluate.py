"""`keras-resnet evaluate`: metrics from probabilities, the .keras loader, the CLI's --json line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_helpers import run

from keras_resnet.core.errors import DataError, ModelFileError
from keras_resnet.data import datasets as data
from keras_resnet.train import evaluate


def test_metrics_from_probabilities():
    p = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0], [0.1, 0.6, 0.3, 0, 0, 0, 0], [0.5, 0.1, 0.4, 0, 0, 0, 0],
                  [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4]])
    y = np.array([0, 1, 2, 6])
    m = evaluate.metrics(p, y, list("abcdefg"))
    assert m["images"] == 4 and m["accuracy"] == 0.75 and m["top5_accuracy"] == 1.0
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.6, 0.4, 0.4])))
    assert m["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.0, "d": None, "e": None, "f": None, "g": 1.0}
    logits = np.log(p[:3, :3])
    assert evaluate.metrics(logits - 5, y[:3])["accuracy"] == pytest.approx(2 / 3)  # logits get a softmax
    assert "top5_accuracy" not in evaluate.metrics(p[:3, :3], y[:3])
    with pytest.raises(DataError, match="wrong dataset"):
        evaluate.metrics(p[:, :3], y)


def test_loaders_are_chosen_by_extension(tmp_path):
    assert set(evaluate.LOADERS) == {".keras", ".tflite"}
    with pytest.raises(ModelFileError, match="must end in .keras, .tflite"):
        evaluate.load_predictor(str(tmp_path / "model.onnx"))
    with pytest.raises(ModelFileError, match="does not exist"):
        evaluate.load_predictor(str(tmp_path / "model.keras"))
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable .keras archive"):
        evaluate.load_predictor(str(tmp_path / "bad.keras"))
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelFileError, match="cannot load .*bad.tflite as a TFLite model"):
        evaluate.load_predictor(str(tmp_path / "bad.tflite"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from keras_resnet.train.recipe import model_for_dataset

    model = model_for_dataset("resnet20", data.info("digits"))
    path = tmp_path_factory.mktemp("model") / "resnet20.keras"
    model.save(path)
    return model, str(path)


def test_evaluate_keras_file_matches_the_model(model_file):
    model, path = model_file
    result = evaluate.evaluate(path, dataset="digits", split="val")
    x, y = data.load("digits", "val")
    expected = evaluate.metrics(model.predict(x.astype("float32"), verbose=0), y)
    assert result["images"] == len(y) and result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-4) and "top5_accuracy" in result
    assert result["format"] == "keras" and result["split"] == "val"


@pytest.mark.slow  # two TensorFlow subprocesses
def test_cli_json_is_the_last_line(model_file):
    _, path = model_file
    result = run("evaluate", path, "--dataset", "digits", "--split", "test", "--limit", "50", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "accuracy" in lines[1] and "per class" in result.stdout
    summary = json.loads(lines[-1])
    assert summary["images"] == 50 and 0 <= summary["accuracy"] <= 1 and "per_class_accuracy" in summary

    wrong = run("evaluate", path, "--dataset", "nope")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1].startswith("keras-resnet evaluate: error: unknown dataset")
