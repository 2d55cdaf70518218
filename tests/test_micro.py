"""``keras-resnet convert --target mcu``: TensorFlow Lite Micro runs the file with 0 LSB difference from LiteRT's
reference kernels, the reported arena is the smallest TFLM accepts, budgets refuse what does not fit, and the C++
export compiles (against stub TFLM headers written here: the tflite-micro wheel ships none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from keras_resnet.core.errors import ConfigError, ValidationError
from keras_resnet.export import micro_sources
from keras_resnet.spec.conversion import ConvertSpec

DEPLOY_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "deploy", "tests", "fixtures")


def _compiler() -> str:
    found = shutil.which("c++") or shutil.which("g++")
    if not found:
        pytest.skip("no C++ compiler (c++ or g++) on PATH: apt-get install g++")
    return found


def _stub_tflm(folder) -> None:
    """tensorflow/lite/micro/micro_mutable_op_resolver.h with every registration of resnet_edge.micro.MICRO_OPS."""
    from resnet_edge.micro import MICRO_OPS

    header = folder / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    header.parent.mkdir(parents=True)
    methods = "".join(f"  TfLiteStatus {m}() {{ return Add(); }}\n" for m in sorted(MICRO_OPS.values()))
    header.write_text("#pragma once\ntypedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\n"
                      "namespace tflite {\ntemplate <unsigned int tOpCount>\nclass MicroMutableOpResolver {\n"
                      " public:\n" + methods +
                      "  unsigned int count = 0;\n private:\n"
                      "  TfLiteStatus Add() { return count++ < tOpCount ? kTfLiteOk : kTfLiteError; }\n};\n}\n")


def compile_and_run(folder, expected: bytes, registrations: int) -> None:
    """Compile model_data.cc and a main() that registers the ops, checks the count, the alignment and the arena
    declaration, and writes the array back; the bytes must be the file's."""
    compiler = _compiler()
    _stub_tflm(folder / "stub")
    (folder / "main.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n#include "model_ops.h"\n'
        "alignas(16) static std::uint8_t tensor_arena[kTensorArenaSize];\n"
        "int main() {\n  ModelOpResolver resolver;\n"
        "  if (RegisterModelOps(resolver) != kTfLiteOk) return 1;\n"
        f"  if (resolver.count != {registrations} || kModelOpCount != {registrations}) return 2;\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_model_data) % 16) return 3;\n"
        "  std::fwrite(g_model_data, 1, g_model_data_len, stdout);\n  return tensor_arena[0];\n}\n")
    exe = folder / "model_test"
    # without LD_PRELOAD: under benchmarks/emulate_isa.py (a whole test run as an AVX2 CPU) the CPUID mask is for the
    # kernels under test; gcc's cc1plus stops with an internal compiler error under it
    unmasked = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Werror", "-I", str(folder), "-I", str(folder / "stub"),
                    str(folder / "model_data.cc"), str(folder / "main.cc"), "-o", str(exe)], check=True,
                   capture_output=True, timeout=300, env=unmasked)
    done = subprocess.run([str(exe)], capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == expected


def test_c_sources_compile_and_hold_the_file(tmp_path):
    """The C++ export for a small int8 fixture, compiled and run: fast, no conversion."""
    from resnet_edge.flatbuffer import read_graph
    from resnet_edge.micro import resolver_registrations

    content = open(os.path.join(DEPLOY_FIXTURES, "int8.tflite"), "rb").read()
    resolver = resolver_registrations(read_graph(content))
    paths = micro_sources.write_c_sources(str(tmp_path), content, source="int8.tflite", resolver=resolver,
                                          arena_bytes=8360, force=False)
    assert [os.path.basename(p) for p in paths] == list(micro_sources.FILES)
    ops = (tmp_path / "model_ops.h").read_text()
    assert "tflite::MicroMutableOpResolver<kModelOpCount>" in ops and "resolver.AddConv2D()" in ops
    assert "kTensorArenaSize = 8360" in (tmp_path / "model_data.h").read_text()
    with pytest.raises(Exception, match="--force"):
        micro_sources.check_c_source(str(tmp_path), force=False)
    compile_and_run(tmp_path, content, len(resolver))


def test_arena_search_survives_tflm_crashing_on_a_tiny_arena():
    """tflite-micro crashes (SIGSEGV) instead of refusing an arena too small for its tail allocations (this fixture at
    64 bytes, int8 ResNet-56 at 16 KiB, the search's first probe): probes run in a child process, a crash refuses."""
    pytest.importorskip("tflite_micro", reason="needs tflite-micro: pip install 'keras-resnets[micro]'")
    from keras_resnet.export import micro

    content = open(os.path.join(DEPLOY_FIXTURES, "int8.tflite"), "rb").read()
    assert not micro.allocates(content, 64) and not micro.allocates(content, 256)
    arena = micro.min_arena(content)
    assert micro.allocates(content, arena) and not micro.allocates(content, arena - 1)


def test_mcu_options_need_the_mcu_target():
    with pytest.raises(ConfigError, match="--arena-budget, --c-source need --target mcu"):
        ConvertSpec(arena_budget=64, c_source="src")
    with pytest.raises(ConfigError, match="--flash-budget is in KiB, > 0"):
        ConvertSpec(target="mcu", flash_budget=0)
    ConvertSpec(target="mcu", arena_budget=96.5, flash_budget=320)


def test_flash_budget_names_the_figure():
    from keras_resnet.export.micro import MicroResult, check_flash

    result = MicroResult(arena_bytes=82440, flash_bytes=309040, max_lsb_diff=0, samples=8, runtime="tflite-micro")
    check_flash(result, ConvertSpec(target="mcu", flash_budget=302))
    with pytest.raises(ValidationError, match=r"301\.8 KiB of flash \(309040 bytes\), over --flash-budget 300 KiB"):
        check_flash(result, ConvertSpec(target="mcu", flash_budget=300))


def test_fully_connected_rounding_difference_alone_is_let_through_and_counted(monkeypatch):
    """LiteRT's reference FULLY_CONNECTED rounds acc*(s_in*s_w/s_out) in double precision, TFLM's with the fixed-point
    multiplier: on the int8 fixture (CONV_2D ... MEAN, FULLY_CONNECTED, SOFTMAX) 4 of these 64 random int8 images
    hit a logit near a half step, 1 LSB apart (up to 8 after the SOFTMAX). Each is proven to be that difference alone
    (every earlier op identical, both formulas exact on both runtimes' integers), so the file is accepted with the
    raw maximum and the count; any other difference is refused, naming the first op where they part."""
    pytest.importorskip("tflite_micro", reason="needs tflite-micro: pip install 'keras-resnets[micro]'")
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from keras_resnet.export import micro, micro_diff

    content = open(os.path.join(DEPLOY_FIXTURES, "int8.tflite"), "rb").read()
    arena = micro.min_arena(content)
    quant = micro.interpreter(content, arena).get_input_details(0)["quantization_parameters"]
    images = np.random.default_rng(2).integers(-128, 128, (64, 32, 32, 3)).astype(np.int8)
    prepared = (images.astype(np.float32) - int(quant["zero_points"][0])) * float(quant["scales"][0])
    result = micro.measure(content, prepared, ConvertSpec(target="mcu"), [])
    assert (result.max_lsb_diff, result.fc_rounding_images, result.samples) == (8, 4, 64)
    assert result.metadata()["fc_rounding_images"] == 4 and "4 image(s) with a logit near a half step" in \
        result.lines()[1]
    where, rounding_only = micro_diff.first_difference(content, images[34], arena)
    assert rounding_only and "the first difference is op 4 FULLY_CONNECTED" in where and "up to 1 LSB" in where
    assert "rounds acc*(s_in*s_w/s_out) once in double precision" in where and "fixed-point multiplier" in where
    assert "reproduce the two runtimes' 10 outputs of this op exactly, and 1 of them" in where
    assert micro_diff.first_difference(content, images[0], arena) == ("", False)

    # a reference that differs where no op does (a kernel computing something else): refused, nothing explained
    real = micro._reference_outputs
    monkeypatch.setattr(micro, "_reference_outputs", lambda c, x: real(c, x) + np.int8(1) * (np.arange(len(x)) == 0)[
        :, None].astype(np.int8))
    with pytest.raises(ValidationError) as refused:
        micro.measure(content, prepared, ConvertSpec(target="mcu"), [])
    text = str(refused.value)
    assert "validation images (expected 0)" in text and text.endswith("; nothing written")


# ---- conversions (slow): the int8 ResNet-20 of tests/test_quantize.py, PTQ and QAT ---------------------------------


@pytest.fixture(scope="module")
def tflm():
    pytest.importorskip("tflite_micro", reason="needs tflite-micro: pip install 'keras-resnets[micro]'")
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tensorflow")
    from keras_resnet.export import micro

    return micro


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> str:
    from test_quantize import trained_digits_model

    return trained_digits_model(tmp_path_factory)


def _assert_runs_in_tflm(micro, path: str, report) -> None:
    from keras_resnet.export.metadata import read_metadata

    content = open(path, "rb").read()
    assert report.target == "mcu" and report.io_type == "int8" and report.float_ops == []
    assert report.micro["max_lsb_diff"] == 0 and report.micro["samples"] == report.samples
    arena = report.arena_bytes
    assert micro.allocates(content, arena) and not micro.allocates(content, arena - 16)
    assert not micro.allocates(content, arena - 1)  # byte-exact: the search's minimum
    assert f"Arena allocation total {arena} bytes" in report.micro["allocations"]
    recorded = read_metadata(path)["mcu"]
    assert recorded["arena_bytes"] == arena and recorded["flash_bytes"] == len(content) == report.size_bytes
    assert recorded["resolver"] == report.micro["resolver"] and "AddConv2D" in recorded["resolver"]


@pytest.mark.slow
def test_ptq_resnet20_runs_in_tflm_and_exports_c(tflm, digits_model, tmp_path, capsys):
    from keras_resnet.cli.main import main

    out, src = tmp_path / "ptq.tflite", tmp_path / "src"
    assert main(["convert", digits_model, "-o", str(out), "--target", "mcu", "--calibration-data", "digits",
                 "--calibration-samples", "64", "--validation-samples", "32", "--c-source", str(src),
                 "--json"]) == 0
    text = capsys.readouterr().out
    assert "tensor arena" in text and "max difference 0 LSB" in text and "Arena allocation total" in text
    import json

    report = json.loads(text.strip().splitlines()[-1])
    from types import SimpleNamespace

    _assert_runs_in_tflm(tflm, str(out), SimpleNamespace(**report))
    compile_and_run(src, out.read_bytes(), len(report["micro"]["resolver"]))
    # budgets: one error line naming the figure, nothing written
    refused = tmp_path / "small.tflite"
    code = main(["convert", digits_model, "-o", str(refused), "--target", "mcu", "--calibration-data", "digits",
                 "--calibration-samples", "32", "--validation-samples", "8", "--arena-budget", "64",
                 "--c-source", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "error: the tensor arena TFLM needs is" in err
    assert "over --arena-budget 64 KiB" in err and "nothing written" in err
    assert not refused.exists() and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_qat_resnet20_runs_in_tflm(tflm, digits_model, tmp_path):
    from keras_resnet.data import datasets as data
    from keras_resnet.export.convert import convert
    from keras_resnet.io.model_io import load_model
    from keras_resnet.quant import tfmot_qat as Q

    qat = Q.quantize_model(load_model(digits_model))
    x, _ = data.load("digits", "train")
    Q.calibrate_ranges(qat, x, batches=2)
    path = Q.save_qat_model(qat, str(tmp_path / "qat.h5"))
    out = tmp_path / "qat.tflite"
    report = convert(path, str(out), target="mcu", validation_data="digits", validation_samples=32)
    _assert_runs_in_tflm(tflm, str(out), report)
    print(f"QAT ResNet-20 mcu: arena {report.arena_bytes} B, flash {report.size_bytes} B, "
          f"LSB {report.micro['max_lsb_diff']}", file=sys.stderr)
