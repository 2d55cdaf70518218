"""Run a command as if this x86 CPU were an older one: AVX2-only, AVX-512 without VNNI, or without AMX.

int8 speed-ups depend on the instructions XNNPACK finds (VNNI dot products, AMX tiles, or AVX2's 16-bit
multiply-adds), and these machines differ between sessions. This hides the newer features from CPUID so that
XNNPACK (through cpuinfo), oneDNN and numpy choose the kernels they would choose on the older CPU:

    python benchmarks/emulate_isa.py --isa avx2 -- python benchmarks/bench_convert.py --from DIR
    python benchmarks/emulate_isa.py --isa avx2 --show      (what numpy's CPUID probe sees, then exit)

How: ``benchmarks/isa/cpuid_mask.c``, compiled here with ``cc`` and loaded with LD_PRELOAD, makes CPUID fault
(Linux ``arch_prctl(ARCH_SET_CPUID)``, CPUs with the ``cpuid_fault`` flag) and answers it with the bits cleared.
The kernels run on this CPU's cores, so the figures are "ISA X's code paths on this microarchitecture", not a
measurement of another CPU: compare the int8/float32 ratios of one run, and name the real CPU beside them.
``resnet_edge.cpu.cpu_info()`` leaves the hidden features out and lists them under ``cpuid_hidden``
(``RESNET_EDGE_CPUID_HIDDEN``), so every benchmark line says what it ran as.

Levels (``--isa``): ``avx2`` (AVX2 + FMA: Haswell to Zen 3), ``avx512`` (AVX-512 F/CD/BW/DQ/VL: Skylake-SP),
``avx512_vnni`` (Cascade Lake), ``no_amx`` (everything this CPU has but AMX).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "isa", "cpuid_mask.c")

# (CPUID register, bit, /proc/cpuinfo name): leaf 7 subleaf 0 EBX/ECX/EDX ("7.0.ebx") and subleaf 1 EAX/EDX.
FEATURE_BITS = (
    ("7.0.ebx", 16, "avx512f"), ("7.0.ebx", 17, "avx512dq"), ("7.0.ebx", 21, "avx512ifma"),
    ("7.0.ebx", 26, "avx512pf"), ("7.0.ebx", 27, "avx512er"), ("7.0.ebx", 28, "avx512cd"),
    ("7.0.ebx", 30, "avx512bw"), ("7.0.ebx", 31, "avx512vl"),
    ("7.0.ecx", 1, "avx512vbmi"), ("7.0.ecx", 6, "avx512_vbmi2"), ("7.0.ecx", 11, "avx512_vnni"),
    ("7.0.ecx", 12, "avx512_bitalg"), ("7.0.ecx", 14, "avx512_vpopcntdq"),
    ("7.0.edx", 2, "avx512_4vnniw"), ("7.0.edx", 3, "avx512_4fmaps"), ("7.0.edx", 8, "avx512_vp2intersect"),
    ("7.0.edx", 22, "amx_bf16"), ("7.0.edx", 23, "avx512_fp16"), ("7.0.edx", 24, "amx_tile"),
    ("7.0.edx", 25, "amx_int8"),
    ("7.1.eax", 4, "avx_vnni"), ("7.1.eax", 5, "avx512_bf16"), ("7.1.eax", 21, "amx_fp16"),
    ("7.1.eax", 23, "avx_ifma"),
    ("7.1.edx", 4, "avx_vnni_int8"), ("7.1.edx", 5, "avx_ne_convert"), ("7.1.edx", 10, "avx_vnni_int16"),
)
_ALL = {name for _, _, name in FEATURE_BITS}
_SKYLAKE_SP = {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}
KEEP = {  # what each level keeps of the features above
    "avx2": set(),
    "avx512": _SKYLAKE_SP,
    "avx512_vnni": _SKYLAKE_SP | {"avx512_vnni"},
    "no_amx": _ALL - {"amx_bf16", "amx_tile", "amx_int8", "amx_fp16"},
}
REGISTERS = ("7.0.ebx", "7.0.ecx", "7.0.edx", "7.1.eax", "7.1.edx")


def mask_words(isa: str) -> tuple[str, list[str]]:
    """``(KERAS_RESNET_CPUID_MASK, hidden feature names)`` for a level."""
    clear = dict.fromkeys(REGISTERS, 0)
    hidden = []
    for register, bit, name in FEATURE_BITS:
        if name not in KEEP[isa]:
            clear[register] |= 1 << bit
            hidden.append(name)
    return " ".join(f"{clear[r]:x}" for r in REGISTERS), hidden


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build(workdir: str) -> str:
    """Compile cpuid_mask.c into ``workdir``; the .so's path."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        _fail("no C compiler (cc or gcc, or $CC) to build benchmarks/isa/cpuid_mask.c")
    library = os.path.join(workdir, "libcpuid_mask.so")
    # without LD_PRELOAD: inside another emulate_isa run, gcc's cc1 stops with an internal error under the mask
    unmasked = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", library, SOURCE], capture_output=True, text=True,
                          env=unmasked)
    if done.returncode:
        _fail(f"{compiler} could not build {SOURCE}: {done.stderr.strip().splitlines()[-1:]}")
    return library


def environment(isa: str, library: str) -> dict[str, str]:
    words, hidden = mask_words(isa)
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD", "")]))
    env["KERAS_RESNET_CPUID_MASK"] = words
    env["RESNET_EDGE_CPUID_HIDDEN"] = " ".join(hidden)
    return env


def cpu_flags() -> list[str]:
    """The x86 ``flags`` line of /proc/cpuinfo (OSError where it cannot be read)."""
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])


def preflight() -> list[str]:
    """This CPU's /proc/cpuinfo flags; exits with an error where CPUID cannot be masked."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        _fail(f"ISA emulation masks x86 CPUID on Linux; this is {sys.platform} {platform.machine()}")
    try:
        flags = cpu_flags()
    except OSError as error:
        _fail(f"cannot read /proc/cpuinfo: {error.strerror}")
    if "cpuid_fault" not in flags:
        _fail("this CPU or hypervisor cannot make CPUID fault (no 'cpuid_fault' in /proc/cpuinfo), so its CPUID "
              "cannot be masked here")
    return flags


SHOW = ("import numpy as np\n"
        "core = getattr(np, '_core', None) or np.core\n"
        "seen = core._multiarray_umath.__cpu_features__\n"
        "print('numpy sees:', ' '.join(k for k in ('AVX2', 'FMA3', 'AVX512F', 'AVX512BW', 'AVX512VL', 'AVX512VNNI', "
        "'AVX512BF16', 'AVX512FP16', 'AVX512_SPR') if seen.get(k)))\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", choices=sorted(KEEP), required=True)
    parser.add_argument("--show", action="store_true", help="print what numpy's CPUID probe sees and exit")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.show:
        command = [sys.executable, "-c", SHOW]
    if not command:
        parser.error("give a command after --, or --show")
    flags = preflight()
    with tempfile.TemporaryDirectory(prefix="cpuid-mask-") as workdir:
        env = environment(args.isa, build(workdir))
        hidden = [name for name in env["RESNET_EDGE_CPUID_HIDDEN"].split() if name in flags]
        print(f"emulate_isa: running as {args.isa}; CPUID hides {' '.join(hidden) or 'nothing this CPU has'}",
              file=sys.stderr, flush=True)
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
