"""The command line: output formats, exit codes, runtime selection, accelerators and delegates."""

import csv
import io
import json

import pytest
from conftest import fixture, has_litert, needs_litert, run_cli


def test_classify_human(images):
    done = run_cli("classify", fixture("float32.tflite"), images["good"], "--top-k", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# ") and "delegate" in lines[0] and "threads" in lines[0]
    assert len(lines) == 1 + len(images["good_files"])
    for line in lines[1:]:
        path, top = line.split(": ", 1)
        assert top.split(" (")[0] == path.rsplit("_", 1)[-1].split(".")[0]  # named after the true label
    assert "6 classified, 0 failed" in done.stderr


def test_classify_json_and_bad_files(images):
    done = run_cli("classify", fixture("int8.tflite"), images["good"], images["bad"], "--json", "--top-k", "3")
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    summary = records[-1]
    assert summary["summary"] and summary["images"] == 6 and summary["failed"] == 4
    assert summary["runtime"] and summary["runtime_version"] and summary["delegate"]
    assert all(len(r["top"]) == 3 for r in records[:-1])
    errors = [line for line in done.stderr.splitlines() if line.startswith("resnet-edge: error:")]
    assert len(errors) == 4 and all(any(b in e for b in images["bad_files"]) for e in errors)
    assert "Traceback" not in done.stderr


def test_classify_csv(images):
    done = run_cli("classify", fixture("dynamic.tflite"), images["good"], "--csv", "--top-k", "1", "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 6 and {r["rank"] for r in rows} == {"1"}
    assert all(r["label"] == r["path"].rsplit("_", 1)[-1].split(".")[0] for r in rows)


def test_missing_paths_and_no_images(tmp_path, images):
    done = run_cli("classify", fixture("float32.tflite"), str(tmp_path / "nope.jpg"), images["good_files"][0])
    assert done.returncode == 1 and "nope.jpg: no such file" in done.stderr and done.stdout.count("\n") == 2
    (tmp_path / "empty").mkdir()
    done = run_cli("classify", fixture("float32.tflite"), str(tmp_path / "empty"))
    assert done.returncode == 1 and "no image files" in done.stderr


def test_max_pixels_option(images):
    done = run_cli("classify", fixture("float32.tflite"), images["good_files"][0], "--max-pixels", "100")
    assert done.returncode == 1 and "MP limit" in done.stderr


def test_benchmark_json_last_line():
    done = run_cli("benchmark", fixture("int8.tflite"), "--runs", "5", "--warmup", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("median_ms", "min_ms", "p90_ms", "p99_ms", "images_per_s", "runtime", "runtime_version",
                "delegate", "accelerator"):
        assert key in report
    assert report["runs"] == 5


def test_benchmark_human_and_info():
    done = run_cli("benchmark", fixture("float32.tflite"), "--runs", "3")
    assert done.returncode == 0 and "median" in done.stdout and "images/s" in done.stdout
    done = run_cli("info", fixture("int8.tflite"), "--json")
    info = json.loads(done.stdout)
    assert info["input_dtype"] == "int8" and info["labels"][0] == "red" and info["spec"]["resize"] == "center_crop"


@pytest.mark.parametrize("args, message", [
    ([], "required"),
    (["classify"], "required"),
    (["classify", "m.tflite", "x.jpg", "--top-k", "0"], "positive"),
    (["classify", "m.tflite", "x.jpg", "--threads", "two"], "positive"),
    (["classify", "m.tflite", "x.jpg", "--runtime", "onnx"], "invalid choice"),
    (["classify", "m.tflite", "x.jpg", "--accelerator", "tpu"], "invalid choice"),
    (["classify", "m.tflite", "x.jpg", "--delegate-option", "novalue"], "KEY=VALUE"),
    (["benchmark", "m.tflite", "--runs", "-1"], "positive"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_json_and_csv_exclude_each_other(images):
    done = run_cli("classify", fixture("float32.tflite"), images["good"], "--json", "--csv")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("model, message", [("missing.tflite", "no such file"), ("rank2.tflite", "4-D")])
def test_model_errors_exit_1(model, message, images):
    done = run_cli("classify", fixture(model), images["good"])
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_runtime_selection_reported():
    done = run_cli("benchmark", fixture("float32.tflite"), "--runs", "2", "--json")
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["runtime"] == ("litert" if has_litert() else "tflite-runtime")
    forced = run_cli("benchmark", fixture("float32.tflite"), "--runs", "2", "--json", "--runtime", report["runtime"])
    assert json.loads(forced.stdout.splitlines()[-1])["runtime"] == report["runtime"]


def test_unavailable_runtime_is_a_clear_error():
    try:
        import tensorflow  # noqa: F401
        pytest.skip("tensorflow is installed here")
    except ImportError:
        pass
    done = run_cli("benchmark", fixture("float32.tflite"), "--runtime", "tensorflow")
    assert done.returncode == 1 and "not installed" in done.stderr and "Traceback" not in done.stderr


def test_missing_delegate_falls_back_or_fails(tmp_path):
    lib = str(tmp_path / "libnothere.so")
    done = run_cli("benchmark", fixture("float32.tflite"), "--runs", "2", "--json", "--delegate", lib,
                   "--delegate-option", "device=usb")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "libnothere.so" in warnings[0] and "CPU" in warnings[0]
    assert json.loads(done.stdout.splitlines()[-1])["delegate"] in ("xnnpack", "builtin")
    done = run_cli("benchmark", fixture("float32.tflite"), "--delegate", lib, "--require-accelerator")
    assert done.returncode == 1 and "cannot be used" in done.stderr


@needs_litert
def test_accelerator_cpu_uses_compiled_model():
    done = run_cli("benchmark", fixture("int8.tflite"), "--runs", "3", "--json", "--accelerator", "cpu")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["delegate"] == "compiled_model" and report["accelerator"] == "cpu"


@needs_litert
def test_accelerator_classify_matches_interpreter(images):
    a = run_cli("classify", fixture("int8.tflite"), images["good"], "--json", "--accelerator", "cpu")
    b = run_cli("classify", fixture("int8.tflite"), images["good"], "--json")
    assert a.returncode == b.returncode == 0
    assert a.stdout.splitlines()[:-1] == b.stdout.splitlines()[:-1]


@needs_litert
@pytest.mark.parametrize("accelerator", ["gpu", "npu"])
def test_unavailable_accelerator_falls_back_or_fails(accelerator):
    done = run_cli("benchmark", fixture("float32.tflite"), "--runs", "2", "--json", "--accelerator", accelerator)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    if report["accelerator"].startswith(accelerator):  # a machine that has one
        return
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and accelerator in warnings[0] and report["accelerator"] == "cpu"
    done = run_cli("benchmark", fixture("float32.tflite"), "--accelerator", accelerator, "--require-accelerator")
    assert done.returncode == 1 and "cannot be used" in done.stderr


def test_accelerator_without_litert_is_a_clear_message():
    if has_litert():
        pytest.skip("ai-edge-litert is installed: covered by the tests above")
    done = run_cli("benchmark", fixture("float32.tflite"), "--runs", "2", "--accelerator", "gpu")
    assert done.returncode == 0 and "CompiledModel" in done.stderr
