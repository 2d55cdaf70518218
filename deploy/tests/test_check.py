"""``resnet-edge check``: the deployment contracts of cpu, gpu and edgetpu, read from the flatbuffer (no runtime)."""

import json
import os
import random
import stat
import struct

import pytest
from conftest import FIXTURES, fixture, needs_litert, run_cli
from resnet_edge.check import check
from resnet_edge.edgetpu_compiler import parse_compiler_log
from resnet_edge.flatbuffer import read_file, read_graph
from resnet_edge.metadata import _Reader, _root

LOGS = os.path.join(FIXTURES, "edgetpu_logs")


def errors(report):
    return [f for f in report.findings if f.severity == "error"]


def fallbacks(report):
    return [f for f in report.findings if f.severity == "fallback"]


def with_op_version(content: bytes, op: str, version: int) -> bytes:
    """``content`` with the version of ``op``'s operator code set to ``version`` (the field must be present)."""
    from resnet_edge.flatbuffer import BUILTIN_OPS

    r = _Reader(content)
    for code in r.tables(_root(r), 1, "operator_codes"):
        if max(r.scalar(code, 0, "u8"), r.scalar(code, 3, "i32")) == BUILTIN_OPS.index(op):
            position = r.field(code, 2)
            assert position is not None, f"{op} has the default version 1: no field to change"
            data = bytearray(content)
            struct.pack_into("<i", data, position, version)
            return bytes(data)
    raise AssertionError(f"no {op} in the model")


def test_int8_resnet20_passes_the_edgetpu_contract():
    report = check(fixture("edgetpu_resnet20.tflite"), "edgetpu", compiler=False)
    assert report.ok and not fallbacks(report), report.lines()
    assert {op["status"].split(" (")[0] for op in report.ops} == {"Edge TPU"}
    names = {(op["name"], op["version"]) for op in report.ops}
    assert ("CONV_2D", 3) in names and ("QUANTIZE", 1) in names and len(report.ops) == 39
    assert 250_000 < report.parameter_bytes < 300_000  # 0.27M weights, int8 (+ int32 biases)
    assert report.extra["edgetpu"]["off_chip_estimate"] == 0


def test_op_version_beyond_the_compiler_table_is_an_error():
    content = with_op_version(open(fixture("edgetpu_resnet20.tflite"), "rb").read(), "CONV_2D", 6)
    report = check(content, "edgetpu")
    assert not report.ok
    assert {f.op.split("#")[0] for f in errors(report)} == {"CONV_2D"} and len(errors(report)) == 19
    assert "version 6" in errors(report)[0].message and "up to version 5" in errors(report)[0].message
    assert check(content, "cpu").ok  # newer runtimes know CONV_2D v6: only the Edge TPU compiler refuses it


def test_flex_op_is_an_error_on_every_target():
    for target in ("cpu", "gpu", "edgetpu"):
        report = check(fixture("flex.tflite"), target, compiler=False)
        flex = [f for f in errors(report) if "SELECT_TF_OPS" in f.message]
        assert len(flex) == 1 and flex[0].op == "FLEX:MatrixDeterminant#0", (target, report.lines())


def test_dynamic_batch_and_float_io():
    report = check(fixture("dynamic.tflite"), "edgetpu", compiler=False)
    messages = [f.message for f in errors(report)]
    assert sum("dynamic shape [-1, 32, 32, 3]" in m for m in messages) == 1
    assert sum("is FLOAT32; int8 or uint8 I/O needed" in m for m in messages) == 2
    assert any("fully 8-bit quantized" in m for m in messages)
    gpu = check(fixture("dynamic.tflite"), "gpu")
    assert gpu.ok and any("static shapes" in f.message for f in fallbacks(gpu))
    floats = check(fixture("float32.tflite"), "edgetpu", compiler=False)
    assert [m for m in (f.message for f in errors(floats)) if "I/O needed" in m] and not floats.ok
    assert not [f for f in errors(floats) if "dynamic" in f.message]  # batch 1: no shape error


def test_cpu_reports_the_ops_xnnpack_leaves_to_the_builtin_kernels():
    report = check(fixture("edgetpu_resnet20.tflite"), "cpu")
    assert report.ok
    left = sorted(f.op.split("#")[0] for f in fallbacks(report))
    # This fixture predates option A's SPACE_TO_DEPTH trace, so it is an earlier file: its shortcuts subsample with
    # 1x1/stride-2 MAX_POOL_2D (XNNPACK refuses 1x1 windows); int8 SOFTMAX; the uint8 <-> int8 QUANTIZE of the Edge
    # TPU's uint8 I/O. (make_check_fixtures.py now makes one without the MAX_POOL_2Ds.)
    assert left == ["MAX_POOL_2D", "MAX_POOL_2D", "QUANTIZE", "QUANTIZE", "SOFTMAX"], report.lines()
    assert not fallbacks(check(fixture("float32.tflite"), "cpu"))


def test_the_report_as_text_and_json():
    report = check(fixture("edgetpu_resnet20.tflite"), "edgetpu", compiler=False)
    text = "\n".join(report.lines())
    assert "CONV_2D" in text and "passes the edgetpu contract" in text
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is True and data["errors"] == 0 and len(data["ops"]) == 39


# ---- the compiler's log ---------------------------------------------------------------------------------------


def test_parse_a_successful_compilation():
    log = parse_compiler_log(open(os.path.join(LOGS, "compiled_16.txt")).read())
    assert log["version"] == "16.0.384591198" and log["compiled"] and not log["errors"]
    assert log["on_chip_used"] == int(604.5 * 1024) and log["off_chip"] == int(round(3.45 * (1 << 20)))
    assert log["subgraphs"] == 1 and log["operations"] == 50


def test_parse_an_operator_table():
    log = parse_compiler_log(open(os.path.join(LOGS, "partial_15.txt")).read())
    assert log["tpu_ops"] == 2 and log["cpu_ops"] == 153 and len(log["rows"]) == 10
    assert log["rows"][0] == {"op": "TRANSPOSE", "count": 70, "status": "Operation not supported"}
    assert sum(r["count"] for r in log["rows"]) == 155
    assert log["rows"][-2]["status"].startswith("Operation is otherwise supported")


def test_parse_an_op_version_rejection():
    log = parse_compiler_log(open(os.path.join(LOGS, "op_version_16.txt")).read())
    assert not log["compiled"] and log["rejected_ops"] == [{"op": "TRANSPOSE_CONV", "version": 4}]
    assert log["invalid"] == "model_full_integer_quant.tflite" and "Registration failed." in log["errors"]


@pytest.mark.parametrize("name, ok", [("compiled_16.txt", True), ("op_version_16.txt", False)])
def test_check_runs_the_compiler_on_path(tmp_path, name, ok):
    compiler = tmp_path / "edgetpu_compiler"  # a stand-in that prints a real compiler's output
    compiler.write_text(f"#!/bin/sh\ncat '{os.path.join(LOGS, name)}'\n")
    compiler.chmod(compiler.stat().st_mode | stat.S_IXUSR)
    report = check(fixture("edgetpu_resnet20.tflite"), "edgetpu", compiler=str(compiler))
    assert report.compiler["version"] == "16.0.384591198" and report.ok is ok
    if not ok:
        assert any("rejects TRANSPOSE_CONV version 4" in f.message for f in errors(report))


# ---- the command line and hostile files ------------------------------------------------------------------------


def test_cli_exit_codes():
    done = run_cli("check", fixture("edgetpu_resnet20.tflite"), "--target", "edgetpu", "--no-compiler")
    assert done.returncode == 0 and "passes the edgetpu contract" in done.stdout, done.stderr
    done = run_cli("check", fixture("flex.tflite"), "--target", "cpu", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["errors"] == 1
    assert done.stderr.strip().endswith("fails the cpu contract (1 errors, 0 fallbacks)")
    done = run_cli("check", fixture("edgetpu_resnet20.tflite"), "--target", "cpu", "--strict")
    assert done.returncode == 1 and "falls back" in done.stderr
    assert run_cli("check", fixture("int8.tflite"), "--target", "tpu").returncode == 2


def test_cli_bad_files(tmp_path):
    fifo = tmp_path / "fifo.tflite"
    os.mkfifo(fifo)
    (tmp_path / "text.tflite").write_text("not a model")
    for path in (tmp_path / "missing.tflite", fifo, tmp_path / "text.tflite", tmp_path):
        done = run_cli("check", str(path), "--target", "edgetpu", timeout=30)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"resnet-edge: error: {path}")


def test_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.tflite"
    with open(path, "wb") as f:
        f.truncate(10_000)
    with pytest.raises(ValueError, match="more than a TFLite flatbuffer can address"):
        read_file(path, max_bytes=1000)


def test_corrupted_models_give_value_errors():
    rng = random.Random(14)
    data = open(fixture("edgetpu_resnet20.tflite"), "rb").read()
    outcomes = {"report": 0, "error": 0}
    for i in range(150):
        mutated = bytearray(data)
        if i % 3 == 0:
            mutated = mutated[:rng.randrange(8, len(data))]
        else:
            for _ in range(rng.choice([1, 4, 32])):
                # aim at the flatbuffer's tables (the first and last KB: vtables, offsets, op codes)
                position = rng.randrange(len(data)) if i % 2 else rng.choice(
                    [rng.randrange(2048), len(data) - 1 - rng.randrange(4096)])
                mutated[position] ^= 1 << rng.randrange(8)
        for target in ("cpu", "edgetpu"):
            try:
                check(bytes(mutated), target)
                outcomes["report"] += 1
            except ValueError as error:
                assert "\n" not in str(error)
                outcomes["error"] += 1
    assert outcomes["error"] > 20 and outcomes["report"] > 20, outcomes


def _outside_xnnpack(path: str) -> list[str]:
    """NAME#index of the ops that ai-edge-litert's XNNPACK leaves to the builtin kernels (from the execution plan:
    the ops that produce a tensor a delegate partition or the model output reads, outside any partition)."""
    from ai_edge_litert import interpreter

    it = interpreter.Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    ops = it._get_ops_details()
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    produced = {int(t): op["index"] for op in original for t in op["outputs"]}
    inside = {int(t) for d in delegates for t in d["outputs"]}
    wanted = {int(t) for d in delegates for t in d["inputs"]} | {int(t) for t in it._interpreter.OutputIndices()}
    outside, stack = set(), [t for t in wanted if t in produced and t not in inside]
    while stack:
        index = produced[stack.pop()]
        if index not in outside:
            outside.add(index)
            stack += [int(t) for t in original[index]["inputs"] if int(t) in produced and int(t) not in inside]
    return sorted(f"{original[i]['op_name']}#{i}" for i in outside)


@needs_litert
@pytest.mark.parametrize("name", ["edgetpu_resnet20.tflite", "int8.tflite", "float32.tflite", "dynamic.tflite"])
def test_cpu_fallbacks_match_what_xnnpack_does(name):
    """The static XNNPACK table against the runtime itself, on every fixture."""
    predicted = sorted(f.op for f in fallbacks(check(fixture(name), "cpu")))
    assert predicted == _outside_xnnpack(fixture(name))


def test_a_model_compiled_for_the_edgetpu():
    """edgetpu_compiler's output holds one custom op, edgetpu-custom-op: made here from flex.tflite's custom code."""
    data = bytearray(open(fixture("flex.tflite"), "rb").read())
    r = _Reader(bytes(data))
    code = next(c for c in r.tables(_root(r), 1, "operator_codes") if r.field(c, 1) is not None)
    string = r.deref(r.field(code, 1))
    name = b"edgetpu-custom-op"
    assert r.u32(string) >= len(name)
    struct.pack_into(f"<I{len(name)}sx", data, string, len(name), name)
    compiled = bytes(data)
    tpu = check(compiled, "edgetpu")
    assert [op["status"] for op in tpu.ops if op["name"] == "CUSTOM:edgetpu-custom-op"] == ["Edge TPU (compiled)"]
    assert not [f for f in errors(tpu) if f.op and f.op.startswith("CUSTOM")]
    cpu = check(compiled, "cpu")
    assert [f.message for f in errors(cpu)] == ["compiled for the Edge TPU: runs only with the Edge TPU delegate "
                                                "(--delegate libedgetpu.so.1)"]


def test_flatbuffer_reader_is_public_and_reads_the_graph():
    """:func:`resnet_edge.flatbuffer.read_graph` is the one ``.tflite`` graph reader (keras_resnet's export uses it)."""
    g = read_graph(read_file(fixture("int8.tflite")))
    assert g.subgraphs == 1 and g.ops and len(g.inputs) == 1 and len(g.outputs) == 1
    assert {op.name for op in g.ops} >= {"CONV_2D"} and all(op.version >= 1 for op in g.ops)
    assert g.tensors[g.inputs[0]].type in ("INT8", "UINT8", "FLOAT32") and g.parameter_bytes > 0
    with pytest.raises(ValueError):
        read_graph(b"\x00" * 64)
