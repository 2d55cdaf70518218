"""Fashion-MNIST results, ResNet-8 (issue 22): the MLPerf Tiny reference model trained by ``keras-resnet train``, its
float and int8 accuracy on the 10,000 test images, Vela's estimates for Ethos-U55-128/U65-256/U85-256 and TFLite
Micro's arena and flash, beside the published reference figures; its section of docs/results.md.

The figures are measured by the CLI commands recorded in ``benchmarks/fmnist_resnet8.json`` (each command's
``--json`` line, copied into that file with its wall time); this module only renders them.
"""

from __future__ import annotations

import json
import os

from fmnist_stats import ci, pct

RESNET8_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fmnist_resnet8.json")


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return {}


def _kib(n) -> str:
    return "–" if n is None else f"{n / 1024:.1f} KiB"


def resnet8_section(path: str = RESNET8_RESULTS) -> list[str]:
    """docs/results.md's ResNet-8 section from ``path`` (nothing when the file is missing)."""
    d = _load(path)
    if not d:
        return []
    acc, n = d["accuracy"], d["test_images"]
    out = ["## ResNet-8, the MLPerf Tiny reference model, on edge targets (issue 22)", "",
           f"`--model resnet8` ({d['parameters']:,} parameters with Fashion-MNIST's one input channel; 78,666 with "
           "three) trained by `keras-resnet train` on the full training split, then converted by `keras-resnet "
           "convert` and every .tflite file run on the 10,000 test images by `keras-resnet evaluate` (resnet-edge, "
           f"LiteRT). Recipe: {d['recipe']}. Machine: {d['machine']}.", "",
           "| model | test accuracy | 95% CI |", "|---|---|---|"]
    for label, key in (("Keras float (`best.keras`)", "keras"), ("float32 .tflite", "float32"),
                       ("int8 PTQ .tflite (1,000 calibration images)", "ptq_int8"),
                       (f"int8 QAT .tflite (native Keras QAT, {d.get('qat_epochs', 1)} epoch)", "qat_int8")):
        if acc.get(key) is not None:
            out.append(f"| {label} | **{pct(acc[key])}** | {ci(acc[key], n)} |")
    out += ["", d["accuracy_note"], "",
            "Edge targets, int8 ResNet-8 (Fashion-MNIST, 32×32×1) against the published references (CIFAR-10, "
            "32×32×3). Vela 5.2.0's estimates with its default system config and memory mode for each accelerator "
            "(named in the table; the weights sit in flash with Shared_Sram, in DRAM with Dedicated_Sram); TFLM: the "
            "smallest tensor arena its planner accepts, and the file's size. \"ops\": the file's TFLite ops on the "
            "NPU (Vela's own op count after its rewrites in brackets).", "",
            "| model | target | ops on the NPU | SRAM / arena | weights (flash or DRAM) | estimated time | "
            "inferences/s |",
            "|---|---|---|---|---|---|---|"]
    for row in d["edge"]:
        if row["target"] == "mcu":
            out.append(f"| {row['model']} | TFLM (`--target mcu`, {row['runtime']}) | – | "
                       f"{_kib(row['arena_bytes'])} arena ({row['arena_bytes']:,} bytes) | "
                       f"{_kib(row['flash_bytes'])} flash ({row['flash_bytes']:,} bytes) | – | – |")
            continue
        v = row["vela"]
        flash = v.get("on_chip_flash_kib", 0) + v.get("off_chip_flash_kib", 0)
        weights = " + ".join([f"{flash:.1f} KiB flash"] * bool(flash) + [f"{v['dram_kib']:.1f} KiB DRAM"] *
                             bool(v.get("dram_kib"))) or "–"
        out.append(f"| {row['model']} | {row['target']} ({v['system_config']}, {v['memory_mode']}, "
                   f"{v['clock_hz'] / 1e6:g} MHz) | {row['npu_ops']}/{row['npu_ops'] + row['cpu_ops']} "
                   f"({v['npu_operators']}/{v['npu_operators'] + v['cpu_operators']}) | {v['sram_kib']:.1f} KiB SRAM | "
                   f"{weights} | {v['inference_ms']:.3f} ms | {v['inferences_per_second']:.0f} |")
    for row in d["references"]:
        out.append(f"| {row['model']} | {row['target']} | {row['ops']} | {row['memory']} | {row['flash']} | "
                   f"{row['time']} | {row['rate']} |")
    for note in d["edge_notes"]:
        out += ["", note]
    out += ["", "Commands (wall time on the shared machine):", ""]
    out += [f"    {c['command']}    # {c['seconds']:.0f} s" for c in d["commands"]]
    out.append("")
    return out
