"""`keras-resnet demo`: the whole story in one command, offline, in a few minutes on two cores.

Trains a CIFAR-style ResNet-20 on the bundled digits, fine-tunes a QAT copy, converts float32,
float16, int8 (post-training) and int8 (QAT) TFLite models, evaluates each with the on-device runner
(deploy/, no TensorFlow in the loop) and prints one table. Everything lands in ``--output``::

    train/ (best.keras, curves.png, ...)  qat.h5  float32.tflite  float16.tflite  int8_ptq.tflite
    int8_qat.tflite  results.md  results.json  comparison.png

Each stage leaves a finished file behind; a rerun (after Ctrl-C, a kill, or with more epochs for
the other stages) reuses what is finished and redoes the rest, so no manual cleanup is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from keras_resnet.errors import UserError

FORMATS = (  # (file stem, quantization, from the QAT model)
    ("float32", "float32", False),
    ("float16", "float16", False),
    ("int8_ptq", "int8", False),
    ("int8_qat", "int8", True),
)


@dataclass
class Settings:
    model: str = "resnet20"
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 30
    qat_epochs: int = 2
    batch_size: int = 128
    output: str = "demo-output"
    threads: int = 2
    runs: int = 50


def _stage(number: int, text: str) -> None:
    print(f"\n[{number}/5] {text}", flush=True)


def run(settings: Settings) -> list[dict]:
    """Run the demo; returns the table rows (also written to results.json / results.md)."""
    from keras_resnet import convert, data, quantize, train

    if settings.epochs < 1 or settings.qat_epochs < 0:
        raise UserError("--epochs must be >= 1 and --qat-epochs >= 0")
    out = os.path.abspath(settings.output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"output {out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    _check_same_settings(out, settings)
    info = data.info(settings.dataset, settings.data_dir)
    start = time.perf_counter()

    _stage(1, f"training {settings.model} on {info.name} for {settings.epochs} epochs (He et al. recipe)")
    summary = train.train(settings.model, settings.dataset, epochs=settings.epochs, batch_size=settings.batch_size,
                          output=os.path.join(out, "train"), data_dir=settings.data_dir, verbose=2)
    float_model = os.path.join(out, "train", "best.keras")

    qat_path = os.path.join(out, "qat.h5")  # tf_keras QAT models reload from .h5 only
    _stage(2, f"quantization-aware fine-tuning for {settings.qat_epochs} epochs -> {qat_path}")
    if os.path.exists(qat_path):
        print(f"  reusing {qat_path}")
    else:
        result = quantize.qat_fine_tune(float_model, settings.dataset, settings.qat_epochs, qat_path,
                                        data_dir=settings.data_dir, verbose=2)
        print(f"  test accuracy: float {result.float_accuracy:.4f}, QAT {result.accuracy:.4f} ({result.seconds:.0f} s)")

    _stage(3, "converting to TFLite and validating each against its Keras model")
    for stem, quantization, from_qat in FORMATS:
        path = os.path.join(out, f"{stem}.tflite")
        if os.path.exists(path):
            print(f"  reusing {path}")
            continue
        report = convert.convert(qat_path if from_qat else float_model, path, quantization=quantization,
                                 calibration_data=None if from_qat or quantization != "int8" else settings.dataset,
                                 validation_data=settings.dataset, dataset=settings.dataset,
                                 data_dir=settings.data_dir, threads=settings.threads)
        print(f"  {stem:<9} {report.size_bytes / 1e6:6.2f} MB, agreement with Keras {report.agreement:.3f}, "
              f"conversion {report.convert_seconds:.1f} s")

    _stage(4, f"evaluating every model with the on-device runner (deploy/, {settings.threads} threads)")
    x_test, y_test = data.load(settings.dataset, "test", settings.data_dir)
    rows = [_device_row("keras float32", None, summary, settings)]
    for stem, _, _ in FORMATS:
        rows.append(_device_row(stem, os.path.join(out, f"{stem}.tflite"), None, settings, x_test, y_test))
        print(f"  {stem:<9} accuracy {rows[-1]['accuracy']:.4f}, median {rows[-1]['median_ms']:.2f} ms", flush=True)
    base = next(r["median_ms"] for r in rows if r["format"] == "float32")
    for row in rows:
        row["speedup"] = round(base / row["median_ms"], 2) if row["median_ms"] else None

    _stage(5, f"writing the table and plots to {out}")
    table = markdown_table(rows)
    _write(os.path.join(out, "results.md"), f"# {settings.model} on {info.name}\n\n{table}\n")
    _write(os.path.join(out, "results.json"), json.dumps({"settings": vars(settings), "rows": rows}, indent=2))
    plot(rows, os.path.join(out, "comparison.png"), f"{settings.model} on {info.name}")
    print("\n" + table)
    print(f"\ndone in {time.perf_counter() - start:.0f} s; models, table and plots in {out}")
    return rows


def _check_same_settings(out: str, settings: Settings) -> None:
    """Finished stages are reused on a rerun, so they must come from the same settings."""
    path = os.path.join(out, "settings.json")
    current = {k: v for k, v in vars(settings).items() if k not in ("output", "threads", "runs")}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != current:
            changed = ", ".join(sorted(k for k in current if previous.get(k) != current[k]))
            raise UserError(f"{out} holds a demo run with other settings ({changed}); "
                            f"pass another --output or delete that folder")
    _write(path, json.dumps(current, indent=2))


def _device_row(name: str, path: str | None, summary: dict | None, settings: Settings,
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


def markdown_table(rows: list[dict]) -> str:
    lines = ["| format | accuracy | size (MB) | median latency (ms) | speed-up vs float32 | runtime |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        size = "" if r["size_mb"] is None else f"{r['size_mb']:.3f}"
        ms = "" if r["median_ms"] is None else f"{r['median_ms']:.2f}"
        speed = "" if r.get("speedup") is None else f"{r['speedup']:.2f}×"
        lines.append(f"| {r['format']} | {r['accuracy']:.4f} | {size} | {ms} | {speed} | {r['runtime']} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tflite = [r for r in rows if r["median_ms"] is not None]
    names = [r["format"] for r in tflite]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key, label in zip(axes, ("accuracy", "size_mb", "median_ms"),
                              ("test accuracy", "size (MB)", "median latency (ms)"), strict=True):
        ax.bar(names, [r[key] for r in tflite], color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"][: len(names)])
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=30)
    axes[0].set_ylim(min(r["accuracy"] for r in tflite) - 0.02, 1.0)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cli(argv: list[str], prog: str = "keras-resnet demo") -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=defaults.model, help="any name from `keras-resnet models`")
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="digits (bundled), cifar10, cifar100 (keras.datasets or --data-dir), or an image folder")
    parser.add_argument("--data-dir", help="folder with the dataset's files (e.g. cifar-10-batches-py)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=defaults.qat_epochs, help="QAT fine-tuning epochs")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--output", default=defaults.output, help="folder for models, table and plots")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="interpreter threads")
    parser.add_argument("--runs", type=int, default=defaults.runs, help="timed runs per latency figure")
    args = parser.parse_args(argv)
    run(Settings(**vars(args)))
    return 0
