"""ai-edge-quantizer as a second quantizer (keras_resnet.export.aeq): recipes, per-layer diagnostics, selective precision,
the greedy mixed-precision search, and its errors. The conversions are slow and skip without ai-edge-quantizer;
the error tests run without it (one of them hides it)."""

from __future__ import annotations

import json
import sys

import pytest

from keras_resnet.cli.main import main
from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.conversion import ConvertSpec

slow = pytest.mark.slow


def _run(capsys, *args) -> tuple[int, str]:
    code = main(["convert", *args])
    return code, capsys.readouterr().err


def test_missing_extra_is_one_error_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorflow")
    monkeypatch.setitem(sys.modules, "ai_edge_quantizer", None)  # import fails as if not installed
    code, err = _run(capsys, str(tmp_path / "m.keras"), "-o", str(tmp_path / "m.tflite"), "--quantizer", "aeq")
    assert code == 2 and err.count("\n") == 1
    assert "error: --quantizer aeq needs ai-edge-quantizer" in err and "keras-resnets[aeq]" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_recipe_and_option_mixes_are_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["convert", "m.keras", "-o", str(tmp_path / "m.tflite"), "--quantizer", "aeq", "--recipe", "int4"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "invalid choice: 'int4'" in err
    assert [line for line in err.splitlines() if "error:" in line] == [err.splitlines()[-1]]
    for args, message in [
        (["--recipe", "static_wi8_ai8"], "--recipe needs --quantizer aeq"),
        (["--int16", "stem", "--diagnostics", "d"], "--int16, --diagnostics need --quantizer aeq"),
        (["--quantizer", "aeq", "--quantize", "int8"], "drop --quantize"),
        (["--quantizer", "aeq", "--target", "edgetpu"], "drop --target"),
        (["--quantizer", "aeq", "--io-type", "uint8"], "--io-type uint8"),
        (["--quantizer", "aeq", "--recipe", "dynamic_wi8", "--io-type", "int8"], "--io-type int8"),
        (["--quantizer", "aeq", "--recipe", "dynamic_wi8", "--int16", "stem"], "--int16 needs a static recipe"),
        (["--quantizer", "aeq", "--recipe", "static_wi8_ai16", "--max-accuracy-drop", "1"], "needs --recipe "
                                                                                           "static_wi8_ai8"),
        (["--quantizer", "aeq", "--max-accuracy-drop", "-1"], ">= 0"),
    ]:
        code, err = _run(capsys, "m.keras", "-o", str(tmp_path / "m.tflite"), *args)
        assert code == 2 and err.count("\n") == 1 and message in err, (args, err)
    with pytest.raises(ConfigError, match="aeq recipe must be one of"):
        ConvertSpec(quantizer="aeq", aeq_recipe="int4")
    with pytest.raises(ConfigError, match="layer-name patterns"):
        ConvertSpec(quantizer="aeq", int16="stem")  # a string, not a sequence of patterns
    assert list(tmp_path.iterdir()) == []


# ---- conversions -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_model() -> str:
    pytest.importorskip("ai_edge_quantizer")
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("resnet_edge")
    pytest.importorskip("keras")
    from shared_models import trained_digits_model

    return trained_digits_model()


COMMON = ["--calibration-data", "digits", "--calibration-samples", "64", "--validation-data", "digits",
          "--validation-samples", "100", "--dataset", "digits"]


@slow
@pytest.mark.isa
def test_aeq_conversion_with_diagnostics(digits_model, tmp_path, capsys):
    from keras_resnet.export import metadata
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model
    from keras_resnet.io.model_io import load_model

    out, folder = tmp_path / "aeq.tflite", tmp_path / "diag"
    assert main(["convert", digits_model, "-o", str(out), "--quantizer", "aeq", "--recipe", "static_wi8_ai8",
                 "--diagnostics", str(folder), "--json", *COMMON]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed.splitlines()[-1])
    assert report["quantization"] == "aeq static_wi8_ai8" and report["io_type"] == "int8"
    assert report["agreement"] >= 0.95 and report["tflite_accuracy"] > 0.85 and report["size_ratio"] < 0.35
    # every conv and Add of the float graph is diagnosed, once, worst SNR first
    float_ops = op_summary(convert_model(load_model(digits_model)))[0]
    layers = report["layers"]
    kinds = [row["op"] for row in layers]
    assert kinds.count("CONV_2D") == float_ops["CONV_2D"] == 19 and kinds.count("ADD") == float_ops["ADD"] == 9
    assert len({row["layer"] for row in layers}) == len(layers)
    assert {"conv1_conv", "conv2_block1_add", "conv4_block3_2_conv", "predictions"} <= {r["layer"] for r in layers}
    assert [row["snr_db"] for row in layers] == sorted(row["snr_db"] for row in layers)
    assert all(row["activations"] == "int8" and row["mse"] >= 0 for row in layers)
    assert f"  {layers[0]['layer']}" in printed.split("worst SNR first:")[1].splitlines()[2]  # table, worst first
    saved = json.loads((folder / "diagnostics.json").read_text())
    assert saved["layers"] == layers and saved["recipe"] == "static_wi8_ai8"
    assert (folder / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the converter path's metadata, and resnet-edge runs the file
    meta = metadata.read_metadata(str(out))
    assert meta["quantization"] == "aeq:static_wi8_ai8" and len(meta["labels"]) == 10
    assert meta["normalization_in_model"]["std"][0] > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aeq.tflite", "diag"]
    # nothing overwritten without --force (the diagnostics included)
    code, err = _run(capsys, digits_model, "-o", str(tmp_path / "other.tflite"), "--quantizer", "aeq",
                     "--diagnostics", str(folder), *COMMON)
    assert code == 2 and err.count("\n") == 1 and "--force" in err


@slow
@pytest.mark.isa
@pytest.mark.parametrize("recipe,io_type", [("static_wi8_ai16", None), ("dynamic_wi8", None),
                                            ("weight_only_wi8", None), ("static_wi8_ai8", "float32")])
def test_other_recipes_and_float_io(digits_model, tmp_path, recipe, io_type):
    from keras_resnet.export import convert as C

    report = C.convert(digits_model, str(tmp_path / f"{recipe}.tflite"), quantizer="aeq", aeq_recipe=recipe,
                       io_type=io_type, calibration_data="digits", calibration_samples=32, validation_data="digits",
                       validation_samples=64)
    assert report.recipe == recipe and report.agreement >= 0.95 and report.size_ratio < 0.6
    assert report.io_type == "float32"  # resnet-edge feeds no int16 input: ai16 models keep float32 I/O
    if recipe.startswith("static"):  # integer inside, QUANTIZE/DEQUANTIZE at the float boundaries
        assert report.ops["QUANTIZE"] >= 1 and report.ops["DEQUANTIZE"] >= 1
        assert set(report.float_ops) <= {f"{op}#{i}" for op in ("QUANTIZE", "DEQUANTIZE") for i in range(60)}
    if recipe == "static_wi8_ai16":  # TFLite has no int16 SPACE_TO_DEPTH: option A subsamples by 1x1 max pool
        assert "SPACE_TO_DEPTH" not in report.ops and report.ops["MAX_POOL_2D"] == 2


@slow
def test_selective_precision_and_search(digits_model, tmp_path, capsys, monkeypatch):
    from keras_resnet.export import aeq
    from keras_resnet.export import convert as C

    # --int16 / --keep-float by pattern: the stem's output is int16, the classifier float, the rest int8
    report = C.convert(digits_model, str(tmp_path / "mixed.tflite"), quantizer="aeq", int16=("stem", "block1_add"),
                       keep_float=("classifier",), max_accuracy_drop=100.0, calibration_data="digits",
                       calibration_samples=64, validation_data="digits", validation_samples=100)
    assert report.int16_layers == ["conv1_conv", "conv2_block1_add", "conv3_block1_add", "conv4_block1_add"]
    assert report.float_layers == ["predictions"]
    acts = {row["layer"]: row["activations"] for row in report.layers}
    assert acts["conv1_conv"] == acts["conv3_block1_add"] == "int16" and acts["predictions"] == "float32"
    assert acts["conv2_block1_1_conv"] == "int8"
    names = [row["name"] for row in report.search]
    assert names == ["converter float32", "converter int8", "aeq +4 int16 +1 float"]  # a budget of 100 points
    assert report.search[-1]["within_budget"] is True
    with pytest.raises(ConfigError, match="--keep-float: 'no_such_layer' matches no op"):
        C.convert(digits_model, str(tmp_path / "x.tflite"), quantizer="aeq", keep_float=("no_such_layer",),
                  calibration_data="digits", calibration_samples=8, validation_samples=8)

    # The greedy search on scripted accuracies (this model loses nothing at int8 on digits, so real ones would stop
    # at step 0): aeq steps lose 2.0, 1.5, 0.9, 0.4 points; the budget 0.5 is met at the 4th step, after promoting
    # three ops, one per step (which ones: test_search_reranks_after_each_promotion).
    real, drops, calls = aeq.measure, iter([None, None, 2.0, 1.5, 0.9, 0.4]), []

    def scripted(path, job, threads):
        result, latency = real(path, job, threads)
        drop = next(drops)
        if drop is not None:
            result = {**result, "tflite_accuracy": result["keras_accuracy"] - drop / 100}
        calls.append(path)
        return result, latency

    monkeypatch.setattr(aeq, "measure", scripted)
    out, folder = tmp_path / "search.tflite", tmp_path / "diag"
    assert main(["convert", digits_model, "-o", str(out), "--quantizer", "aeq", "--max-accuracy-drop", "0.5",
                 "--diagnostics", str(folder), *COMMON]) == 0
    printed = capsys.readouterr().out
    assert len(calls) == 6
    saved = json.loads((folder / "diagnostics.json").read_text())
    steps, layers = saved["search"], saved["layers"]
    assert [s["name"] for s in steps] == ["converter float32", "converter int8", "aeq all int8",
                                          "aeq +1 int16 +0 float", "aeq +2 int16 +0 float", "aeq +3 int16 +0 float"]
    aeq_steps = steps[2:]
    assert [s["drop_points"] for s in aeq_steps] == pytest.approx([2.0, 1.5, 0.9, 0.4], abs=1e-6)
    assert [s["within_budget"] for s in aeq_steps] == [False, False, False, True]
    for before, after in zip(aeq_steps, aeq_steps[1:]):  # each step promotes exactly one more op
        assert after["int16"][:len(before["int16"])] == before["int16"] and len(after["int16"]) == len(
            before["int16"]) + 1
    assert aeq_steps[0]["int16"] == [] and aeq_steps[-1]["int16"] == saved["int16_layers"]
    assert all(s["size_bytes"] > 0 and s["latency_ms"] > 0 for s in steps)
    assert steps[0]["drop_points"] == pytest.approx(0.0, abs=1e-9)  # the float32 conversion matches Keras
    acts = {row["layer"]: row["activations"] for row in layers}  # the diagnostics describe the chosen mix
    assert [acts[name] for name in saved["int16_layers"]] == ["int16"] * 3
    table = printed.split("mixed-precision search")[1].splitlines()
    assert "converter int8" in table[3] and " within " in table[7] and table[7].endswith(" dB)") and table[8].startswith("diag")
    assert "2 threads" in table[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diag", "mixed.tflite", "search.tflite"]


@slow
def test_search_reranks_after_each_promotion(digits_model, tmp_path, monkeypatch):
    """Each step promotes the worst-SNR op of the previous step's model: the all-int8 model's first, then that of
    the model with one op promoted (diagnosed again), and the table says which op each step moved."""
    from keras_resnet.export import aeq
    from keras_resnet.export import convert as C

    ranking = []
    real_diagnose = aeq.diagnose

    def recording(*args, **kwargs):
        rows = real_diagnose(*args, **kwargs)
        ranking.append([row["layer"] for row in rows])
        return rows

    real, drops = aeq.measure, iter([None, None, 3.0, 3.0, 0.0])

    def scripted(path, job, threads):
        result, latency = real(path, job, threads)
        drop = next(drops)
        if drop is not None:
            result = {**result, "tflite_accuracy": result["keras_accuracy"] - drop / 100}
        return result, latency

    monkeypatch.setattr(aeq, "diagnose", recording)
    monkeypatch.setattr(aeq, "measure", scripted)
    report = C.convert(digits_model, str(tmp_path / "s.tflite"), quantizer="aeq", max_accuracy_drop=1.0,
                       calibration_data="digits", calibration_samples=64, validation_data="digits",
                       validation_samples=100)
    assert len(ranking) == 3  # all int8; one op promoted; the chosen mix (the report's diagnostics)
    first = ranking[0][0]
    assert report.int16_layers == [first, next(layer for layer in ranking[1] if layer != first)]
    promoted = [row["promoted"] for row in report.search[2:]]
    assert promoted[0] is None and [p.split(" -> ")[0] for p in promoted[1:]] == report.int16_layers
    assert all(p.split(" -> ")[1].startswith("int16 (") and p.endswith(" dB)") for p in promoted[1:])
