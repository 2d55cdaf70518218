"""resnet-edge check --target ethos-u*: Vela 5.2's table (resnet_edge.ethos) and, when installed, Vela itself
(resnet_edge.vela): they must agree, op by op, on every fixture model."""

from __future__ import annotations

import glob
import os

import pytest
from resnet_edge.check import check
from resnet_edge.choices import ETHOS_U_TARGETS
from resnet_edge.ethos import family, on_npu
from resnet_edge.vela import parse_vela, vela_command

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "*.tflite")))
needs_vela = pytest.mark.skipif(vela_command() is None, reason="ethos-u-vela not installed (pip install "
                                                               "'keras-resnets[ethos]')")

STDOUT = """5.2.0
Warning (supported operators) operator: SPACE_TO_DEPTH, ofm: 'r/conv3_block1_0_pad_1/SpaceToDepth'
Reason: Unsupported opType
Network summary for model
Accelerator configuration               Ethos_U55_128
System configuration             Ethos_U55_High_End_Embedded
Memory mode                               Shared_Sram
Accelerator clock                                 500 MHz
Total SRAM used                                 53.56 KiB
CPU operators = 1 (1.2%)
   CPU: Passthrough = r/conv3_block1_0_pad_1/SpaceToDepth (outputs [1, 16, 16, 64])
NPU operators = 83 (98.8%)
"""
CSV = ("core_clock,inferences_per_second,inference_time,sram_memory_used,off_chip_flash_memory_used\n"
       "500000000.0,779.5,0.001282798,53.56,280.69\n")


def test_every_vela_accelerator_config_is_a_target():
    assert {family(t) for t in ETHOS_U_TARGETS} == {"u55", "u85"} and len(ETHOS_U_TARGETS) == 11
    with pytest.raises(ValueError):
        family("cpu")


def test_vela_output_is_parsed():
    log = parse_vela(STDOUT, CSV)
    assert log["version"] == "5.2.0" and log["accelerator"] == "Ethos_U55_128" and log["compiled"]
    assert (log["npu_operators"], log["cpu_operators"]) == (83, 1)
    assert log["cpu"] == [{"type": "Passthrough", "name": "r/conv3_block1_0_pad_1/SpaceToDepth"}]
    assert log["warnings"][0]["op"] == "SPACE_TO_DEPTH" and log["warnings"][0]["reason"] == "Unsupported opType"
    assert log["inference_ms"] == pytest.approx(1.282798) and log["clock_hz"] == 5e8 and log["sram_kib"] == 53.56


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_table_alone_says_so_in_one_line(path):
    report = check(path, "ethos-u55-128", compiler=False)
    assert all(row["status"] for row in report.ops) and report.extra["ethos_u"]["checked_with"] == "tables"


def test_int8_fixture_maps_fully_and_float_stays_on_the_cpu():
    fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
    npu = check(os.path.join(fixtures, "edgetpu_resnet20.tflite"), "ethos-u85-256", compiler=False)
    assert npu.ok and all(on_npu(row["status"]) for row in npu.ops)
    cpu = check(os.path.join(fixtures, "float32.tflite"), "ethos-u55-128", compiler=False)
    assert not any(on_npu(row["status"]) for row in cpu.ops) and cpu.count("fallback") == len(cpu.ops)


def agreement(path: str, target: str) -> list[str]:
    """The ops where the table and Vela disagree (empty: they agree on every op)."""
    report = check(path, target)
    assert report.compiler is not None and report.compiler.get("compiled"), report.compiler
    return [f"{row['name']}#{row['index']}: table {row['status']}, Vela {row['vela']}" for row in report.ops
            if on_npu(row["status"]) != row["vela"].startswith("NPU")]


@needs_vela
@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_table_and_vela_agree_on_every_fixture(path):
    assert agreement(path, "ethos-u55-128") == []


@needs_vela
def test_table_and_vela_agree_on_u65_and_u85():
    path = os.path.join(os.path.dirname(__file__), "fixtures", "edgetpu_resnet20.tflite")
    for target in ("ethos-u65-256", "ethos-u85-256"):
        assert agreement(path, target) == []
    report = check(path, "ethos-u55-128")
    assert report.ok and report.compiled[4:8] == b"TFL3" and report.extra["ethos_u"]["cpu_ops"] == 0
