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
    # the int8 QAT file on an Ethos-U55 (Vela) and in TFLM, or one line saying which extra is missing
    edge = {r["target"]: r for r in json.loads((out / "results.json").read_text())["edge"]}
    assert set(edge) == {"ethos-u55-128", "mcu"} and "| int8_qat on mcu |" in (out / "results.md").read_text()
    assert "absent" in edge["mcu"] or (edge["mcu"]["max_lsb_diff"] == 0 and edge["mcu"]["arena_bytes"] > 0)
    assert "absent" in edge["ethos-u55-128"] or 0 < edge["ethos-u55-128"]["npu_ops"] <= edge["ethos-u55-128"]["ops"]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG" and (out / "train" / "curves.png").exists()

    again = subprocess.run(args, capture_output=True, text=True, timeout=900, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") == 5  # qat.keras and the four .tflite files

    other = subprocess.run([*args[:-2], "--output", str(out), "--epochs", "11"], capture_output=True, text=True,
                           timeout=300, env=ENV)
    assert other.returncode == 2 and "holds a demo run with other settings (epochs)" in other.stderr
    assert "Traceback" not in other.stderr


def test_demo_edge_rows_say_in_one_line_why_an_extra_is_absent(monkeypatch):
    import numpy as np
    import resnet_edge.vela

    from keras_resnet.core.errors import ConfigError
    from keras_resnet.demo import edge
    from keras_resnet.export import micro

    def not_installed():
        raise ConfigError("no tflite-micro")

    monkeypatch.setattr(resnet_edge.vela, "vela_command", lambda exe=None: None)
    monkeypatch.setattr(micro, "tflm", not_installed)
    rows = [edge.ethos_row("int8_qat", b""), edge.micro_row("int8_qat", b"", np.zeros((1, 32, 32, 3)))]
    lines = edge.table_lines(rows)
    assert "absent: Vela is not installed (pip install 'keras-resnets[ethos]')" in lines[0]
    assert "absent: tflite-micro is not installed (pip install 'keras-resnets[micro]')" in lines[1]
    assert all(line.count("|") == 7 and "\n" not in line for line in lines)  # a row of the demo's 6-column table
