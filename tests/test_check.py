"""``keras-resnet check`` (the thin wrapper of ``resnet-edge check``) and the Edge TPU gate of
``keras-resnet convert --target edgetpu``."""

from __future__ import annotations

import json
import os
import struct

import pytest

pytest.importorskip("resnet_edge")

from keras_resnet.cli.main import main  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "tests", "fixtures")
RESNET20 = os.path.join(FIXTURES, "edgetpu_resnet20.tflite")


def conv_version(content: bytes, version: int) -> bytes:
    """``content`` with CONV_2D's operator-code version set to ``version``."""
    from resnet_edge.flatbuffer import BUILTIN_OPS
    from resnet_edge.metadata import _Reader, _root

    r = _Reader(content)
    for code in r.tables(_root(r), 1, "operator_codes"):
        if max(r.scalar(code, 0, "u8"), r.scalar(code, 3, "i32")) == BUILTIN_OPS.index("CONV_2D"):
            data = bytearray(content)
            struct.pack_into("<i", data, r.field(code, 2), version)
            return bytes(data)
    raise AssertionError("no CONV_2D")


def test_check_command(capsys):
    assert main(["check", RESNET20, "--target", "edgetpu", "--no-compiler", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "passes the edgetpu contract: 0 errors, 0 fallbacks" in out and json.loads(out[-1])["ok"] is True
    assert main(["check", os.path.join(FIXTURES, "flex.tflite"), "--target", "cpu"]) == 2
    captured = capsys.readouterr()
    assert "FLEX:MatrixDeterminant#0" in captured.out
    assert captured.err.strip().endswith("fails the cpu contract (1 errors, 0 fallbacks)")
    assert main(["check", RESNET20, "--target", "cpu", "--strict"]) == 2  # e.g. the 1x1 subsampling MAX_POOL_2Ds
    assert "falls back on the cpu contract (0 errors, 5 fallbacks)" in capsys.readouterr().err
    assert main(["check", os.path.join(FIXTURES, "missing.tflite")]) == 2
    assert "missing.tflite: No such file or directory" in capsys.readouterr().err


def test_check_flags_an_op_version_newer_than_the_compiler(tmp_path, capsys):
    path = tmp_path / "v6.tflite"
    path.write_bytes(conv_version(open(RESNET20, "rb").read(), 6))
    assert main(["check", str(path), "--target", "edgetpu", "--no-compiler"]) == 2
    out = capsys.readouterr().out
    assert "CONV_2D                6     19  error: op version not supported" in out


@pytest.mark.slow
def test_convert_edgetpu_gate(tmp_path, monkeypatch):
    """A QAT ResNet-20 (digits) converted for the Edge TPU passes the gate and its report is printed; a model the
    compiler would refuse (CONV_2D v6, as newer converters emit) is not written."""
    pytest.importorskip("keras")
    pytest.importorskip("ai_edge_litert")
    from shared_models import trained_digits_model

    from keras_resnet.core.errors import ValidationError
    from keras_resnet.data import datasets as data
    from keras_resnet.export import convert as C
    from keras_resnet.io.model_io import load_model
    from keras_resnet.quant import tfmot_qat as Q

    trained = trained_digits_model()
    qat = Q.quantize_model(load_model(trained))
    x, _ = data.load("digits", "train")
    Q.calibrate_ranges(qat, x, batches=2)
    path = Q.save_qat_model(qat, str(tmp_path / "qat.h5"))
    report = C.convert(path, str(tmp_path / "qat.tflite"), target="edgetpu", validation_data="digits",
                       validation_samples=32, min_agreement=0.5)
    text = "\n".join(report.lines())
    assert "passes the edgetpu contract: 0 errors, 0 fallbacks" in text and "CONV_2D" in text
    from resnet_edge.check import check

    assert check(str(tmp_path / "qat.tflite"), "edgetpu", compiler=False).ok

    real = C.convert_model
    monkeypatch.setattr(C, "convert_model", lambda *a, **k: conv_version(real(*a, **k), 6))
    out = tmp_path / "v6.tflite"
    with pytest.raises(ValidationError, match=r"compiler 16.0 would refuse it \(19 errors: error +CONV_2D#\d+: "
                                              r"version 6"):
        C.convert(trained, str(out), target="edgetpu", calibration_data="digits", calibration_samples=16,
                  validation_samples=16)
    assert not out.exists()
