"""Fashion-MNIST results: running the product. :class:`Runner` runs `keras-resnet` commands (train / qat / convert /
evaluate with --json) as subprocesses, logs them in the run folder and keeps RUNS/results.json up to date; .tflite
files run in resnet_edge (the device runner: :func:`tflite_predictions`, :func:`tflite_latency`), the machine is
described by resnet_edge's :func:`~resnet_edge.cpu.cpu_info`, and the test images come from keras_resnet's loader.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
from resnet_edge.cpu import cpu_info

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DATASET = "fashion-mnist"
SEED = 0
ACCELERATOR_RESULTS = os.path.join(REPO, "benchmarks", "fmnist_gpu_results.json")
# Said wherever docs/results.md shows a figure of benchmarks/fmnist_gpu.py (GPU accuracies, degradation, flips).
SIDE_SCRIPT = ("**From a side script, not the product:** these GPU figures come from `benchmarks/fmnist_gpu.py`, "
               "which wraps keras_resnet's model, optimizer, schedule and loss in its own augmentation (numpy pad-4 "
               "crops and flips, once per epoch) and its own fit loop; `keras-resnet train` did not produce them. "
               "They stand until a device run through `keras-resnet train` replaces them.")


class Runner:
    """Runs keras-resnet commands, logs them, and keeps RUNS/results.json up to date."""

    def __init__(self, args):
        self.args = args
        self.runs = os.path.abspath(os.path.expanduser(args.runs))
        self.cli = shlex.split(args.cli) if args.cli else default_cli()
        self.data_dir = args.data_dir
        self.path = os.path.join(self.runs, "results.json")
        self.results = {}
        self.accelerator: dict = {}
        if args.accelerator_results and os.path.isfile(args.accelerator_results):
            with open(args.accelerator_results) as f:
                self.accelerator = json.load(f)
        self.flip_accel: dict = {}
        flip_results = getattr(args, "flip_results", None)
        if flip_results and os.path.isfile(flip_results):
            with open(flip_results) as f:
                self.flip_accel = json.load(f)
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.results = json.load(f)
        if not args.dry_run:
            os.makedirs(self.runs, exist_ok=True)

    def save(self) -> None:
        if self.args.dry_run:
            return
        self.results["cpu"] = cpu_info()
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.results, f, indent=1)
        os.replace(tmp, self.path)

    def data_args(self) -> list[str]:
        return ["--dataset", DATASET, *(["--data-dir", self.data_dir] if self.data_dir else [])]

    def shown(self, argv: list[str]) -> str:
        """A command as the results show it: ``keras-resnet ...`` with the run folder as RUNS, no machine paths."""
        return shlex.join(["keras-resnet", *argv]).replace(str(self.runs), "RUNS")

    def run(self, name: str, argv: list[str], *, json_tail: bool = True, json_whole: bool = False) -> dict | None:
        """Run one command; returns its parsed JSON (last line, or all of stdout) plus wall time; logs to RUNS."""
        command = [*self.cli, *argv]
        shown = self.shown(argv)
        print(f"[{now()}] {name}: {shown}", flush=True)
        if self.args.dry_run:
            return None
        log = os.path.join(self.runs, f"{name}.log")
        start = time.perf_counter()
        with open(log, "a") as f:
            f.write(f"\n### {now()} {shown}\n")
            f.flush()
            process = subprocess.run(command, stdout=subprocess.PIPE, stderr=f, text=True, cwd=self.runs,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"})
            f.write(process.stdout)
        wall = time.perf_counter() - start
        if process.returncode != 0:
            raise SystemExit(f"{name} failed (exit {process.returncode}); see {log}")
        text = process.stdout.strip()
        parsed = json.loads(text[text.index("{"):] if json_whole else text.splitlines()[-1]) if json_tail else {}
        record = {"command": shown, "wall_s": round(wall, 1), "log": log, "finished": now()}
        self.results.setdefault("commands", {}).setdefault(name, []).append(record)
        self.save()
        return {**parsed, "_wall_s": round(wall, 1)}

    # ---- training runs ----

    def train(self, name: str, model: str, epochs: int, *, extra: list[str] | None = None) -> dict | None:
        """``keras-resnet train`` into RUNS/name (resumes; skipped when summary.json already has all epochs)."""
        output = os.path.join(self.runs, name)
        argv = ["train", "--model", model, *self.data_args(), "--epochs", str(epochs), *(extra or []),
                "--seed", str(SEED), "--output", output, "--verbose", "2", "--json"]
        summary = read_summary(output)
        if summary and summary.get("epochs_completed", 0) >= epochs and not self.args.dry_run:
            print(f"[{now()}] {name}: done earlier ({summary['epochs_completed']} epochs); not run again")
        else:
            summary = self.run(name, argv)
            if summary is None:
                return None
        history = read_history(output)
        record = {
            "command": self.shown(argv), "model": model, "seed": SEED,
            "epochs": summary["epochs_completed"], "train_images": summary["data"]["train"],
            "steps": summary["epochs_completed"] * math.ceil(summary["data"]["train"] / summary["recipe"]["batch_size"]),
            "recipe": summary["recipe"], "test_accuracy": summary["test_accuracy"],
            "last_test_accuracy": summary["metrics"].get("last_test_accuracy"),
            "val_accuracy": summary["metrics"].get("val_accuracy"), "best_epoch": summary["best_epoch"],
            "images_per_s": summary["images_per_s"], "train_time_s": summary["train_time_s"],
            # this script's wall time of all the commands (resumes included); a run started by hand with the
            # same command: its last invocation's wall time from summary.json
            "wall_s": sum(r["wall_s"] for r in self.results.get("commands", {}).get(name, [])) or
            summary.get("wall_time_s"),
            "resumed_at_epochs": summary.get("resumed_at_epochs", []), "parameters": summary["parameters"],
            "history": history, "output": output, "test_images": summary["data"]["test"],
        }
        self.results.setdefault("runs", {})[name] = record
        self.save()
        return record


def default_cli() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "keras-resnet")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "keras_resnet.cli"]


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def read_summary(output: str) -> dict | None:
    try:
        with open(os.path.join(output, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_history(output: str) -> list[dict]:
    try:
        with open(os.path.join(output, "history.csv")) as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except OSError:
        return []


def cpu_features(cpu: dict) -> list[str]:
    """The CPU features of a results.json ``cpu`` entry: resnet_edge's ``features`` (entries written before this
    script used resnet_edge: lscpu's avx2/avx512*/vnni/amx ``flags``)."""
    return list(cpu.get("features") or cpu.get("flags") or [])


def qat_log(path: str) -> dict | None:
    """What ``keras-resnet qat`` printed last in its log ("float accuracy 0.9xxx  QAT accuracy 0.9xxx  (N epochs, S s)"):
    ``{"float_accuracy", "qat_keras_accuracy", "epochs", "seconds"}``, or None."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        found = re.findall(r"float accuracy ([\d.]+)\s+QAT accuracy ([\d.]+)\s+\((\d+) epochs, (\d+) s", f.read())
    return dict(zip(("float_accuracy", "qat_keras_accuracy", "epochs", "seconds"), map(float, found[-1]))) if found else None


def fmnist_test_npz(r: Runner) -> str:
    """RUNS/fashion-mnist-test.npz: the official 10,000 test images as keras_resnet's loader gives them (zero-padded
    to 32×32×1), for ``keras-resnet convert --validation-data`` and the per-image predictions."""
    path = os.path.join(r.runs, "fashion-mnist-test.npz")
    if os.path.isfile(path) or r.args.dry_run:
        return path
    from keras_resnet.data import datasets as data

    x, y = data.load(DATASET, "test", r.data_dir)
    np.savez(path, x=x, y=y.astype(np.int64))
    return path


def tflite_predictions(path: str, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Top-1 predictions of a .tflite file on uint8 images, run by resnet_edge exactly as on a device (the child-process
    guard, the embedded metadata's normalisation, int8 I/O quantized with the file's parameters)."""
    from resnet_edge import Classifier

    return Classifier(path, threads=threads).predict_arrays(x).argmax(-1)


def tflite_latency(path: str, runs: int = 200, threads: int = 2) -> dict:
    """Batch-1 latency of a .tflite file in resnet_edge (``Classifier.benchmark``: 10 warm-up runs, then ``runs``
    invocations on random input; min/median ms and what ran).

    The minimum is the figure least disturbed by other work on a shared CPU; convert's own figure is a median
    of 20 runs.
    """
    from resnet_edge import Classifier

    return Classifier(path, threads=threads).benchmark(runs=runs, warmup=10, batch=1)
