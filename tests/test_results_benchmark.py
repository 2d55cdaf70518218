"""benchmarks/results.py and benchmarks/fmnist_gpu.py: the numbers in docs/results.md come from here."""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(BENCHMARKS))  # results.py's sibling modules (fmnist_*.py), as when it runs as a script
results = _module("results")
fmnist_gpu = _module("fmnist_gpu")
import fmnist_engines  # noqa: E402
import fmnist_report  # noqa: E402
import fmnist_runner  # noqa: E402
import fmnist_stats  # noqa: E402
import fmnist_training  # noqa: E402


def test_wilson_interval_matches_the_published_figure():
    lo, hi = fmnist_stats.wilson(9415, 10000)  # ResNet-20's 94.15% on 10,000 test images in docs/results.md
    assert (round(100 * lo, 2), round(100 * hi, 2)) == (93.67, 94.59)
    lo, hi = fmnist_stats.wilson(0, 100)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.03 < hi < 0.04


@pytest.mark.parametrize("flip", [False, True])
def test_gpu_augmentation_is_a_padded_crop(flip):
    rng = np.random.default_rng(3)
    x = rng.integers(1, 255, size=(64, 8, 8, 1), dtype=np.uint8)  # no zeros: padding is recognisable
    out = fmnist_gpu.augment(x, np.random.default_rng(0), pad=2, flip=flip)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    mirrored = 0
    for i in range(len(x)):
        windows = [padded[i, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        if any(np.array_equal(out[i], w) for w in windows):
            continue
        assert flip and any(np.array_equal(out[i], w[:, ::-1]) for w in windows), i
        mirrored += 1
    if flip:
        assert 10 < mirrored < 54  # about half, and not all: a random flip, not a constant one
    assert not all(np.array_equal(out[i], x[i]) for i in range(len(x)))  # random offsets, not the identity


def _run(model: str, acc: float, train_acc: float, epochs: int = 2) -> dict:
    history = [{"epoch": e + 1, "accuracy": train_acc - 0.1 * (epochs - 1 - e), "val_accuracy": acc,
                "test_accuracy": acc} for e in range(epochs)]
    return {"model": model, "parameters": 1000, "train_images": 1280, "test_images": 10000, "epochs": epochs,
            "steps": epochs * 10, "recipe": {"batch_size": 128, "seed": 0}, "history": history, "test_accuracy": acc,
            "last_test_accuracy": acc, "val_accuracy": acc, "images_per_s": 10.0, "train_time_s": 60.0,
            "wall_s": 61.0, "device": "GPU", "keras": "3", "jax": "0"}


def test_report_uses_accelerator_runs_and_computes_the_control(tmp_path):
    runs = {f"degradation-{kind}{depth}": _run(f"{kind}{depth}", 0.9, 0.95 if depth == 20 else 0.85)
            for kind, depth in fmnist_training.DEGRADATION}
    runs["resnet20"] = _run("resnet20", 0.9200, 0.95)  # outside the CPU run's interval below
    accel = tmp_path / "all.json"
    accel.write_text(json.dumps({"runs": runs, "gpu": "Test GPU", "wall_s": 100, "command": "python x"}))
    cpu_runs = tmp_path / "runs"
    cpu_runs.mkdir()
    cpu = {**_run("resnet20", 0.9415, 0.95), "command": "keras-resnet train ..."}
    (cpu_runs / "results.json").write_text(json.dumps({"runs": {"resnet20": cpu}}))
    noflip = {**_run("resnet20", 0.8463, 0.87), "flip": False}
    flip_file = tmp_path / "flip.json"
    flip_file.write_text(json.dumps({"runs": {"noflip-seed0": noflip}, "wall_s": [60], "command": "python y"}))
    args = argparse.Namespace(runs=str(cpu_runs), cli="keras-resnet", data_dir=None, dry_run=False,
                              accelerator_results=str(accel), flip_results=str(flip_file), d_limit=10000)
    runner = fmnist_runner.Runner(args)
    out = tmp_path / "results.md"
    fmnist_report.report(runner, str(out))
    text = out.read_text()
    assert "92.00% against the CPU run's 94.15%, outside that run's 95% interval (93.67–94.59%)" in text
    assert "plain +10.0 points" in text  # final train error 15% at depth 56 against 5% at depth 20
    assert "All 1,280 training images" in text
    assert "| 0 | 92.00% | 5.00% | 84.63% | 13.00% |" in text  # the control run is seed 0 with flips
    assert "Runs that stalled below 90%: 0 with flips, 1 without" in text
    figure = tmp_path / "fig.png"
    fmnist_training.degradation_figure(runner, str(figure))
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_difference_counts_only_the_discordant_images():
    y = np.zeros(10000, np.int64)
    a = y.copy()
    b = y.copy()
    b[:30] = 1  # b misses 30 images that a gets right
    a[30:40] = 1  # a misses 10 that b gets right
    d, lo, hi = fmnist_stats.paired_difference(a, b, y)
    assert d == pytest.approx(0.002)
    assert lo < d < hi
    # se = sqrt(40 - 20**2 / 10000) / 10000: far tighter than two independent Wilson intervals (about 0.5 pt each)
    assert hi - lo == pytest.approx(2 * 1.959964 * np.sqrt(40 - 400 / 10000) / 10000)
    assert fmnist_stats.paired_difference(a, a, y) == (0.0, 0.0, 0.0)


def test_engines_section_checks_issue_12s_targets(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    y = np.arange(10000) % 10
    np.savez(runs / "fashion-mnist-test.npz", x=np.zeros((1, 1)), y=y)

    def row(mode: str, wrong: int, agreement: float = 1.0) -> dict:
        predictions = y.copy()
        predictions[:wrong] = (y[:wrong] + 1) % 10
        path = runs / (mode.replace(" ", "_") + ".npy")
        np.save(path, predictions.astype(np.int8))
        return {"accuracy": 1 - wrong / 10000, "images": 10000, "predictions": str(path),
                "agreement_with_source": agreement, "size_bytes": 300000}

    rows = {"float32": row("float32", 600), "PTQ int8": row("ptq", 640), "tfmot QAT int8": row("tfmot", 610),
            "native QAT int8 (seed 0, JAX)": row("n0", 620, 0.998),
            "native QAT int8 (seed 1, JAX)": row("n1", 660, 0.990)}
    # the first engine's rows, kept as superseded, and the accelerator's summary of both freeze schedules
    superseded = {"native QAT int8 (seed 0, JAX)": {**row("old", 700), "keras": {"qat_test_accuracy": 0.931}}}
    (runs / "results.json").write_text(json.dumps({"engines": {"resnet20": {
        "rows": rows, "superseded": {"rows": superseded}}}}))
    engines = runs / "engines"
    engines.mkdir()
    summary = {"runs": {f"q{k}": {"kind": "native-qat", "source": "resnet20", "freeze": freeze,
                                   "qat_test_accuracy": accuracy}
                        for k, (freeze, accuracy) in enumerate([("half", 0.930), ("end", 0.940), ("end", 0.942)])}}
    (engines / "qat-end.json").write_text(json.dumps(summary))
    (engines / "qat-end-0.json").write_text(json.dumps({"kind": "native-qat"}))  # one run's own JSON: no "runs"
    args = argparse.Namespace(runs=str(runs), cli="keras-resnet", data_dir=None, dry_run=False,
                              accelerator_results=None, flip_results=None, d_limit=10000,
                              engines_dir=str(engines))
    text = "\n".join(fmnist_engines.engines_section(fmnist_runner.Runner(args)))
    assert "| resnet20 | 93.10% (1) | 93.00% (1) | 93.00% (1) | 94.10% (2) |" in text
    # native mean 93.60%: -0.40 pt against float (misses), -0.30 against tfmot (misses); agreement 99.0% misses
    assert "native QAT mean of 2 runs 93.60%: -0.40 pt against float (misses >= float - 0.3)" in text
    assert "-0.30 pt against tfmot (misses >= tfmot - 0.2)" in text
    assert "lowest Keras-vs-.tflite agreement 99.00% (misses 99.5%)" in text
    assert "| resnet20 | native QAT int8 (seed 0, JAX) | 93.80% |" in text
    assert "| -0.20 (" in text and "| -0.10 (" in text  # seed 0 against float, then against tfmot


def test_dry_run_prints_the_product_commands(tmp_path, capsys):
    """results.py's stages are wired: a dry run prints the keras-resnet commands and the throughput child, runs none."""
    assert results.main(["--stage", "c", "--stage", "e", "--dry-run", "--runs", str(tmp_path), "--cli", "keras-resnet",
                         "--e-models", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "keras-resnet convert" in out and "--quantize int8" in out and "keras-resnet evaluate" in out
    assert "throughput resnet20" in out and not list(tmp_path.iterdir())
