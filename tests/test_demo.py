"""`keras-resnet demo`, the README's main job, end to end with small settings; a rerun reuses its stages."""

import json
import subprocess

import pytest
from training_helpers import ENV, command


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns_without_cleanup(tmp_path):
    # 10 epochs: after 3 the net is barely trained, its top-2 scores nearly tie and int8 PTQ flips enough
    # of them (agreement 0.72) that the conversion's validation rightly refuses the file.
    out = tmp_path / "demo"
    args = [*command(), "demo", "--epochs", "10", "--qat-epochs", "1", "--runs", "5", "--output", str(out)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=900, env=ENV)
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert stage in first.stdout
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["format"] for r in rows] == ["keras float32", "float32", "float16", "int8_ptq", "int8_qat"]
    for row in rows[1:]:
        assert 0 <= row["accuracy"] <= 1 and row["size_mb"] > 0 and row["median_ms"] > 0
        assert row["runtime"].startswith(("litert", "tflite-runtime"))
    by = {r["format"]: r for r in rows}
    assert by["int8_qat"]["size_mb"] < 0.5 * by["float32"]["size_mb"] and by["float32"]["speedup"] == 1.0
    assert "| format | accuracy | size (MB) |" in (out / "results.md").read_text()
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG" and (out / "train" / "curves.png").exists()

    again = subprocess.run(args, capture_output=True, text=True, timeout=900, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") == 5  # qat.keras and the four .tflite files

    other = subprocess.run([*args[:-2], "--output", str(out), "--epochs", "11"], capture_output=True, text=True,
                           timeout=300, env=ENV)
    assert other.returncode == 2 and "holds a demo run with other settings (epochs)" in other.stderr
    assert "Traceback" not in other.stderr
