"""resnet_edge: results, preprocessing, bad input, corrupted models, runtimes and the command line.

These tests run in virtual environments WITHOUT TensorFlow (deploy/ci.sh): ai-edge-litert, and
tflite-runtime 2.14 with numpy<2. The fixture models come from fixtures/make_fixtures.py.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import resnet_edge
from conftest import fixture
from PIL import Image
from resnet_edge import (
    Classifier,
    ImageError,
    InputSpec,
    ModelError,
    load_image,
    read_metadata,
    select_runtime,
)
from resnet_edge.cli import main

RUNTIME = select_runtime().name


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from resnet_edge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def float_clf():
    return Classifier(fixture("float32.tflite"), threads=2)


def save_images(folder, images) -> list[str]:
    paths = []
    for i, im in enumerate(images):
        paths.append(str(folder / f"{i:02d}.png"))
        Image.fromarray(im).save(paths[-1])
    return paths


@pytest.mark.parametrize("model", ["float32.tflite", "int8.tflite", "dynamic.tflite", "nometa.tflite"])
def test_scores_match_the_keras_model(model, reference):
    images, labels, probabilities, names = reference
    clf = Classifier(fixture(model), threads=2)
    scores = clf.predict_arrays(images.astype(np.float32))
    assert scores.shape == probabilities.shape
    assert np.mean(scores.argmax(-1) == probabilities.argmax(-1)) >= (0.9 if "int8" in model else 1.0)
    if model != "int8.tflite":
        np.testing.assert_allclose(scores, probabilities, atol=1e-4)
    if model == "nometa.tflite":  # no metadata: class indices, normalisation inside the model
        assert clf.labels == [str(i) for i in range(10)] and clf.spec.mean == (0.0, 0.0, 0.0)
    else:
        assert clf.labels == names


def test_metadata_is_read_without_tensorflow():
    meta = read_metadata(fixture("int8.tflite"))
    assert meta["schema"] == "keras_resnet.metadata/1" and meta["input"]["resize"] == "center_crop"
    assert read_metadata(fixture("nometa.tflite")) is None
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules or RUNTIME == "tensorflow"


def test_classify_files_and_folders_in_order(float_clf, reference, tmp_path):
    images, labels, _, names = reference
    paths = save_images(tmp_path, images)
    (tmp_path / "notes.txt").write_text("not an image, and not picked up from a folder")
    results = list(float_clf.classify([str(tmp_path)], top_k=3))
    assert [r.path for r in results] == paths
    assert [r.top[0][0] for r in results] == [names[i] for i in labels]
    assert all(len(r.top) == 3 and r.error is None for r in results)
    assert float_clf.predict(paths[0], top_k=1)[0][0] == names[labels[0]]
    assert float_clf.predict(Image.open(paths[1]))[0][0] == names[labels[1]]


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"])
def test_every_pillow_mode_becomes_rgb_pixels(mode, tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).convert("I;16")
    elif mode in ("I", "F"):
        image = rgb.convert("L").convert(mode)
    else:
        image = rgb.convert(mode)
    suffix = ".tiff" if mode in ("I;16", "I", "F", "CMYK", "YCbCr") else ".png"
    path = tmp_path / f"image{suffix}"
    try:
        image.save(path)
        source = str(path)
    except OSError:  # no file format stores it (PA): the in-memory image
        source = image
    pixels = load_image(source, InputSpec(32, 32))
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.float32
    assert 0 <= pixels.min() <= pixels.max() <= 255
    if mode == "I;16":  # 16-bit scaled to 8 bits, not clipped
        gray = load_image(rgb.convert("L"), InputSpec(32, 32))
        assert np.abs(pixels - gray).max() <= 2


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 30, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    pixels = load_image(str(path), InputSpec(60, 20))  # stretched back, but rotated first: blue on top
    top, bottom = pixels[:10].mean(axis=(0, 1)), pixels[-10:].mean(axis=(0, 1))
    assert top[2] > top[0] and bottom[0] > bottom[2]


def test_center_crop_keeps_the_middle():
    image = Image.new("RGB", (100, 50), (0, 0, 0))
    image.paste((255, 255, 255), (25, 0, 75, 50))
    pixels = load_image(image, InputSpec(32, 32, resize="center_crop"))
    assert pixels.shape == (32, 32, 3) and pixels[:, 8:24].mean() > 200


def huge_png(path, side: int = 20000) -> None:
    """A valid 1-bit side×side PNG written without building it in memory as an image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side // 8)
    compressor, body = zlib.compressobj(9), io.BytesIO()
    for _ in range(side):
        body.write(compressor.compress(row))
    body.write(compressor.flush())
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", body.getvalue()) + chunk(b"IEND", b""))


def test_bad_files_get_a_reason_and_the_rest_is_classified(float_clf, reference, tmp_path):
    images, labels, _, names = reference
    good = save_images(tmp_path, images[:3])
    jpeg = io.BytesIO()
    Image.fromarray(images[3]).save(jpeg, "JPEG")
    bad = {"empty.png": b"", "text.jpg": b"hello, not a picture", "truncated.jpg": jpeg.getvalue()[:300]}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    huge_png(tmp_path / "bomb.png")
    order = [good[0], str(tmp_path / "empty.png"), good[1], str(tmp_path / "text.jpg"), str(tmp_path / "bomb.png"),
             str(tmp_path / "truncated.jpg"), str(tmp_path / "missing.png"), good[2]]
    results = {r.path: r for r in float_clf.classify(order)}
    assert [r for r in results] == order
    assert results[order[1]].error == "empty file"
    assert "not an image" in results[order[3]].error
    assert "above the limit" in results[order[4]].error or "decompression bomb" in results[order[4]].error
    assert "truncated" in results[order[5]].error
    assert results[order[6]].error == "no such file"
    assert [results[p].top[0][0] for p in good] == [names[i] for i in labels[:3]]
    with pytest.raises(ImageError, match="above the limit of 1,000"):
        load_image(good[0], InputSpec(32, 32), max_pixels=1000)

    cli = run_cli("classify", fixture("float32.tflite"), *order, "--json")
    assert cli.returncode == 1
    report = json.loads(cli.stdout.strip().splitlines()[-1])
    assert len(report["results"]) == 3 and len(report["errors"]) == 5
    assert all(line.startswith("resnet-edge: error: ") for line in cli.stderr.strip().splitlines()[:5])
    assert "Traceback" not in cli.stderr


def corruptions(data: bytes, count: int, seed: int = 0):
    rng = random.Random(seed)
    kinds = ["truncate", "flip", "random", "zero", "shuffle"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        b = bytearray(data)
        if kind == "truncate":
            b = b[: rng.randrange(0, len(b))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 40)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == "random":
            b = bytearray(rng.randbytes(rng.randint(0, 4000)))
            if i % 2:
                b[4:8] = b"TFL3"
        elif kind == "zero":
            start = rng.randrange(len(b))
            b[start:start + rng.randint(4, 512)] = bytes(min(len(b) - start, 512))[: len(b[start:start + 512])]
        else:
            start = rng.randrange(len(b) - 64)
            block = b[start:start + 64]
            rng.shuffle(block)
            b[start:start + 64] = block
        yield kind, bytes(b)


def test_fuzzed_models_never_crash_the_caller(tmp_path):
    checked = {"error": 0, "works": 0}
    for source in ("float32.tflite", "int8.tflite"):
        data = open(fixture(source), "rb").read()
        for i, (kind, corrupted) in enumerate(corruptions(data, 20, seed=len(source))):
            path = tmp_path / f"{source}.{i}.{kind}.tflite"
            path.write_bytes(corrupted)
            try:
                clf = Classifier(str(path), threads=1)
                clf.predict_arrays(np.zeros((1, 32, 32, 3), np.float32))
                checked["works"] += 1
            except (ModelError, ValueError) as error:
                assert str(error) and "\n" not in str(error)
                checked["error"] += 1
    assert sum(checked.values()) == 40 and checked["error"] >= 20, checked


@pytest.mark.parametrize("name,message", [("missing.tflite", "no such file"), ("rank2.tflite", "4-D NHWC"),
                                          ("conftest.py", "not a TFLite model")])
def test_unusable_models_are_one_line_errors(name, message, tmp_path):
    path = fixture(name) if name != "conftest.py" else os.path.join(os.path.dirname(__file__), name)
    with pytest.raises(ModelError, match=message):
        Classifier(path)
    cli = run_cli("classify", path, fixture("reference.npz"))
    assert cli.returncode == 2 and message in cli.stderr and len(cli.stderr.strip().splitlines()) == 1


def test_runtime_selection_and_report(float_clf):
    info = float_clf.info
    assert info["runtime"] == RUNTIME and info["runtime_version"] and info["delegate"] in ("xnnpack", "builtin")
    expected = "litert" if RUNTIME == "litert" else RUNTIME
    assert Classifier(fixture("float32.tflite"), runtime=expected).info["runtime"] == expected
    missing = "tflite-runtime" if RUNTIME == "litert" else "litert"
    cli = run_cli("benchmark", fixture("float32.tflite"), "--runtime", missing)
    if cli.returncode:  # not installed here: a clear answer
        assert cli.returncode == 2 and "not installed" in cli.stderr


def test_unusable_delegate_falls_back_or_fails(tmp_path):
    warnings = []
    clf = Classifier(fixture("float32.tflite"), delegate=str(tmp_path / "libnothing.so"), warn=warnings.append)
    assert clf.info["delegate"] in ("xnnpack", "builtin") and "cannot be used" in warnings[0]
    cli = run_cli("benchmark", fixture("float32.tflite"), "--delegate", str(tmp_path / "libnothing.so"),
                  "--require-accelerator")
    assert cli.returncode == 2 and "cannot be used" in cli.stderr


def test_benchmark_json_is_the_last_line():
    cli = run_cli("benchmark", fixture("int8.tflite"), "--threads", "1", "--runs", "5", "--json")
    assert cli.returncode == 0, cli.stderr
    report = json.loads(cli.stdout.strip().splitlines()[-1])
    for key in ("median_ms", "min_ms", "p90_ms", "p99_ms", "images_per_s", "runtime", "runtime_version", "delegate"):
        assert key in report
    assert report["min_ms"] <= report["median_ms"] <= report["p99_ms"]
    clf = Classifier(fixture("dynamic.tflite"), threads=1)  # after a batch of 7, latency is still batch 1
    clf.predict_arrays(np.zeros((7, 32, 32, 3), np.float32))
    assert clf.benchmark(runs=3, warmup=1)["batch"] == 1


def test_cli_usage_errors_exit_2():
    assert run_cli().returncode == 2
    assert run_cli("classify", fixture("float32.tflite")).returncode == 2  # no PATH
    bad = run_cli("benchmark", fixture("float32.tflite"), "--runs", "0")
    assert bad.returncode == 2 and "positive" in bad.stderr and "Traceback" not in bad.stderr
    assert main(["classify", fixture("float32.tflite"), fixture("reference.npz"), "--csv"]) == 1


def test_the_package_needs_no_tensorflow():
    code = (f"import sys, numpy as np, resnet_edge; c = resnet_edge.Classifier({fixture('dynamic.tflite')!r}, "
            "threads=1); c.predict_arrays(np.zeros((2, 32, 32, 3), np.float32)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    assert resnet_edge.__version__
