"""The demo's edge rows: the int8 file `keras-resnet demo` already converted, judged for an Arm Ethos-U55-128 NPU by
Vela (:func:`ethos_row`: estimated latency, SRAM, flash, share of ops on the NPU) and run in TensorFlow Lite Micro
(:func:`micro_row`: tensor arena, flash, max LSB difference from LiteRT's reference kernels), through the functions
``keras-resnet convert --target ethos-u55-128|mcu`` uses (:mod:`keras_resnet.export.ethos`,
:mod:`keras_resnet.export.micro`). Nothing is retrained or converted again: the file is the one the demo's table
measured, traced for the cpu target. Without an extra (``ethos-u-vela``, ``tflite-micro``) its row says, in one line,
why it is absent.
"""

from __future__ import annotations

import time

import numpy as np

from keras_resnet.core.errors import ConfigError, ValidationError

ETHOS_TARGET = "ethos-u55-128"
MICRO_SAMPLES = 20  # test images run through TFLM and LiteRT's reference kernels for the LSB comparison


def ethos_row(stem: str, content: bytes) -> dict:
    """Vela's verdict on ``content`` for :data:`ETHOS_TARGET`, or ``absent`` with the reason."""
    from resnet_edge.vela import vela_command

    from keras_resnet.export import ethos

    row: dict = {"format": f"{stem} on {ETHOS_TARGET}", "target": ETHOS_TARGET}
    if vela_command() is None:
        return {**row, "absent": "Vela is not installed (pip install 'keras-resnets[ethos]')"}
    start = time.perf_counter()
    try:
        result = ethos.ethos_check(content, ETHOS_TARGET).as_dict()
    except ValidationError as error:
        return {**row, "absent": str(error)}
    vela = result["vela"]
    total = result["npu_ops"] + result["cpu_op_count"]
    return {**row, "npu_ops": result["npu_ops"], "ops": total, "cpu_ops": result["cpu_ops"],
            "estimated_ms": vela.get("inference_ms"), "sram_kib": vela.get("sram_kib"),
            "flash_kib": (vela.get("on_chip_flash_kib") or 0) + (vela.get("off_chip_flash_kib") or 0),
            "clock_mhz": (vela.get("clock_hz") or 0) / 1e6, "tool": f"Vela {vela.get('version')}",
            "seconds": round(time.perf_counter() - start, 1)}


def micro_row(stem: str, content: bytes, pixels: np.ndarray) -> dict:
    """TFLM's arena for ``content``, its flash (the file) and the max LSB difference from LiteRT's reference kernels on
    ``pixels`` (test images, preprocessed as the file's metadata says), or ``absent`` with the reason."""
    from resnet_edge.flatbuffer import read_graph
    from resnet_edge.metadata import read_metadata
    from resnet_edge.micro import resolver_registrations

    from keras_resnet.export import micro
    from keras_resnet.spec.conversion import ConvertSpec

    row: dict = {"format": f"{stem} on mcu", "target": "mcu"}
    try:
        micro.tflm()
    except ConfigError:
        return {**row, "absent": "tflite-micro is not installed (pip install 'keras-resnets[micro]')"}
    start = time.perf_counter()
    info = (read_metadata(content) or {}).get("input", {})
    mean, std = np.asarray(info.get("mean", 0.0), np.float32), np.asarray(info.get("std", 1.0), np.float32)
    try:
        graph = read_graph(content)
        resolver = resolver_registrations(graph)  # ValueError naming an op TFLM has no kernel for
        result = micro.measure(content, (np.asarray(pixels, np.float32) - mean) / std, ConvertSpec(), resolver)
    except (ValueError, ValidationError) as error:
        return {**row, "absent": str(error)}
    # The demo's files are traced for the cpu target: a dynamic batch in the signature, which the mcu contract
    # (convert --target mcu) refuses; TFLM itself allocates the stored shape, batch 1.
    dynamic = any(-1 in graph.tensors[i].signature for i in graph.inputs)
    return {**row, "arena_bytes": result.arena_bytes, "flash_bytes": result.flash_bytes,
            "max_lsb_diff": result.max_lsb_diff, "samples": result.samples, "tool": result.runtime,
            "dynamic_batch": dynamic, "seconds": round(time.perf_counter() - start, 1)}


def edge_rows(stem: str, path: str, pixels: np.ndarray) -> list[dict]:
    """The Ethos-U55-128 and mcu rows of the int8 file at ``path`` (``pixels``: test images for TFLM)."""
    with open(path, "rb") as f:
        content = f.read()
    return [ethos_row(stem, content), micro_row(stem, content, pixels[:MICRO_SAMPLES])]


def describe(row: dict) -> str:
    """One line: what the row measured, or why it is absent."""
    if "absent" in row:
        return f"absent: {row['absent']}"
    if row["target"] == "mcu":
        return (f"{row['tool']}: tensor arena {row['arena_bytes'] / 1024:.1f} KiB, flash "
                f"{row['flash_bytes'] / 1024:.1f} KiB, max {row['max_lsb_diff']} LSB from LiteRT's reference kernels on "
                f"{row['samples']} test images" + ("; the file's batch is dynamic (cpu trace: TFLM runs its stored "
                                                  "batch 1; convert --target mcu fixes it)" if row["dynamic_batch"]
                                                  else ""))
    cpu = (f"; on the CPU: {', '.join(row['cpu_ops'])} (the cpu trace; convert --target {ETHOS_TARGET} maps every "
           "op)") if row["cpu_ops"] else ""
    return (f"{row['tool']} estimate at {row['clock_mhz']:g} MHz: {row['estimated_ms']:.2f} ms, "
            f"{row['npu_ops']}/{row['ops']} ops on the NPU ({100 * row['npu_ops'] / max(1, row['ops']):.0f}%), SRAM "
            f"{row['sram_kib']:.1f} KiB, flash {row['flash_kib']:.1f} KiB{cpu}")


def table_lines(rows: list[dict]) -> list[str]:
    """The edge rows as lines of the demo's table (format | accuracy | size (MB) | latency (ms) | speed-up | runtime):
    size is the flash, latency Vela's estimate (no accuracy: not measured on the device), the last column
    :func:`describe`."""
    lines = []
    for r in rows:
        size = ms = ""
        if "absent" not in r:
            size = f"{(r['flash_bytes'] if r['target'] == 'mcu' else r['flash_kib'] * 1024) / 1e6:.3f}"
            ms = "" if r["target"] == "mcu" else f"{r['estimated_ms']:.2f}"
        lines.append(f"| {r['format']} | | {size} | {ms} | | {describe(r)} |")
    return lines
