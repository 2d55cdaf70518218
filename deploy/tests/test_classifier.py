"""The Python API against reference outputs computed by the Keras model when the fixtures were made."""

import sys

import numpy as np
import pytest
from conftest import fixture
from PIL import Image
from resnet_edge import Classifier, ImageError, ModelError


def test_float32_matches_keras(float_clf, reference):
    scores = float_clf.predict_arrays(reference["images"])
    assert np.allclose(scores, reference["probabilities"], atol=1e-4)


@pytest.mark.parametrize("name", ["int8.tflite", "nometa.tflite", "dynamic.tflite"])
def test_variants_agree_with_keras_top1(name, reference):
    clf = Classifier(fixture(name), threads=1)
    scores = clf.predict_arrays(reference["images"])
    assert scores.shape == reference["probabilities"].shape
    assert (scores.argmax(-1) == reference["probabilities"].argmax(-1)).all()
    assert np.abs(scores - reference["probabilities"]).max() < (0.05 if "int8" in name else 1e-4)


def test_predict_images_top_k_labels(float_clf, int8_clf, reference):
    for i in range(4):
        image = Image.fromarray(reference["images"][i])
        label = int(reference["labels"][i])
        for clf in (float_clf, int8_clf):
            top = clf.predict(image, top_k=3)
            assert len(top) == 3 and top[0][0] == label and top[0][1] == str(reference["names"][label])
            assert top[0][2] >= top[1][2] >= top[2][2]
    assert len(float_clf.predict(Image.fromarray(reference["images"][0]), top_k=50)) == 10


def test_labels_default_to_indices_without_metadata(reference):
    clf = Classifier(fixture("nometa.tflite"), threads=1)
    assert clf.metadata is None and clf.labels == [str(i) for i in range(10)]
    assert clf.spec.mean == (0.0,) * 3 and clf.spec.resize == "stretch"
    assert clf.predict(reference["images"][0])[0][1] == str(reference["labels"][0])


def test_predict_batch_keeps_order_and_reports_bad_files(float_clf, images, reference):
    sources = images["good_files"][:3] + images["bad_files"] + images["good_files"][3:]
    results = float_clf.predict_batch(sources, top_k=1)
    assert [r.source for r in results if r.error is None] == images["good_files"]
    assert sum(r.error is not None for r in results) == len(images["bad_files"])
    for r in results:
        if r.error is None:  # files are named "<i>_<label>.<ext>"
            assert r.top[0][1] == r.source.rsplit("_", 1)[-1].split(".")[0]
    with pytest.raises(ImageError):
        float_clf.predict(images["bad_files"][0])


def test_dynamic_batch_runs_batches(reference):
    clf = Classifier(fixture("dynamic.tflite"), threads=1, batch_size=5)
    assert clf.batch_size == 5
    images = [Image.fromarray(a) for a in reference["images"]]  # 16 images: batches of 5, 5, 5, 1
    results = clf.predict_batch(images, top_k=1)
    assert [r.top[0][0] for r in results] == reference["probabilities"].argmax(-1).tolist()
    assert clf.engine.batch in (1, 5)
    assert Classifier(fixture("float32.tflite"), threads=1, batch_size=5).batch_size == 1  # fixed batch


def test_benchmark_report(int8_clf):
    report = int8_clf.benchmark(runs=5, warmup=1)
    assert report["runs"] == 5 and 0 < report["min_ms"] <= report["median_ms"] <= report["p99_ms"]
    assert report["runtime"] in ("litert", "tflite-runtime") and report["runtime_version"]
    assert report["delegate"] and report["accelerator"] == "cpu" and report["images_per_s"] > 0


def test_unsupported_model_input_rank():
    with pytest.raises(ModelError, match="4-D"):
        Classifier(fixture("rank2.tflite"))


def test_no_tensorflow_or_keras_imported(float_clf, reference):
    float_clf.predict(reference["images"][0])
    import resnet_edge.cli  # noqa: F401

    assert "tensorflow" not in sys.modules and "keras" not in sys.modules
