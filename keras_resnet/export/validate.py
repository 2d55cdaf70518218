"""Validation of a finished ``.tflite`` in resnet-edge, the code a device runs, against the Keras model.

:func:`measure` runs the file (metadata included) through :class:`resnet_edge.Classifier` on the job's held-out
images next to the Keras model: top-1 agreement, output differences, accuracies, and the median batch-1 latency.
:func:`write_validated` writes it only when the agreement reaches the threshold. :func:`edgetpu_gate` applies
``resnet-edge check``'s Edge TPU contract.
"""

from __future__ import annotations

import numpy as np

from keras_resnet.core.errors import ModelFileError, ValidationError
from keras_resnet.core.files import atomic_path
from keras_resnet.export.job import Job
from keras_resnet.model.build import predict

LATENCY_RUNS = 20  # timed batch-1 runs behind each latency figure (the median is reported)


def _runner(path: str, threads: int, *, safe: bool):
    """A :class:`resnet_edge.Classifier`: the runtime and preprocessing a device uses."""
    from resnet_edge import Classifier, ModelError, RuntimeUnavailable

    try:
        return Classifier(path, threads=threads, safe=safe, warn=lambda message: None)
    except (ModelError, RuntimeUnavailable) as error:
        raise ModelFileError(f"cannot run {path} in resnet-edge: {error}") from error


def compare(runner, model, pixels: np.ndarray, prepared: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Top-1 agreement and output differences of the device runner on ``pixels`` and the Keras model on the
    same images ``prepared`` for it."""
    ours = runner.predict_arrays(pixels)
    theirs = np.asarray(predict(model, prepared, 32), np.float32)
    diff = np.abs(ours - theirs)
    result = {"agreement": float(np.mean(ours.argmax(-1) == theirs.argmax(-1))),
              "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "tflite_accuracy": None, "keras_accuracy": None}
    if y is not None:
        result["tflite_accuracy"] = float(np.mean(ours.argmax(-1) == y))
        result["keras_accuracy"] = float(np.mean(theirs.argmax(-1) == y))
    return result


def measure(path: str, job: Job, threads: int) -> tuple[dict, float]:
    """(:func:`compare` of the ``.tflite`` at ``path`` in resnet-edge with the Keras model on the validation images,
    median batch-1 latency in ms over :data:`LATENCY_RUNS` runs)."""
    from resnet_edge import ModelError, RuntimeUnavailable

    runner = _runner(path, threads, safe=False)  # our own converter's output: no child-process guard
    try:
        result = compare(runner, job.model, job.x_val, job.prepared, job.y_val)
        latency = runner.benchmark(runs=LATENCY_RUNS, warmup=3, batch=1)["median_ms"]
    except (ModelError, RuntimeUnavailable) as error:  # e.g. a batch the runtime cannot resize the file to
        raise ModelFileError(f"resnet-edge cannot run the converted file: {error}; nothing written") from error
    finally:
        del runner
    return result, latency


def write_validated(content: bytes, output: str, job: Job, *, threads: int, force: bool) -> tuple[dict, float]:
    """Write ``content`` to ``output`` atomically after :func:`measure` accepts it (top-1 agreement with the Keras
    model at least the plan's ``min_agreement``); ValidationError, nothing written, otherwise."""
    threshold = job.plan.min_agreement
    with atomic_path(output, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
        result, latency = measure(tmp, job, threads)
        if result["agreement"] < threshold:
            raise ValidationError(f"top-1 agreement with the Keras model is {result['agreement']:.4f} on "
                                  f"{len(job.x_val)} {job.source} images, below --min-agreement {threshold}; "
                                  f"nothing written")
    return result, latency


def edgetpu_gate(content: bytes) -> list[str]:
    """The Edge TPU contract of ``resnet-edge check`` (compiler 16.0's op/version table, 8-bit I/O, batch 1, the
    parameter cache) as report lines; ValidationError, naming the failures, when the compiler would refuse it."""
    from resnet_edge.check import check

    report = check(content, "edgetpu", compiler=False)
    lines = [line.replace("<bytes>", "Edge TPU check", 1) for line in report.lines()]
    if not report.ok:
        failures = [f.line().strip() for f in report.findings if f.severity == "error"]
        raise ValidationError(f"the Edge TPU compiler 16.0 would refuse it ({len(failures)} errors: "
                              f"{'; '.join(failures[:4])}); nothing written")
    return lines
