"""``resnet-edge check --target mcu``: TensorFlow Lite Micro's op table and the int8-only rules, from the file alone."""

import os
import re

import pytest
from conftest import fixture, run_cli
from resnet_edge.check import check
from resnet_edge.flatbuffer import BUILTIN_OPS, read_file, read_graph
from resnet_edge.micro import MICRO_OPS, resolver_registrations


def test_int8_models_pass_and_list_their_registrations():
    report = check(fixture("int8.tflite"), "mcu")
    assert report.ok and report.count("fallback") == 0, report.lines()
    mcu = report.extra["mcu"]
    assert mcu["resolver"] == ["AddConv2D", "AddAdd", "AddMean", "AddFullyConnected", "AddSoftmax"]
    assert mcu["flash_bytes"] == os.path.getsize(fixture("int8.tflite"))
    assert resolver_registrations(read_graph(read_file(fixture("int8.tflite")))) == mcu["resolver"]
    assert all(op["status"].startswith("TFLM (Add") for op in report.ops)


def test_float_models_and_custom_ops_are_errors():
    report = check(fixture("float32.tflite"), "mcu")
    assert not report.ok
    assert any("FLOAT32" in f.line() and "full int8" in f.line() for f in report.findings)
    assert any("int8 or uint8 I/O needed" in f.message for f in report.findings)
    flex = check(fixture("flex.tflite"), "mcu")
    assert not flex.ok and any("SELECT_TF_OPS" in f.message for f in flex.findings)
    uint8 = check(fixture("edgetpu_resnet20.tflite"), "mcu")  # uint8 I/O: QUANTIZE ops, which TFLM has
    assert uint8.ok and any("uint8" in f.message and f.severity == "note" for f in uint8.findings)


def test_cli_check_mcu():
    done = run_cli("check", fixture("int8.tflite"), "--target", "mcu")
    assert done.returncode == 0, done.stderr
    assert "passes the mcu contract" in done.stdout and "MicroMutableOpResolver<5>" in done.stdout
    failed = run_cli("check", fixture("float32.tflite"), "--target", "mcu")
    assert failed.returncode != 0 and "fails the mcu contract" in failed.stderr


def test_op_table_names_builtin_ops_and_resolver_methods():
    assert set(MICRO_OPS) <= set(BUILTIN_OPS)
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", method) for method in MICRO_OPS.values())
    assert len(set(MICRO_OPS.values())) == len(MICRO_OPS)


def test_op_table_matches_the_installed_tflite_micro():
    """The table is the set of builtin ops whose kernel the tflite-micro wheel links (``tflite::Register_<OP>``)."""
    import importlib.util

    pytest.importorskip("tflite_micro")
    spec = importlib.util.find_spec("tflite_micro.python.tflite_micro._runtime")
    library = spec.origin if spec else None
    if not library or not os.path.exists(library):
        pytest.skip("this tflite-micro build has no _runtime extension to read")
    data = open(library, "rb").read()
    linked = {op for op in BUILTIN_OPS if b"%dRegister_%s" % (len("Register_" + op), op.encode()) in data}
    assert linked == set(MICRO_OPS), (sorted(linked - set(MICRO_OPS)), sorted(set(MICRO_OPS) - linked))
