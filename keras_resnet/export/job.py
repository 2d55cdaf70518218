"""What one conversion works from and what it reports, shared by the converter path
(:mod:`keras_resnet.export.convert`) and ai-edge-quantizer's (:mod:`keras_resnet.export.aeq`).

:func:`open_output` checks the output before any slow work, :func:`load_source` loads the model, and
:func:`prepare_job` reads, for a :class:`~keras_resnet.export.targets.TargetPlan` resolved once before it, the
calibration images (when the plan needs them), the validation images and the metadata's inputs into a :class:`Job`.
:class:`Report` is what a finished conversion says about its file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from keras_resnet.core import runlock
from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import check_output
from keras_resnet.export.images import Pixels, calibration_images, images, validation_source
from keras_resnet.export.metadata import build_metadata, resize_policy
from keras_resnet.export.micro import MicroResult
from keras_resnet.export.targets import TargetPlan
from keras_resnet.export.trace import input_shape
from keras_resnet.io.model_io import load_model
from keras_resnet.io.preprocessing import read_preprocessing
from keras_resnet.spec.conversion import ConvertSpec


@dataclass
class Report:
    """What a conversion produced and how close the ``.tflite`` is to the Keras model."""

    output: str
    quantization: str
    target: str
    io_type: str
    size_bytes: int
    float_bytes: int  # 4 bytes per weight of the Keras model
    size_ratio: float
    samples: int
    validation: str
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    tflite_accuracy: float | None
    keras_accuracy: float | None
    latency_ms: float  # median, batch 1
    threads: int
    convert_seconds: float
    float_ops: list[str] = field(default_factory=list)
    gpu_unsupported: list[str] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    metadata: bool = False
    contract: list[str] = field(default_factory=list)  # ``resnet-edge check`` report (target edgetpu)
    resize: str = ""  # the runner's resize policy as the metadata states it, e.g. "center_crop 0.95 bicubic"
    ethos_u: dict = field(default_factory=dict)  # targets ethos-u*: EthosResult's fields (keras_resnet.export.ethos)
    npu_lines: list[str] = field(default_factory=list)  # targets ethos-u*: what EthosResult.lines() printed
    arena_bytes: int | None = None  # target mcu: the smallest tensor arena TFLM accepts (keras_resnet.export.micro)
    micro: dict = field(default_factory=dict)  # target mcu: MicroResult's fields (flash, LSB, resolver, allocations)
    c_sources: list[str] = field(default_factory=list)  # target mcu --c-source: the C++ files written

    def lines(self) -> list[str]:
        out = [
            f"wrote {self.output}: {self.quantization} for {self.target}, I/O {self.io_type}, "
            f"{self.size_bytes / 1e6:.2f} MB ({self.size_ratio:.3f} x float32 weights {self.float_bytes / 1e6:.2f} MB)",
            f"validation on {self.samples} {self.validation} images: top-1 agreement {self.agreement:.4f}, "
            f"output |diff| max {self.max_abs_diff:.4g} mean {self.mean_abs_diff:.4g}",
        ]
        if self.tflite_accuracy is not None:
            out.append(f"accuracy: tflite {self.tflite_accuracy:.4f}, keras {self.keras_accuracy:.4f}")
        out.append(f"latency {self.latency_ms:.2f} ms (median, batch 1, {self.threads} threads); "
                   f"conversion {self.convert_seconds:.1f} s")
        if self.resize:
            out.append(f"runner preprocessing (metadata): {self.resize}")
        if self.target == "gpu":
            out.append("GPU delegate: all ops supported" if not self.gpu_unsupported else
                       f"GPU delegate would not run: {', '.join(self.gpu_unsupported)}")
        if self.float_ops and self.quantization == "int8":
            out.append(f"float ops left: {', '.join(self.float_ops)}")
        out += self.npu_lines
        if self.micro:
            out += MicroResult(**self.micro).lines()
        if self.c_sources:
            out.append(f"C sources: {', '.join(self.c_sources)}")
        return out + self.contract


@dataclass
class Job:
    """What a conversion works from: the model, its target plan, its calibration images (model-ready) and
    validation images (pixels, model-ready, labels), labels and pixel normalisation for the metadata, and the
    output's folder."""

    model: object
    path: str | None
    folder: str
    plan: TargetPlan
    pixels: Pixels
    calibration: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    prepared: np.ndarray
    source: str
    labels: list[str] | None
    policy: dict  # the runner's resize policy (:func:`~keras_resnet.export.metadata.resize_policy`), read once

    def metadata(self, spec: ConvertSpec, quantization: str) -> dict:
        return build_metadata(self.model, spec.name or _model_name(self.path, self.model), quantization,
                              self.labels, mean=list(self.pixels.mean), std=list(self.pixels.std), **self.policy)

    def report_fields(self, output: str, content: bytes, result: dict, latency: float, threads: int,
                      seconds: float) -> dict:
        """The :class:`Report` fields every conversion fills alike: the written file's size against the float
        weights, and the validation ``result`` and ``latency`` of :func:`keras_resnet.export.validate.measure`."""
        weights = float_bytes(self.model)
        return dict(output=os.fspath(output), size_bytes=len(content), float_bytes=weights,
                    size_ratio=len(content) / max(1, weights), samples=len(self.x_val), validation=self.source,
                    **result, latency_ms=latency, threads=threads, convert_seconds=seconds, metadata=True)


def open_output(output: str | os.PathLike, *, force: bool) -> str:
    """The folder of ``output`` (a ``.tflite`` path that may be written), cleared of the SavedModel folders of
    killed conversions; ConfigError / OutputError before any slow work otherwise."""
    if not str(output).endswith(".tflite"):
        raise ConfigError(f"output {output} must end in .tflite")
    folder = check_output(output, force=force)
    runlock.remove_stale_temporaries(folder, "convert")  # SavedModel folders of killed conversions
    return folder


def load_source(model_or_path, *, unsafe: bool) -> tuple[object, str | None]:
    """(the model, its path or None): a model file is loaded, a model object passes through."""
    if isinstance(model_or_path, (str, os.PathLike)):
        return load_model(model_or_path, unsafe=unsafe), os.fspath(model_or_path)
    return model_or_path, None


def prepare_job(model, path: str | None, folder: str, spec: ConvertSpec, plan: TargetPlan) -> Job:
    """Read the calibration images (when ``plan.calibrate``) and the validation images, preprocessed as the device
    runner does, and the labels and resize policy for the metadata."""
    shape = input_shape(model)
    pixels = Pixels.of(spec, shape[-1])
    calibration = calibration_images(spec, model, shape, pixels) if plan.calibrate else None
    source = validation_source(spec)
    x_val, y_val = images(source, "val", spec.validation_samples, shape, data_dir=spec.data_dir, seed=1)
    prepared = pixels.prepare(model, x_val, f"validation data {source}")
    labels = spec.labels
    if labels is None and spec.dataset is not None:
        from keras_resnet.data import datasets as data

        labels = list(data.info(spec.dataset, spec.data_dir).labels)
    return Job(model=model, path=path, folder=folder, plan=plan, pixels=pixels, calibration=calibration,
               x_val=x_val, y_val=y_val, prepared=prepared, source=source,
               labels=None if labels is None else list(labels),
               policy=resize_policy(spec, read_preprocessing(path) if path is not None else None))


def float_bytes(model) -> int:
    """4 bytes per model weight; a QAT model's quantizer ranges and step counters do not count."""
    # A QuantizeWrapper holds the kernel it quantizes itself (not its inner layer): count wrapper weights.
    weights = {id(w): w for layer in model.layers for w in layer.weights
               if not any(k in w.name for k in ("_min", "_max", "optimizer_step"))}
    return 4 * sum(int(np.prod(w.shape)) for w in weights.values())


def _model_name(path, model) -> str:
    if path is not None:
        return os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return model.name
