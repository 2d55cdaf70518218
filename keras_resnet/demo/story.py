"""`keras-resnet demo`: the whole story in one command, offline, in a few minutes on two cores.

Trains a CIFAR-style ResNet-20 on the bundled digits, fine-tunes a QAT copy, converts float32,
float16, int8 (post-training) and int8 (QAT) TFLite models, evaluates each with the on-device runner
(deploy/, no TensorFlow in the loop) and prints one table, closed by the int8 QAT file's rows for an Arm
Ethos-U55-128 NPU (Vela's estimate) and a microcontroller (TensorFlow Lite Micro's arena) when the extras
``ethos-u-vela`` and ``tflite-micro`` are installed (keras_resnet.demo.edge). Everything lands in ``--output``::

    train/ (best.keras, curves.png, ...)  qat.keras  float32.tflite  float16.tflite  int8_ptq.tflite
    int8_qat.tflite  results.md  results.json  comparison.png

Each stage leaves a finished file behind; a rerun (after Ctrl-C, a kill, or with more epochs for
the other stages) reuses what is finished and redoes the rest, so no manual cleanup is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from keras_resnet.core.errors import ConfigError, OutputError
from keras_resnet.core.files import atomic_write, save_figure
from keras_resnet.demo.edge import describe, edge_rows, table_lines
from keras_resnet.io.model_io import load_model
from keras_resnet.spec.commands import DemoSettings, QATSpec
from keras_resnet.spec.recipe import Recipe

FORMATS = (  # (file stem, quantization, from the QAT model)
    ("float32", "float32", False),
    ("float16", "float16", False),
    ("int8_ptq", "int8", False),
    ("int8_qat", "int8", True),
)
# Why cosine + label smoothing 0.1 at batch 64 for 12 epochs: measured on digits (2 cores, Sapphire Rapids), 12 such
# epochs reach 98.89% test accuracy in 70 s of training, the accuracy 30 epochs of the paper's step schedule at batch
# 128 reached (98.33%, docs/training.md) in 260 s; the whole demo then takes 142 s (train 78, QAT 26, convert 35).
DEMO_SCHEDULE = {"schedule": "cosine", "label_smoothing": 0.1}
EDGE_FILE = "int8_qat"  # the file whose Ethos-U55 (Vela) and microcontroller (TFLM) rows close the table


def _stage(number: int, text: str) -> None:
    print(f"\n[{number}/5] {text}", flush=True)


def recipe_for(settings: DemoSettings) -> Recipe:
    """The training recipe the demo uses."""
    return Recipe(model=settings.model, dataset=settings.dataset, data_dir=settings.data_dir, epochs=settings.epochs,
                  batch_size=settings.batch_size, **DEMO_SCHEDULE)


def run(settings: DemoSettings) -> list[dict]:
    """Run the demo; returns the table rows (also written to results.json / results.md)."""
    from keras_resnet.data import datasets as data
    from keras_resnet.export import convert
    from keras_resnet.quant import engine
    from keras_resnet.train import loop as train

    out = os.path.abspath(settings.output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"output {out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    _check_same_settings(out, settings)
    info = data.info(settings.dataset, settings.data_dir)
    start = time.perf_counter()
    seconds: dict[str, float] = {}

    recipe = recipe_for(settings)
    _stage(1, f"training {settings.model} on {info.name} for {settings.epochs} epochs "
              f"(SGD, cosine schedule, label smoothing {recipe.label_smoothing})")
    t = time.perf_counter()
    summary = train.train(recipe, os.path.join(out, "train"), verbose=2)
    seconds["train"] = time.perf_counter() - t
    float_model = os.path.join(out, "train", "best.keras")

    spec = QATSpec(dataset=settings.dataset, data_dir=settings.data_dir, epochs=settings.qat_epochs)
    qat_path = os.path.join(out, engine.qat_file_name(spec.engine))
    _stage(2, f"quantization-aware fine-tuning ({spec.engine} engine) for {settings.qat_epochs} epochs -> {qat_path}")
    t = time.perf_counter()
    if os.path.exists(qat_path):
        print(f"  reusing {qat_path}")
    else:
        result = engine.engine_fine_tune(float_model, spec, qat_path, verbose=2)
        print(f"  test accuracy: float {result.float_accuracy:.4f}, QAT {result.accuracy:.4f} ({result.seconds:.0f} s)")
    seconds["qat"] = time.perf_counter() - t

    _stage(3, "converting to TFLite and validating each in resnet-edge against its Keras model")
    t = time.perf_counter()
    loaded: dict[str, object] = {}  # each model file is loaded once for all its conversions
    for stem, quantization, from_qat in FORMATS:
        path = os.path.join(out, f"{stem}.tflite")
        if os.path.exists(path):
            print(f"  reusing {path}")
            continue
        source = qat_path if from_qat else float_model
        if source not in loaded:
            loaded[source] = load_model(source)
        report = convert.convert(loaded[source], path, name=settings.model, quantization=quantization,
                                 calibration_data=None if from_qat or quantization != "int8" else settings.dataset,
                                 validation_data=settings.dataset, dataset=settings.dataset,
                                 data_dir=settings.data_dir, threads=settings.threads,
                                 min_agreement=settings.min_agreement)
        print(f"  {stem:<9} {report.size_bytes / 1e6:6.2f} MB, agreement with Keras {report.agreement:.3f}, "
              f"conversion {report.convert_seconds:.1f} s", flush=True)
    seconds["convert"] = time.perf_counter() - t

    _stage(4, f"evaluating every model with the on-device runner (resnet-edge, {settings.threads} threads)")
    t = time.perf_counter()
    x_test, y_test = data.load(settings.dataset, "test", settings.data_dir)
    rows = [_device_row("keras float32", None, summary, settings)]
    for stem, _, _ in FORMATS:
        rows.append(_device_row(stem, os.path.join(out, f"{stem}.tflite"), None, settings, x_test, y_test))
        print(f"  {stem:<9} accuracy {rows[-1]['accuracy']:.4f}, median {rows[-1]['median_ms']:.2f} ms", flush=True)
    base = next(r["median_ms"] for r in rows if r["format"] == "float32")
    for row in rows:
        row["speedup"] = round(base / row["median_ms"], 2) if row["median_ms"] else None
    seconds["device"] = time.perf_counter() - t

    t = time.perf_counter()  # the int8 QAT file on an Ethos-U55 (Vela) and a microcontroller (TFLM), when installed
    edge = edge_rows(EDGE_FILE, os.path.join(out, f"{EDGE_FILE}.tflite"), x_test)
    for row in edge:
        print(f"  {row['format']}: {describe(row)}", flush=True)
    seconds["edge"] = time.perf_counter() - t

    _stage(5, f"writing the table and plots to {out}")
    table = markdown_table(rows, edge)
    atomic_write(os.path.join(out, "results.md"), f"# {settings.model} on {info.name}\n\n{table}\n")
    seconds["total"] = time.perf_counter() - start
    timing = {k: round(v, 1) for k, v in seconds.items()}
    atomic_write(os.path.join(out, "results.json"), json.dumps(
        {"settings": dataclasses.asdict(settings), "recipe": dataclasses.asdict(recipe), "rows": rows,
         "edge": edge, "seconds": timing}, indent=2))
    plot(rows, os.path.join(out, "comparison.png"), f"{settings.model} on {info.name}")
    print("\n" + table)
    print("\nseconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()))
    print(f"\ndone in {seconds['total']:.0f} s; models, table and plots in {out}")
    return rows


def _check_same_settings(out: str, settings: DemoSettings) -> None:
    """Finished stages are reused on a rerun, so they must come from the same settings."""
    path = os.path.join(out, "settings.json")
    current = {k: v for k, v in dataclasses.asdict(settings).items()
               if k not in ("output", "threads", "runs", "min_agreement")}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != current:
            changed = ", ".join(sorted(k for k in current if previous.get(k) != current[k]))
            raise ConfigError(f"{out} holds a demo run with other settings ({changed}); "
                              f"pass another --output or delete that folder")
    atomic_write(path, json.dumps(current, indent=2))


def _device_row(name: str, path: str | None, summary: dict | None, settings: DemoSettings,
                x: np.ndarray | None = None, y: np.ndarray | None = None) -> dict:
    if path is None:  # the Keras model itself, as trained (TensorFlow, for reference)
        return {"format": name, "accuracy": summary["test_accuracy"], "size_mb": None, "median_ms": None,
                "runtime": "TensorFlow (Keras 3)"}
    from resnet_edge import Classifier

    clf = Classifier(path, threads=settings.threads)
    probabilities = clf.predict_arrays(x.astype(np.float32))
    bench = clf.benchmark(runs=settings.runs, warmup=5)
    return {"format": name, "accuracy": round(float(np.mean(np.argmax(probabilities, -1) == y)), 4),
            "size_mb": round(os.path.getsize(path) / 1e6, 3), "median_ms": round(bench["median_ms"], 3),
            "runtime": f"{bench['runtime']} {bench['runtime_version']}"}


def markdown_table(rows: list[dict], edge: list[dict] = ()) -> str:
    """The demo's table; ``edge``: the Ethos-U and mcu rows of :mod:`keras_resnet.demo.edge`, appended."""
    lines = ["| format | accuracy | size (MB) | median latency (ms) | speed-up vs float32 | runtime |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        size = "" if r["size_mb"] is None else f"{r['size_mb']:.3f}"
        ms = "" if r["median_ms"] is None else f"{r['median_ms']:.2f}"
        speed = "" if r.get("speedup") is None else f"{r['speedup']:.2f}×"
        lines.append(f"| {r['format']} | {r['accuracy']:.4f} | {size} | {ms} | {speed} | {r['runtime']} |")
    return "\n".join(lines + table_lines(list(edge)))


def plot(rows: list[dict], path: str, title: str) -> None:
    # No pyplot: the caller's backend (a notebook's inline one) is left alone.
    from matplotlib.figure import Figure

    tflite = [r for r in rows if r["median_ms"] is not None]
    names = [r["format"] for r in tflite]
    fig = Figure(figsize=(12, 3.5))
    axes = fig.subplots(1, 3)
    for ax, key, label in zip(axes, ("accuracy", "size_mb", "median_ms"),
                              ("test accuracy", "size (MB)", "median latency (ms)"), strict=True):
        ax.bar(names, [r[key] for r in tflite], color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"][: len(names)])
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=30)
    axes[0].set_ylim(min(r["accuracy"] for r in tflite) - 0.02, 1.0)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
