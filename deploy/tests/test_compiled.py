"""The CompiledModel-first runner: which API runs, with how many threads, and that it agrees with the Interpreter."""

import json

import numpy as np
import pytest
from conftest import fixture, needs_litert, run_cli
from resnet_edge import Classifier, cpu, loader, open_model


@needs_litert
@pytest.mark.parametrize("name", ["float32.tflite", "int8.tflite", "dynamic.tflite"])
def test_compiled_model_is_the_default_and_agrees_with_the_interpreter(name, reference):
    compiled = Classifier(fixture(name), threads=2)
    interpreter = Classifier(fixture(name), threads=2, api="interpreter")
    assert compiled.info["path"] == "compiled_model:cpu" and compiled.info["threads"] == 2
    assert compiled.info["api"] == "compiled_model" and isinstance(compiled.info["fully_accelerated"], bool)
    assert interpreter.info["path"] == "interpreter:xnnpack" and "fully_accelerated" not in interpreter.info
    a, b = compiled.predict_arrays(reference["images"]), interpreter.predict_arrays(reference["images"])
    assert a.shape == b.shape == (len(reference["images"]), 10)
    # the same XNNPACK kernels behind both APIs: float identical to rounding, int8 bit-identical
    assert np.abs(a - b).max() <= (1e-6 if "int8" not in name else 0.0)
    assert (a.argmax(-1) == reference["probabilities"].argmax(-1)).mean() >= 0.9


@needs_litert
def test_dynamic_batch_resizes_the_compiled_model(reference):
    clf = Classifier(fixture("dynamic.tflite"), threads=1, batch_size=5)
    assert clf.info["path"] == "compiled_model:cpu"
    scores = clf.predict_arrays(reference["images"][:7])  # batches of 5 and 2
    single = np.stack([clf.predict_arrays(image)[0] for image in reference["images"][:7]])
    assert np.abs(scores - single).max() < 1e-5


@needs_litert
def test_xnnpack_coverage_is_reported():
    # the int8 SOFTMAX runs on the builtin kernels (see `resnet-edge check`): not fully accelerated
    assert Classifier(fixture("int8.tflite"), threads=1).info["fully_accelerated"] is False
    assert Classifier(fixture("float32.tflite"), threads=1).info["fully_accelerated"] is True


@needs_litert
def test_interpreter_takes_over_when_compiled_model_fails(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("ERROR: [compiled_model.cc:1] cannot compile this")

    monkeypatch.setattr(loader, "compiled_engine", refuse)
    engine = open_model(fixture("float32.tflite"), threads=1, safe=False)
    assert engine.info["path"] == "interpreter:xnnpack" and "cannot compile this" in engine.info["fallback"]
    warnings = []
    open_model(fixture("float32.tflite"), threads=1, safe=False, api="compiled", warn=warnings.append)
    assert len(warnings) == 1 and "running the Interpreter" in warnings[0]


def test_unknown_api():
    with pytest.raises(ValueError, match="unknown api"):
        open_model(fixture("float32.tflite"), api="fast")


def test_benchmark_json_names_the_path_and_the_cpu():
    done = run_cli("benchmark", fixture("int8.tflite"), "--runs", "3", "--threads", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert "DestroyAccelerator" not in done.stderr and "LiteRT environment" not in done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["threads"] == 2 and report["path"].split(":")[0] in ("compiled_model", "interpreter")
    assert report["runtime"] and report["runtime_version"] and report["cpu"]["model"]
    assert isinstance(report["cpu"]["features"], list)


X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx_vnni amx_tile amx_int8 amx_bf16
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_cpu_features(monkeypatch):
    monkeypatch.delenv("RESNET_EDGE_CPUID_HIDDEN", raising=False)  # this test may itself run under emulate_isa
    x86 = cpu.cpu_info(X86)
    assert x86["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert x86["features"] == ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                               "amx_tile", "amx_int8", "amx_bf16"]
    arm = cpu.cpu_info(ARM)
    assert arm["features"] == ["asimd", "asimddp"] and arm["model"] == "Arm (implementer 0x41)"
    assert cpu.cpu_info("")["features"] is None


def test_cpu_features_under_isa_emulation(monkeypatch):
    """benchmarks/emulate_isa.py hides features from CPUID, not from /proc/cpuinfo: the record says what ran."""
    monkeypatch.setenv("RESNET_EDGE_CPUID_HIDDEN", "avx512f avx512bw avx512vl avx512_vnni avx_vnni amx_tile amx_int8 "
                                                   "amx_bf16 avx512_fp16")
    x86 = cpu.cpu_info(X86)
    assert x86["features"] == ["avx2", "fma"]
    assert x86["cpuid_hidden"] == ["amx_bf16", "amx_int8", "amx_tile", "avx512_vnni", "avx512bw", "avx512f",
                                   "avx512vl", "avx_vnni"]  # what this CPU has of them
    assert cpu.describe_cpu(x86).endswith("features avx2 fma (emulated: CPUID hides amx_bf16 amx_int8 amx_tile "
                                        "avx512_vnni avx512bw avx512f avx512vl avx_vnni)")
    assert "cpuid_hidden" not in cpu.cpu_info(ARM)
