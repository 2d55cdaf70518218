"""The machine a benchmark ran on: :func:`cpu_info` (model, cores, the CPU features that decide XNNPACK's int8 and
float speed) and :func:`describe_cpu`, the one line benchmark figures print. The one CPU reader of the project:
keras_resnet's benchmarks and ``resnet-edge info``/``benchmark`` use it.
"""

from __future__ import annotations

import os
from typing import Any

# CPU features that decide int8 and float speed in XNNPACK: x86 AVX2/AVX-512, VNNI (int8 dot products: AVX512_VNNI,
# AVX_VNNI), AMX (tile int8/bf16), AVX512_FP16/BF16; Arm NEON (asimd), dot-product (asimddp), i8mm, SVE, bf16.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"model", "cores", "features"}`` of this machine: the model name and those of :data:`CPU_FEATURES` that
    ``/proc/cpuinfo`` lists (x86 ``flags``, Arm ``Features``); ``features`` is None where that file is missing.
    Under ``benchmarks/emulate_isa.py`` the features CPUID hides are left out and listed in ``cpuid_hidden``."""
    import platform

    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", errors="replace") as f:
                cpuinfo = f.read(1 << 20)
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if not model and "CPU implementer" in cpuinfo:
        model = f"Arm (implementer {cpuinfo.split('CPU implementer')[1].split(':')[1].split()[0]})"
    # benchmarks/emulate_isa.py masks CPUID (what XNNPACK reads) but not /proc/cpuinfo: report what the kernels see
    hidden = set(os.environ.get("RESNET_EDGE_CPUID_HIDDEN", "").split()) & flags
    info = {"model": model or platform.processor() or platform.machine(), "machine": platform.machine(),
            "cores": os.cpu_count(), "features": [f for f in CPU_FEATURES if f in flags - hidden] if cpuinfo else None}
    if hidden:
        info["cpuid_hidden"] = sorted(hidden)
    return info


def describe_cpu(cpu: dict[str, Any] | None = None) -> str:
    """One line for a benchmark figure: model, cores, features (and what CPUID hides, under emulation)."""
    cpu = cpu_info() if cpu is None else cpu
    line = f"{cpu['model']}, {cpu['cores']} cores, features {' '.join(cpu['features'] or ['unknown'])}"
    if cpu.get("cpuid_hidden"):
        line += f" (emulated: CPUID hides {' '.join(cpu['cpuid_hidden'])})"
    return line
