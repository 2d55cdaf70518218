"""The cross-check of ``resnet-edge check --target ethos-u*``: run Arm's Vela compiler (``ethos-u-vela``, when
installed) on a copy of the model in a temporary folder, parse what it prints and its summary CSV
(:func:`parse_vela`: ops on the NPU and the CPU, SRAM and flash/DRAM use, estimated inference time at the system
config's clock) and add what it says to the report (:func:`vela_findings`). :func:`run_vela` also returns the
compiled ``*_vela.tflite`` bytes, which ``keras-resnet convert --target ethos-u*`` writes beside its output.
"""

from __future__ import annotations

import csv
import glob
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from .ethos import on_npu
from .flatbuffer import Graph
from .report import Finding, Report

VELA_TESTED = "5.2.0"  # the version whose table resnet_edge.ethos holds
NAME_BYTES = 200  # resnet_edge.flatbuffer keeps this many bytes of a tensor name: Vela's names are cut alike
_CPU_LINE = re.compile(r"^\s*CPU: (\S+) = (.*) \(outputs \[[^\]]*\]\)\s*$")
_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\s*$")
_COUNT = re.compile(r"^(CPU|NPU) operators = (\d+)")
_SETTING = {"accelerator": "Accelerator configuration", "system_config": "System configuration",
            "memory_mode": "Memory mode"}
# summary CSV column -> our key; memory in KiB, time in s, clock in Hz
_CSV = {"inference_time": "inference_s", "inferences_per_second": "inferences_per_second", "core_clock": "clock_hz",
        "sram_memory_used": "sram_kib", "dram_memory_used": "dram_kib", "on_chip_flash_memory_used":
        "on_chip_flash_kib", "off_chip_flash_memory_used": "off_chip_flash_kib", "cycles_npu": "cycles_npu",
        "cycles_total": "cycles_total", "nn_macs": "macs"}


def vela_command(exe: str | None = None) -> list[str] | None:
    """How to run Vela: ``exe`` when given, else ``python -m ethosu.vela`` of this interpreter when the package is
    installed, else the ``vela`` script beside ``sys.executable`` or on PATH; None when there is none."""
    if exe:
        return [exe]
    try:
        if importlib.util.find_spec("ethosu.vela") is not None:
            return [sys.executable, "-m", "ethosu.vela"]
    except (ImportError, ValueError):
        pass
    beside = os.path.join(os.path.dirname(sys.executable), "vela")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("vela")
    return [found] if found else None


def _cut(name: str) -> str:
    return name.encode("utf-8")[:NAME_BYTES].decode("utf-8", "replace")


def parse_vela(text: str, summary_csv: str = "") -> dict[str, Any]:
    """What Vela's output says: version, accelerator/system/memory configs, NPU and CPU operator counts (Vela's own
    ops, after its graph rewrites), the TFLite ops it left on the CPU (type, output tensor name, reason), and the
    summary CSV's figures (:data:`_CSV`: memory in KiB, ``inference_ms``, ``inferences_per_second``, clock)."""
    result: dict[str, Any] = {"version": None, "compiled": False, "errors": [], "cpu": [], "warnings": []}
    version = re.search(r"^(\d+\.\d+\.\d+)\s*$", text, re.M)
    result["version"] = version.group(1) if version else None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for key, label in _SETTING.items():
            m = re.match(re.escape(label) + r"\s+(\S+)\s*$", line)
            if m:
                result[key] = m.group(1)
        m = _COUNT.match(line)
        if m:
            result[f"{m.group(1).lower()}_operators"] = int(m.group(2))
        m = _CPU_LINE.match(line)
        if m:
            result["cpu"].append({"type": m.group(1), "name": _cut(m.group(2))})
        m = _WARNING.match(line)
        if m:
            reason = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("Reason:") else ""
            result["warnings"].append({"op": m.group(1), "name": _cut(m.group(2)), "reason": reason[7:].strip()})
        if line.startswith("Error:") or line.startswith("ERROR:"):
            result["errors"].append(line.split(":", 1)[1].strip())
    rows = list(csv.DictReader(io.StringIO(summary_csv))) if summary_csv else []
    if rows:
        for column, key in _CSV.items():
            try:
                result[key] = float(rows[0][column])
            except (KeyError, TypeError, ValueError):
                pass
    if "inference_s" in result:
        result["inference_ms"] = result.pop("inference_s") * 1e3
    result["compiled"] = "npu_operators" in result
    return result


def run_vela(command: list[str], content: bytes, accelerator: str, *, timeout: float = 300.0,
             config: tuple[str, ...] = ()) -> tuple[dict[str, Any], bytes | None]:
    """Compile ``content`` with Vela for ``accelerator`` in a temporary folder: (its parsed output, see
    :func:`parse_vela`, plus ``returncode``; the ``*_vela.tflite`` bytes or None). ``config``: extra arguments
    (``--config``, ``--system-config``, ``--memory-mode``); default: Vela's own defaults for the accelerator."""
    with tempfile.TemporaryDirectory(prefix="resnet-edge-vela-") as folder:
        model = os.path.join(folder, "model.tflite")
        with open(model, "wb") as f:
            f.write(content)
        out = os.path.join(folder, "out")
        argv = [*command, model, "--accelerator-config", accelerator, "--output-dir", out, "--show-cpu-operations",
                *config]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace", cwd=folder)
            version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60,
                                     errors="replace").stdout.strip()
        except subprocess.TimeoutExpired:
            return {"compiled": False, "errors": [f"Vela timed out after {timeout:g} s"], "returncode": None}, None
        except OSError as error:
            return {"compiled": False, "errors": [f"cannot run {command[0]}: {error}"], "returncode": None}, None
        summaries = glob.glob(os.path.join(out, "*_summary_*.csv"))
        text = ""
        if summaries:
            with open(summaries[0], errors="replace") as f:
                text = f.read()
        parsed = parse_vela(version + "\n" + done.stdout + "\n" + done.stderr, text)
        parsed["returncode"] = done.returncode
        if done.returncode:
            tail = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()][-3:]
            parsed["compiled"] = False
            parsed["errors"] = parsed["errors"] or tail
        compiled = os.path.join(out, "model_vela.tflite")
        data = None
        if parsed["compiled"] and os.path.isfile(compiled):
            with open(compiled, "rb") as f:
                data = f.read()
        return parsed, data


def vela_statuses(g: Graph, log: dict[str, Any]) -> dict[int, str]:
    """Per TFLite op index, ``NPU (Vela)`` or ``CPU (Vela)``: an op is on the CPU when Vela lists its output tensor
    among its CPU operations."""
    cpu = {entry["name"] for entry in log.get("cpu", [])}
    return {op.index: "CPU (Vela)" if any(g.tensors[t].name in cpu for t in op.outputs if t >= 0) else "NPU (Vela)"
            for op in g.ops}


def summary_line(log: dict[str, Any]) -> str:
    """``Vela 5.2.0, Ethos_U55_128 at 500 MHz (...): 65/65 ops on the NPU, SRAM 50.8 KiB, flash 280.7 KiB, 1.28 ms
    (780 inferences/s)``."""
    npu, cpu = log.get("npu_operators", 0), log.get("cpu_operators", 0)
    memory = [f"SRAM {log.get('sram_kib', 0):.1f} KiB"]
    flash = log.get("on_chip_flash_kib", 0) + log.get("off_chip_flash_kib", 0)
    if flash:
        memory.append(f"flash {flash:.1f} KiB")
    if log.get("dram_kib"):
        memory.append(f"DRAM {log['dram_kib']:.1f} KiB")
    clock = log.get("clock_hz", 0) / 1e6
    head = (f"Vela {log.get('version')}, {log.get('accelerator')} at {clock:g} MHz ({log.get('system_config')}, "
            f"{log.get('memory_mode')}): {npu}/{npu + cpu} Vela ops on the NPU")
    if not npu or not log.get("inference_ms"):
        return head
    return (f"{head}, {', '.join(memory)}, estimated {log['inference_ms']:.3f} ms "
            f"({log.get('inferences_per_second', 0):.0f} inferences/s)")


def vela_findings(report: Report, g: Graph) -> None:
    """Add Vela's verdict to ``report`` (its ``compiler`` log parsed): a failure is an error, each op Vela leaves on
    the CPU a fallback, and each op where the table (:mod:`.ethos`) and Vela disagree a note; ``report.ops`` gain
    Vela's status per op."""
    log = report.compiler or {}
    if not log.get("compiled"):
        why = "; ".join(log.get("errors", [])[:3]) or f"exit code {log.get('returncode')}"
        report.findings.append(Finding("error", f"Vela {log.get('version')} did not compile it: {why}"))
        return
    statuses = vela_statuses(g, log)
    reasons = {w["name"]: w["reason"] for w in log.get("warnings", [])}
    for row in report.ops:
        vela = statuses.get(row["index"], "")
        row["vela"] = vela
        op = g.ops[row["index"]]
        if on_npu(row["status"]) and vela.startswith("CPU"):  # the table missed a constraint: Vela decides
            why = reasons.get(next((g.tensors[t].name for t in op.outputs if t >= 0), "")) or "no reason given"
            report.findings.append(Finding("fallback", f"Vela leaves it on the CPU ({why}); the table said NPU",
                                           op.label))
        elif not on_npu(row["status"]) and vela.startswith("NPU"):
            for f in report.findings:  # the table's fallback for this op: Vela maps it after all
                if f.op == op.label and f.severity == "fallback":
                    f.severity, f.message = "note", f"Vela maps it to the NPU; the table said: {f.message}"
    if log.get("version") != VELA_TESTED:
        report.findings.append(Finding("note", f"Vela {log.get('version')}: the table is Vela {VELA_TESTED}'s"))
    report.extra.setdefault("ethos_u", {}).update(
        checked_with=f"vela {log.get('version')}", npu_ops=sum(s.startswith("NPU") for s in statuses.values()),
        cpu_ops=sum(s.startswith("CPU") for s in statuses.values()))
    report.findings.append(Finding("note", summary_line(log)))
