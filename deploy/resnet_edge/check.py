"""``resnet-edge check MODEL.tflite --target cpu|gpu|edgetpu|ethos-u55-128|...``: will the model run where it is meant to, and which ops
will fall back? Read from the flatbuffer alone (no TensorFlow, no runtime), bounds-checked like :mod:`.metadata`.

Findings have a severity: ``error`` (the target refuses the model: the compiler rejects it, the runtime cannot
load it), ``fallback`` (an op runs somewhere slower: the CPU instead of the Edge TPU/GPU, the reference kernels
instead of XNNPACK) and ``note``. When ``edgetpu_compiler`` is on PATH, ``--target edgetpu`` also runs it and
adds what its log says (:mod:`.edgetpu_compiler`); when Arm's Vela is installed, ``--target ethos-u*`` compiles the
model with it and adds its verdict and estimates (:mod:`.vela`; the table without Vela: :mod:`.ethos`). The targets' tables and rules are in :mod:`.targets` (``--target
mcu``, TensorFlow Lite Micro: :mod:`.micro`), the report in :mod:`.report`, the graph reader in :mod:`.flatbuffer`.
"""

from __future__ import annotations

import os
import shutil

from .choices import ETHOS_U_TARGETS, TARGETS
from .edgetpu_compiler import compiler_findings, run_compiler
from .ethos import check_ethos
from .flatbuffer import read_file, read_graph
from .micro import check_mcu
from .report import Finding, Report
from .targets import CHECKS


def check(source: str | os.PathLike | bytes, target: str = "cpu", *, compiler: str | None | bool = None,
          timeout: float = 180.0) -> Report:
    """Check a model against a target's contract. ``compiler``: for edgetpu the ``edgetpu_compiler`` to run (None:
    the one on PATH, if any; False: never), for ethos-u* the ``vela`` to run (None: this interpreter's ethos-u-vela
    or a ``vela`` script, if any; False: never; its compiled bytes are kept in ``report.compiled``). Raises ValueError
    for unreadable or malformed files."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    content = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else read_file(source)
    g = read_graph(content)
    report = Report(name, target, parameter_bytes=g.parameter_bytes)
    if target in ETHOS_U_TARGETS:
        status = check_ethos(g, report)
    else:
        status = (check_mcu if target == "mcu" else CHECKS[target])(g, report)
    report.ops = [{"index": op.index, "name": op.name, "version": op.version, "status": status.get(op.index, "")}
                  for op in g.ops]
    if target == "edgetpu" and compiler is not False:
        exe = compiler or shutil.which("edgetpu_compiler")
        if exe and name != "<bytes>":
            report.compiler = run_compiler(exe, name, timeout=timeout)
            compiler_findings(report)
        else:
            report.findings.append(Finding("note", "edgetpu_compiler not on PATH: checked against the compiler "
                                                   "16.0 tables only"))
    elif target in ETHOS_U_TARGETS and compiler is not False:
        from .vela import run_vela, vela_command, vela_findings

        command = vela_command(compiler or None)
        if command:
            report.compiler, report.compiled = run_vela(command, content, target, timeout=max(timeout, 300.0))
            vela_findings(report, g)
        else:
            report.findings.append(Finding("note", "Vela not installed (pip install ethos-u-vela==5.2.0): the NPU "
                                                   "mapping was checked against Vela 5.2's tables only"))
    return report
