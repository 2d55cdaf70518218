"""The cross-check of ``resnet-edge check --target edgetpu``: run ``edgetpu_compiler`` (when it is on PATH) on a copy
of the model in a temporary folder, parse its log (:func:`parse_compiler_log`: version, rejected op versions,
on/off-chip memory, the operator table) and add what it says to the report (:func:`compiler_findings`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

from .report import MB, Finding, Report

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_MEMORY = {"on_chip_used": "On-chip memory used for caching model parameters",
           "on_chip_remaining": "On-chip memory remaining for caching model parameters",
           "off_chip": "Off-chip memory used for streaming uncached model parameters"}
_COUNTS = {"subgraphs": "Number of Edge TPU subgraphs", "operations": "Total number of operations",
           "tpu_ops": "Number of operations that will run on Edge TPU",
           "cpu_ops": "Number of operations that will run on CPU"}
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::\S+)?)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(text: str) -> dict[str, Any]:
    """What ``edgetpu_compiler``'s output says: version, compiled or not, errors (op versions it rejects), memory
    (bytes), counts, and the operator table as rows {op, count, status}. Lines it does not know are ignored."""
    result: dict[str, Any] = {"version": None, "compiled": False, "errors": [], "rejected_ops": [], "rows": []}
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    result["version"] = version.group(1) if version else None
    result["compiled"] = bool(re.search(r"compiled successfully|Compilation succeeded", text))
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ERROR:"):
            result["errors"].append(line[6:].strip())
        rejected = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", line)
        if rejected:
            result["rejected_ops"].append({"op": rejected.group(1), "version": int(rejected.group(2))})
        invalid = re.match(r"Invalid model: (.*)", line)
        if invalid:
            result["invalid"] = invalid.group(1)
    for key, label in _MEMORY.items():
        m = re.search(re.escape(label) + r":\s*([\d.]+)\s*(B|KiB|MiB|GiB)", text)
        if m:
            result[key] = int(round(float(m.group(1)) * _UNITS[m.group(2)]))
    for key, label in _COUNTS.items():
        m = re.search(re.escape(label) + r":\s*(\d+)", text)
        if m:
            result[key] = int(m.group(1))
    table = re.split(r"^\s*Operator\s+Count\s+Status\s*$", text, maxsplit=1, flags=re.M)
    if len(table) == 2:
        for line in table[1].splitlines():
            m = _ROW.match(line.strip())
            if m:
                result["rows"].append({"op": m.group(1), "count": int(m.group(2)), "status": m.group(3)})
    return result


def run_compiler(exe: str, path: str, timeout: float = 180.0) -> dict[str, Any]:
    """Run ``edgetpu_compiler -s`` on a copy of ``path`` in a temporary folder; its parsed log (see
    :func:`parse_compiler_log`) plus ``returncode``."""
    with tempfile.TemporaryDirectory(prefix="resnet-edge-check-") as folder:
        model = os.path.join(folder, "model.tflite")
        shutil.copyfile(path, model)
        try:
            done = subprocess.run([exe, "-s", "-o", folder, model], capture_output=True, text=True,
                                  timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            return {"version": None, "compiled": False, "errors": [f"timed out after {timeout:g} s"],
                    "rejected_ops": [], "rows": [], "returncode": None}
        except OSError as error:
            return {"version": None, "compiled": False, "errors": [f"cannot run {exe}: {error}"],
                    "rejected_ops": [], "rows": [], "returncode": None}
        text = done.stdout + "\n" + done.stderr
        log = os.path.join(folder, "model_edgetpu.log")
        if os.path.isfile(log) and os.path.getsize(log) < MB and "Operator" not in done.stdout:
            with open(log, errors="replace") as f:
                text += "\n" + f.read()
        parsed = parse_compiler_log(text)
        parsed["returncode"] = done.returncode
        return parsed


def compiler_findings(report: Report) -> None:
    log = report.compiler or {}
    for rejected in log.get("rejected_ops", []):
        report.findings.append(Finding("error", f"edgetpu_compiler {log.get('version')}: rejects {rejected['op']} "
                                                f"version {rejected['version']}"))
    if not log.get("compiled"):
        why = "; ".join(log.get("errors", [])[:3]) or log.get("invalid") or f"exit code {log.get('returncode')}"
        report.findings.append(Finding("error", f"edgetpu_compiler {log.get('version')} did not compile it: {why}"))
        return
    for row in log.get("rows", []):
        if row["status"] != "Mapped to Edge TPU":
            report.findings.append(Finding("fallback", f"edgetpu_compiler: {row['count']} x {row['op']}: "
                                                       f"{row['status']}"))
    if log.get("off_chip"):
        report.findings.append(Finding("note", f"edgetpu_compiler: {log['off_chip'] / MB:.2f} MB of parameters "
                                               "stream from host memory (off-chip)"))
