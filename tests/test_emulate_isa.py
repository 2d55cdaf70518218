"""benchmarks/emulate_isa.py: CPUID masked so that XNNPACK, oneDNN and numpy pick an older CPU's kernels."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
spec = importlib.util.spec_from_file_location("emulate_isa", BENCHMARKS / "emulate_isa.py")
emulate_isa = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emulate_isa)


def _flags() -> set[str]:
    try:
        return set(emulate_isa.cpu_flags())
    except OSError:
        return set()


def test_mask_words():
    words, hidden = emulate_isa.mask_words("no_amx")
    assert hidden == ["amx_bf16", "amx_tile", "amx_int8", "amx_fp16"]
    assert words == f"0 0 {(1 << 22) | (1 << 24) | (1 << 25):x} {1 << 21:x} 0"
    words, hidden = emulate_isa.mask_words("avx512_vnni")
    assert not {"avx512_vnni", "avx512f", "avx512bw"} & set(hidden) and {"amx_int8", "avx_vnni"} <= set(hidden)
    assert int(words.split()[1], 16) & (1 << 11) == 0  # leaf 7 ECX bit 11: AVX512_VNNI kept
    assert set(emulate_isa.mask_words("avx2")[1]) == {name for _, _, name in emulate_isa.FEATURE_BITS}


PROBE = """
import json, sys
sys.path.insert(0, {deploy!r})
import numpy as np
from resnet_edge.cpu import cpu_info
seen = (getattr(np, "_core", None) or np.core)._multiarray_umath.__cpu_features__
print(json.dumps({{"numpy": {{k: bool(seen.get(k)) for k in ("AVX2", "AVX512F", "AVX512VNNI")}}, "cpu": cpu_info()}}))
"""


@pytest.mark.skipif(sys.platform != "linux" or "cpuid_fault" not in _flags() or not shutil.which("cc"),
                    reason="needs Linux x86 with cpuid_fault and a C compiler")
@pytest.mark.skipif(bool(os.environ.get("RESNET_EDGE_CPUID_HIDDEN")),
                    reason="the whole run is under emulate_isa: a nested mask cannot show what the outer one hides")
@pytest.mark.parametrize("isa", ["avx2", "avx512_vnni"])
def test_the_masked_cpuid_is_what_numpy_and_cpu_info_see(isa):
    flags = _flags()
    probe = PROBE.format(deploy=str(BENCHMARKS.parent / "deploy"))
    done = subprocess.run([sys.executable, str(BENCHMARKS / "emulate_isa.py"), "--isa", isa, "--",
                           sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["numpy"] == {"AVX2": "avx2" in flags, "AVX512F": isa != "avx2" and "avx512f" in flags,
                             "AVX512VNNI": isa != "avx2" and "avx512_vnni" in flags}
    features = set(seen["cpu"]["features"])
    assert not features & {"amx_tile", "amx_int8", "avx_vnni"} and ("avx512f" in features) == seen["numpy"]["AVX512F"]
    assert set(seen["cpu"].get("cpuid_hidden", [])) == set(emulate_isa.mask_words(isa)[1]) & flags
    assert f"running as {isa}" in done.stderr


def test_refuses_without_a_command(capsys):
    with pytest.raises(SystemExit):
        emulate_isa.main(["--isa", "avx2"])
    assert "give a command after --" in capsys.readouterr().err
