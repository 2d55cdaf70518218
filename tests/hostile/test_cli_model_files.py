"""The hostile model files through the real `keras-resnet` command: one `error:` line, exit 2, no code run, no
output written, peak memory under 1 GB (most of it TensorFlow's import). Slow: each run imports TensorFlow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from . import files
from .conftest import ENV

pytestmark = pytest.mark.slow
TIME = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)


def keras_resnet(*args: str, cwd) -> tuple[subprocess.CompletedProcess, float | None]:
    """Run the command; returns (result, peak resident MB or None without GNU time)."""
    script = os.path.join(os.path.dirname(sys.executable), "keras-resnet")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "keras_resnet.cli"]
    peak_file = os.path.join(cwd, "peak.txt")
    prefix = [TIME, "-o", peak_file, "-f", "%M"] if TIME else []
    done = subprocess.run([*prefix, *command, *args], capture_output=True, text=True, timeout=600, env=ENV, cwd=cwd)
    peak = int(open(peak_file).read().split()[-1]) / 1024 if TIME and os.path.exists(peak_file) else None
    return done, peak


def assert_one_error_line(done: subprocess.CompletedProcess, match: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and match in errors[0], done.stderr[-2000:]


@pytest.fixture(scope="module")
def lambda_h5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "CODE_RAN"
    return files.tf_keras_lambda_h5(folder / "escaped.h5", marker), marker


@pytest.mark.parametrize("command", [["convert", "{model}", "--output", "out.tflite"],
                                     ["qat", "{model}", "--dataset", "digits", "--output", "out.keras"],
                                     ["qat", "{model}", "--engine", "tfmot", "--dataset", "digits", "--output",
                                      "out.h5"]])
def test_escaped_lambda_h5_runs_no_code(lambda_h5, tmp_path, command):
    model, marker = lambda_h5
    done, peak = keras_resnet(*(a.format(model=model) for a in command), cwd=tmp_path)
    assert_one_error_line(done, "Lambda layer")
    assert not marker.exists(), "the file's code ran"
    assert not list(tmp_path.glob("out*")), "an output was written"
    assert peak is None or peak < 1024, peak


@pytest.mark.parametrize("case,match", [
    ("metadata_bomb", "zip bomb"),
    ("weights_bomb", "zip bomb"),
    ("config_list", "model config is a JSON array"),
    ("metadata_list", "metadata.json is a JSON array"),
    ("truncated", "corrupt or truncated"),
    ("tf_keras", "tf_keras (Keras 2) model"),
])
def test_evaluate_and_convert_refuse_in_one_line(small_keras, tmp_path, case, match):
    make = {
        "metadata_bomb": lambda p: files.rewrite_keras(small_keras, p, metadata_json=("zeros", 2 * files.GB)),
        "weights_bomb": lambda p: files.rewrite_keras(small_keras, p, model_weights_h5=("zeros", 2 * files.GB)),
        "config_list": lambda p: files.rewrite_keras(small_keras, p, config_json=b"[1,2,3]"),
        "metadata_list": lambda p: files.rewrite_keras(small_keras, p, metadata_json=b"[]"),
        "truncated": lambda p: p.write_bytes(open(small_keras, "rb").read()[:5000]),
        "tf_keras": lambda p: files.tf_keras_keras(p),
    }
    path = tmp_path / f"{case}.keras"
    make[case](path)
    done, peak = keras_resnet("evaluate", str(path), "--dataset", "digits", cwd=tmp_path)
    assert_one_error_line(done, match)
    assert peak is None or peak < 1024, peak
    if case != "tf_keras":  # convert takes tf_keras QAT models
        done, peak = keras_resnet("convert", str(path), "--output", "out.tflite", cwd=tmp_path)
        assert_one_error_line(done, match)
        assert not (tmp_path / "out.tflite").exists()
        assert peak is None or peak < 1024, peak
