"""Hostile models, metadata and image folders for resnet-edge (issue 10, items 4, 6 and 8): each is refused in one
line, in bounded memory and time, or skipped; nothing hangs and nothing crashes the caller."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import DEPLOY, fixture
from fuzz import layout, with_metadata
from resnet_edge import Classifier, ModelError, RuntimeUnavailable, cli, guard
from resnet_edge.metadata import check_model, finite_json, json_depth, load_json


def inflated_input(factor_bits: int = 20, source: str = "float32.tflite") -> bytes:
    """The fixture with its input tensor's height multiplied by 2**factor_bits (one bit set in one dimension)."""
    data = bytearray(open(fixture(source), "rb").read())
    lay = layout(bytes(data))
    start, length, _ = next(s for s in lay.shapes if not s[2] and s[1] == 4)  # the first 4-D activation: the input
    height = struct.unpack_from("<i", data, start + 4)[0]
    struct.pack_into("<i", data, start + 4, height | (1 << factor_bits))
    return bytes(data)


def run_cli(*args: str, timeout: float = 120) -> tuple[int, str, str, float, float]:
    """``resnet-edge ARGS`` in a fresh interpreter: (exit code, stdout, stderr, peak resident MB, seconds)."""
    code = textwrap.dedent(f"""
        import sys
        from resnet_edge import cli
        try:
            code = cli.main({list(args)!r})
        except SystemExit as e:
            code = e.code
        hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
        print("PEAK_KB", hwm, file=sys.stderr)
        sys.exit(code)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (DEPLOY, os.environ.get("PYTHONPATH")) if p))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    seconds = time.perf_counter() - start
    lines = done.stderr.splitlines()
    peak = next((int(ln.split()[1]) / 1024 for ln in lines if ln.startswith("PEAK_KB")), float("nan"))
    err = "\n".join(ln for ln in lines if not ln.startswith("PEAK_KB"))
    return done.returncode, done.stdout, err, peak, seconds


def one_error(err: str, match: str) -> None:
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("resnet-edge: error:")]
    assert len(errors) == 1 and match in errors[0], err


# ---- tensor sizes: checked from the file before anything runs --------------------------------------------------


def test_sizes_are_summarised():
    summary = check_model(fixture("float32.tflite"))
    assert 0 < summary["activation_bytes"] < 1 << 20 and summary["largest_tensor_bytes"] == 32 * 32 * 3 * 4


@pytest.mark.parametrize("command", [["classify", "{model}", "{image}"], ["benchmark", "{model}", "--runs", "3"],
                                     ["info", "{model}"]])
def test_inflated_shape_is_refused_before_running(tmp_path, reference, command):
    model = tmp_path / "inflated.tflite"
    model.write_bytes(inflated_input(20))
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(reference["images"][0]).save(image)
    code, _, err, peak, seconds = run_cli(*(a.format(model=model, image=image) for a in command))
    assert code == 1
    one_error(err, "tensors need 384 MB at batch 1, more than the 256 MB allowed")
    assert peak < 300 and seconds < 20, (peak, seconds)


def test_constant_shape_must_fit_its_buffer(tmp_path):
    data = bytearray(open(fixture("float32.tflite"), "rb").read())
    start, _, _ = next(s for s in layout(bytes(data)).shapes if s[2])
    struct.pack_into("<i", data, start, 1 << 20)
    with pytest.raises(ValueError, match="constant tensor .* needs .* but its buffer holds"):
        check_model(bytes(data))


def test_max_memory_raises_the_tensor_limit_and_the_guard_still_holds(tmp_path):
    model = tmp_path / "inflated.tflite"
    model.write_bytes(inflated_input(16))  # 25 MB of input, about 130 MB to run: passes the size check
    assert check_model(str(model))["activation_bytes"] < 256 << 20
    limits = guard.Limits(tensor_bytes=1 << 40, guard_bytes=120 << 20, guard_cpu_s=60)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="needs more than 120 MB to load and run once"):
        guard.probe(str(model), limits=limits)
    assert time.perf_counter() - start < 30


def test_guard_cpu_limit(monkeypatch):
    monkeypatch.setattr(guard, "_CHILD", "import sys; from resnet_edge.guard import _limit_child; "
                                           "_limit_child(1 << 30, int(sys.argv[7])); exec('while True: pass')")
    limits = guard.Limits(tensor_bytes=1 << 30, guard_bytes=1 << 30, guard_cpu_s=1)
    with pytest.raises(ModelError, match="more than 1 s of CPU time"):
        guard.probe(fixture("float32.tflite"), limits=limits, timeout=60)


def test_guard_child_that_cannot_start(monkeypatch, capsys):
    monkeypatch.setattr(guard.sys, "executable", "/nonexistent/python3")
    with pytest.raises(RuntimeUnavailable, match="cannot start the process that checks the model"):
        Classifier(fixture("float32.tflite"))
    assert cli.main(["info", fixture("float32.tflite")]) == 1
    err = capsys.readouterr().err
    one_error(err, "cannot start the process")


def test_dynamic_batch_is_bounded_by_the_limit(reference):
    clf = Classifier(fixture("dynamic.tflite"), threads=1, batch_size=64, max_memory_mb=0.3)
    assert 1 <= clf.batch_size < 64 and clf.batch_size == clf.engine.max_batch()
    assert clf.predict_arrays(reference["images"][:3]).shape == (3, 10)
    with pytest.raises(ModelError, match="batch 1000 needs about"):
        clf.benchmark(runs=1, warmup=0, batch=1000)


# ---- metadata ---------------------------------------------------------------------------------------------------

GOOD_INPUT = {"height": 32, "width": 32, "channels": 3, "mean": [0, 0, 0], "std": [1, 1, 1]}


@pytest.mark.parametrize("payload,match", [
    (b"[" * 200_000 + b"]" * 200_000, "nested 200000 levels deep"),
    (json.dumps({"input": [1, 2]}).encode(), "metadata input is a list, not an object"),
    (json.dumps({"input": {**GOOD_INPUT, "std": [1e-300] * 3}}).encode(), "out of range"),
    (json.dumps({"input": {**GOOD_INPUT, "std": 0}}).encode(), "out of range"),
    (b'{"input": {"mean": [1e999, 0, 0]}}', "must be finite numbers"),
    (b'{"input": {"mean": [Infinity, 0, 0]}}', "Infinity is not a JSON number"),
    (b'{"input": {"mean": [NaN, 0, 0]}}', "NaN is not a JSON number"),
    (json.dumps({"input": {**GOOD_INPUT, "mean": "zero"}}).encode(), "must be finite numbers"),
    (json.dumps({"input": {**GOOD_INPUT, "resize": ["stretch"]}}).encode(), "resize"),
    (b"\xff", "not UTF-8 JSON"),
])
def test_bad_metadata_is_one_clean_error(tmp_path, payload, match):
    model = tmp_path / "meta.tflite"
    model.write_bytes(with_metadata(open(fixture("float32.tflite"), "rb").read(), payload))
    with pytest.raises(ModelError, match=match) as error:
        Classifier(model, threads=1, safe=False)
    assert "\n" not in str(error.value)
    code, _, err, _, _ = run_cli("info", "--json", str(model))
    assert code == 1
    one_error(err, match.split(" ")[0])


def test_json_helpers():
    assert json_depth(b'{"a": "[[[[", "b": [[{}]]}') == 4
    assert json_depth(b'"\\"[[["') == 0
    with pytest.raises(ValueError, match="nested 5 levels"):
        load_json(b"[[[[[]]]]]", "x", max_depth=4)
    assert finite_json({"a": [float("nan"), 1.0, float("-inf")], "b": np.float32("inf"), "c": (2,)}) == \
        {"a": [None, 1.0, None], "b": None, "c": [2]}


def test_json_output_never_holds_nan(tmp_path, reference):
    """A model whose weights are NaN: its scores are NaN, and --json prints null for them."""
    data = bytearray(open(fixture("float32.tflite"), "rb").read())
    for pos in layout(bytes(data)).buffer_lengths:
        n = struct.unpack_from("<I", data, pos)[0]
        if n >= 64 and n % 4 == 0:
            data[pos + 4:pos + 4 + n] = struct.pack("<f", float("nan")) * (n // 4)
    model = tmp_path / "nan.tflite"
    model.write_bytes(bytes(data))
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(reference["images"][0]).save(image)
    code, out, err, _, _ = run_cli("classify", "--json", str(model), str(image))
    assert code == 0, err

    def strict(name):
        raise AssertionError(f"{name} in --json output")

    lines = [json.loads(line, parse_constant=strict) for line in out.splitlines()]
    assert any(t["score"] is None for t in lines[0]["top"]), lines[0]


# ---- folders: regular files only ----------------------------------------------------------------------------------


def test_fifos_devices_sockets_and_broken_links_are_skipped(tmp_path, reference):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(reference["images"][0]).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "device.jpg")
    os.symlink(folder / "gone.png", folder / "broken.png")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(folder / "sock.png"))
    except OSError:
        pytest.skip("no unix sockets here")
    try:
        code, out, err, _, seconds = run_cli("classify", "--json", fixture("float32.tflite"), str(folder), timeout=60)
    finally:
        server.close()
    assert code == 0 and seconds < 30, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["images"] == 1 and summary["skipped"] == 4 and summary["failed"] == 0
    warnings = sorted(ln for ln in err.splitlines() if "warning" in ln)
    assert len(warnings) == 4 and "Traceback" not in err
    for name, kind in (("broken.png", "a broken link"), ("device.jpg", "a device"), ("pipe.png", "a FIFO"),
                       ("sock.png", "a socket")):
        assert any(name in w and f"skipped: {kind}" in w for w in warnings), warnings


def test_a_fifo_named_on_the_command_line_or_as_the_model(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.tflite")
    code, _, err, _, seconds = run_cli("classify", fixture("float32.tflite"), str(tmp_path / "pipe.png"), timeout=60)
    assert code == 1 and seconds < 30
    one_error(err, "a FIFO, not a regular file")
    code, _, err, _, seconds = run_cli("info", str(tmp_path / "pipe.tflite"), timeout=60)
    assert code == 1 and seconds < 30
    one_error(err, "not a regular file (a FIFO)")


def test_open_regular_never_blocks(tmp_path):
    from resnet_edge.preprocess import ImageError, load_image

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="a FIFO"):
        load_image(str(tmp_path / "pipe.jpg"))
