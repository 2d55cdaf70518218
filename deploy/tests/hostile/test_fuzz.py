"""The committed fuzz corpus (fuzz.py): 150+ hostile .tflite variants through the real command line under an
address-space cap. Not one may crash the caller, hang, escape as a traceback or print non-strict JSON.

Set RESNET_EDGE_FUZZ_REPORT=PATH to write every variant's outcome there as JSON.
"""

from __future__ import annotations

import json
import os

import fuzz


def test_variants_are_many_and_deterministic():
    first = list(fuzz.variants())
    assert len(first) >= 150
    assert [name for name, _ in first] == [name for name, _ in fuzz.variants()]
    assert len({name for name, _ in first}) == len(first)
    kinds = {name.split("-")[1].rstrip("0123456789") for name, _ in first}
    assert {"flip", "truncate", "shape", "type", "buffer", "opcode", "scale", "io", "meta"} <= kinds


def test_fuzz_corpus_has_no_signal_hang_or_traceback(tmp_path):
    report = fuzz.run(str(tmp_path), workers=int(os.environ.get("RESNET_EDGE_FUZZ_WORKERS", "2")))
    counts = report.counts()
    print(f"\n{len(report.outcomes)} variants in {report.seconds:.0f} s: {dict(counts)}")
    if os.environ.get("RESNET_EDGE_FUZZ_REPORT"):
        with open(os.environ["RESNET_EDGE_FUZZ_REPORT"], "w") as f:
            json.dump({"counts": counts, "seconds": report.seconds, "outcomes": report.outcomes}, f, indent=1)
    assert len(report.outcomes) == len(list(fuzz.variants()))
    assert report.bad() == {}, report.bad()
    assert counts["error"] >= 100  # most variants are refused, not run
