"""Bad models give clear errors, never a crash: missing, not TFLite, truncated, corrupted (fuzzed)."""

import random

import numpy as np
import pytest
from conftest import fixture
from resnet_edge import Classifier, ModelError, open_model
from resnet_edge.guard import probe


def test_missing_and_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        Classifier(tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="not a file"):
        Classifier(tmp_path)
    (tmp_path / "notes.txt").write_text("hello, I am not a model at all")
    with pytest.raises(ModelError, match="not a TFLite model"):
        Classifier(tmp_path / "notes.txt")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelError, match="too short"):
        Classifier(tmp_path / "empty.tflite")


def test_truncated_model(tmp_path):
    data = open(fixture("int8.tflite"), "rb").read()
    (tmp_path / "half.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="half.tflite"):
        Classifier(tmp_path / "half.tflite")


def test_probe_reports_the_io(tmp_path):
    reports = probe(fixture("int8.tflite"))
    assert reports["base"]["inputs"][0]["dtype"] == "int8" and reports["base"]["inputs"][0]["shape"] == [1, 32, 32, 3]


def _corruptions(seed: int = 1234):
    """(name, bytes) pairs: truncations, bit flips, random bytes, zeroed regions, from two fixtures."""
    rng = random.Random(seed)
    for source in ("float32.tflite", "int8.tflite"):
        data = open(fixture(source), "rb").read()
        n = len(data)
        for _ in range(4):
            cut = rng.randrange(8, n)
            yield f"{source}-truncate-{cut}", data[:cut]
        for i in range(8):
            flipped = bytearray(data)
            for _ in range(rng.choice([1, 2, 8])):
                flipped[rng.randrange(n)] ^= 1 << rng.randrange(8)
            yield f"{source}-bitflip-{i}", bytes(flipped)
        for _ in range(3):
            start = rng.randrange(n)
            end = min(n, start + rng.choice([4, 64, 512]))
            yield f"{source}-zeroed-{start}", data[:start] + bytes(end - start) + data[end:]
        for i in range(2):
            noise = bytearray(rng.getrandbits(8) for _ in range(n))
            noise[4:8] = b"TFL3"  # random bytes behind a valid identifier
            if i:
                noise[:8] = data[:8]  # ... and the real root offset
            yield f"{source}-random-{i}", bytes(noise)
        header = bytearray(data)
        header[0:4] = (0xFFFFFF).to_bytes(4, "little")
        yield f"{source}-root-offset", bytes(header)


CORRUPTIONS = list(_corruptions())


def test_fuzz_has_enough_cases():
    assert len(CORRUPTIONS) >= 30


@pytest.mark.parametrize("name, data", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_fuzzed_model_errors_cleanly_or_works(tmp_path, name, data, reference):
    path = tmp_path / "fuzzed.tflite"
    path.write_bytes(data)
    try:
        clf = Classifier(path, threads=1, warn=lambda message: None)
    except ModelError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        return
    scores = clf.predict_arrays(reference["images"][:2])
    assert scores.shape == (2, 10) and scores.dtype == np.float32


@pytest.mark.parametrize("name, data", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_fuzzed_model_in_the_child_alone(tmp_path, name, data):
    """Without the Python-side structure check, the runtime itself meets the corrupted file: in the child."""
    path = tmp_path / "fuzzed.tflite"
    path.write_bytes(data)
    try:
        reports = probe(str(path), timeout=60)
    except ModelError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert reports["base"]["inputs"][0]["shape"][1:] == [32, 32, 3]


def test_guard_turns_a_crash_into_an_error(monkeypatch):
    import resnet_edge.guard as guard

    monkeypatch.setattr(guard, "_CHILD", "import os; os.abort()")
    with pytest.raises(ModelError, match="crashed.*SIGABRT"):
        Classifier(fixture("float32.tflite"))


def test_guard_turns_a_hang_into_an_error(monkeypatch):
    import resnet_edge.guard as guard

    monkeypatch.setattr(guard, "_CHILD", "import time; time.sleep(30)")
    with pytest.raises(ModelError, match="within 1 s"):
        open_model(fixture("float32.tflite"), timeout=1)
