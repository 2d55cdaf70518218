"""``keras-resnet convert --target ethos-u55-128`` (and every other Vela accelerator config): the Arm Ethos-U step of
a conversion.

:func:`finish` runs ``resnet-edge check``'s Ethos-U contract on the int8 file: Vela 5.2's table, and Vela itself
when it is installed (``pip install 'keras-resnets[ethos]'``; run as a subprocess in a temporary folder, with a
timeout, by :mod:`resnet_edge.vela`). It refuses the file, naming the ops, when any op would run on the CPU instead of
the NPU (unless ``--allow-cpu-fallback``), and records NPU/CPU ops per op type, SRAM and flash use, and the
estimated inference time in the metadata (``ethos_u``). :func:`write_compiled` writes Vela's compiled file beside the
output as ``X_vela.tflite``. Which graph an Ethos-U gets (option A's subsampling as MAX_POOL_2D: Vela has no
SPACE_TO_DEPTH) is the :class:`~keras_resnet.export.targets.TargetPlan`'s.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from keras_resnet.core.errors import ValidationError
from keras_resnet.core.files import atomic_write, check_output
from keras_resnet.export.metadata import embed_metadata

VELA_TIMEOUT = 600.0  # seconds; ResNet-56 compiles in a few seconds, so this only stops a hung Vela
_FIGURES = ("version", "accelerator", "system_config", "memory_mode", "clock_hz", "npu_operators", "cpu_operators",
            "sram_kib", "on_chip_flash_kib", "off_chip_flash_kib", "dram_kib", "inference_ms", "inferences_per_second",
            "cycles_npu", "cycles_total", "macs")


def vela_path(output: str | os.PathLike) -> str:
    """``X.tflite`` -> ``X_vela.tflite``, where Vela's compiled file goes."""
    return os.fspath(output)[: -len(".tflite")] + "_vela.tflite"


def check_vela_output(output: str | os.PathLike, *, force: bool) -> None:
    """Before any slow work: the compiled file beside ``output`` may be written (OutputError otherwise)."""
    check_output(vela_path(output), force=force)


@dataclass
class EthosResult:
    """What the Ethos-U step found: the TFLite ops per type on the NPU and the CPU, which tool said so (``vela
    5.2.0`` or ``tables``), Vela's figures (empty without Vela) and its compiled file (not in :meth:`as_dict`)."""

    target: str
    checked_with: str
    ops: dict[str, dict[str, int]]  # {"CONV_2D": {"npu": 19, "cpu": 0}, ...}
    cpu_ops: list[str]  # NAME#index of the ops on the CPU
    vela: dict = field(default_factory=dict)
    compiled: bytes | None = field(default=None, repr=False)
    compiled_path: str | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("compiled")
        out["npu_ops"] = sum(v["npu"] for v in self.ops.values())
        out["cpu_op_count"] = len(self.cpu_ops)
        return out

    def lines(self) -> list[str]:
        npu = sum(v["npu"] for v in self.ops.values())
        total = npu + len(self.cpu_ops)
        per_type = ", ".join(f"{name} {v['npu']}" + (f" (+{v['cpu']} CPU)" if v["cpu"] else "")
                             for name, v in sorted(self.ops.items()))
        out = [f"{self.target}: {npu}/{total} ops on the NPU ({per_type})"]
        if self.cpu_ops:
            out.append(f"on the CPU: {', '.join(self.cpu_ops)}")
        v = self.vela
        if v:
            flash = v.get("on_chip_flash_kib", 0) + v.get("off_chip_flash_kib", 0)
            memory = f"SRAM {v.get('sram_kib', 0):.1f} KiB, flash {flash:.1f} KiB"
            if v.get("dram_kib"):
                memory += f", DRAM {v['dram_kib']:.1f} KiB"
            out.append(f"Vela {v.get('version')} ({v.get('accelerator')}, {v.get('system_config')} at "
                       f"{v.get('clock_hz', 0) / 1e6:g} MHz): {memory}; estimated {v.get('inference_ms', 0):.3f} ms, "
                       f"{v.get('inferences_per_second', 0):.0f} inferences/s")
        else:
            out.append("Vela not installed: the NPU mapping was checked against Vela 5.2's tables only "
                       "(pip install 'keras-resnets[ethos]')")
        if self.compiled_path:
            out.append(f"wrote {self.compiled_path} beside it (Vela's compiled file)")
        return out


def ethos_check(content: bytes, target: str, *, vela: bool | str | None = None) -> EthosResult:
    """The Ethos-U contract of the ``.tflite`` ``content`` for ``target``: ``vela`` None runs Vela when installed,
    False never, a path runs that ``vela``. ValidationError when the contract fails (e.g. Vela does not compile it)."""
    from resnet_edge.check import check

    report = check(content, target, compiler=vela, timeout=VELA_TIMEOUT)
    if not report.ok:
        errors = [f.line().strip() for f in report.findings if f.severity == "error"]
        raise ValidationError(f"the {target} contract fails ({'; '.join(errors[:3])}); nothing written")
    ops: dict[str, dict[str, int]] = {}
    cpu = []
    for row in report.ops:
        where = row.get("vela") or row["status"]  # Vela's verdict when it ran, else the table's
        on_npu = where.startswith("NPU")
        entry = ops.setdefault(row["name"], {"npu": 0, "cpu": 0})
        entry["npu" if on_npu else "cpu"] += 1
        if not on_npu:
            cpu.append(f"{row['name']}#{row['index']}")
    log = report.compiler or {}
    figures = {k: log[k] for k in _FIGURES if k in log} if log else {}
    return EthosResult(target=target, checked_with=f"vela {log.get('version')}" if log else "tables", ops=ops,
                       cpu_ops=cpu, vela=figures, compiled=report.compiled)


def finish(content: bytes, meta: dict, target: str, *, allow_cpu_fallback: bool,
           output: str | os.PathLike | None = None) -> tuple[bytes, EthosResult]:
    """:func:`ethos_check` of the converted ``content``; ValidationError naming the CPU ops when there are any and
    ``allow_cpu_fallback`` is False; else (``content`` with ``meta`` plus the result under ``ethos_u`` embedded, the
    result). When Vela compiled it and ``output`` is given, ``compiled_path`` is the file name :func:`write_compiled`
    gives Vela's file beside ``output`` (``X_vela.tflite``, no folder: the metadata travels with the files)."""
    result = ethos_check(content, target)
    if result.cpu_ops and not allow_cpu_fallback:
        raise ValidationError(f"{len(result.cpu_ops)} ops would run on the CPU, not the {target} NPU "
                              f"({result.checked_with}): {', '.join(result.cpu_ops)}; nothing written "
                              "(--allow-cpu-fallback writes it anyway)")
    if result.compiled is not None and output is not None:
        result.compiled_path = os.path.basename(vela_path(output))
    return embed_metadata(content, {**meta, "ethos_u": result.as_dict()}), result


def write_compiled(result: EthosResult, output: str, *, force: bool) -> None:
    """Write Vela's compiled file beside ``output`` (``X_vela.tflite``) atomically; nothing when Vela did not run."""
    if result.compiled is None:
        return
    atomic_write(vela_path(output), result.compiled, force=force)
