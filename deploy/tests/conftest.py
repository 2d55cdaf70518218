import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def has_litert() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


needs_litert = pytest.mark.skipif(not has_litert(), reason="needs ai-edge-litert (CompiledModel API)")


@pytest.fixture(scope="session")
def reference():
    data = np.load(fixture("reference.npz"))
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def float_clf():
    from resnet_edge import Classifier

    return Classifier(fixture("float32.tflite"), threads=1)


@pytest.fixture(scope="session")
def int8_clf():
    from resnet_edge import Classifier

    return Classifier(fixture("int8.tflite"), threads=1)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (DEPLOY, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "resnet_edge", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def png_header_only(width: int, height: int) -> bytes:
    """A valid-looking PNG declaring width×height pixels, with (almost) no pixel data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_bytes(array: np.ndarray, **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


@pytest.fixture()
def images(tmp_path, reference):
    """A folder with good images (PNG/JPEG, nested) named by their true class, plus a list of bad files."""
    from PIL import Image

    good = tmp_path / "good"
    (good / "sub").mkdir(parents=True)
    names = reference["names"]
    paths = []
    for i, (image, label) in enumerate(zip(reference["images"][:6], reference["labels"][:6])):
        folder = good / "sub" if i % 2 else good
        path = folder / f"{i}_{names[label]}.{'png' if i % 3 else 'jpg'}"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    (good / "notes.txt").write_text("ignored: not an image extension")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    full = jpeg_bytes(reference["images"][0])
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (bad / "text.png").write_text("this is not an image\n")
    (bad / "bomb.png").write_bytes(png_header_only(20000, 20000))
    return {"good": str(good), "good_files": sorted(paths), "bad": str(bad),
            "bad_files": sorted(str(p) for p in bad.iterdir())}
