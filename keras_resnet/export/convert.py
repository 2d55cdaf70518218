"""Convert a Keras 3 model (or a tf_keras QAT model) to a validated ``.tflite`` file.

``convert()`` = conversion (float32, float16, dynamic-range or full-integer int8) + metadata + validation:
the finished file (metadata included) runs in :mod:`resnet_edge`, the code a device runs, next to the Keras
model on held-out images, and nothing is written when their top-1 agreement falls below ``min_agreement``.
What to produce is a :class:`~keras_resnet.spec.conversion.ConvertSpec`. Targets are presets:

``cpu``      any mode (default float32; int8 for a QAT model).
``gpu``      float16 weights, float32 I/O, plus the GPU delegate compatibility report (ops that would
             fall back to the CPU).
``edgetpu``  full int8 with int8/uint8 I/O, batch 1, TFLITE_BUILTINS_INT8 ops only; fails naming the
             ops if any tensor stays float.

Keras 3 models convert through a SavedModel (``keras.export.ExportArchive``); QAT models through a
concrete function of the tf_keras model (the converter reads their FakeQuant ranges, so they need no
calibration). The file gets keras_resnet's metadata (labels, input size, normalisation). Outputs are
written atomically and never overwrite without ``force``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from resnet_edge.preprocess import CROP_FRACTION

from keras_resnet.core import console, runlock
from keras_resnet.core.errors import (
    ConfigError,
    DataError,
    ModelFileError,
    ValidationError,
)
from keras_resnet.core.files import atomic_path, check_output
from keras_resnet.core.version import VERSION as __version__
from keras_resnet.export.metadata import SCHEMA, embed_metadata
from keras_resnet.io.model_io import load_model
from keras_resnet.io.preprocessing import read_preprocessing
from keras_resnet.model.build import predict
from keras_resnet.quant.quantize import check_images, is_qat_model
from keras_resnet.spec.conversion import MODES, ConvertSpec

# float modes must be near-exact; int8/dynamic: 8-bit rounding flips the top-1 of ambiguous inputs (measured
# 97-100% on digits/ResNet-20 held-out images, 1 flip in 100 is one borderline image), so 0.95 catches real
# breakage (a wrong range, a float op gone wrong: agreement drops to chance) without failing on honest rounding.
MIN_AGREEMENT = {"float32": 0.99, "float16": 0.99, "dynamic": 0.95, "int8": 0.95}
LATENCY_RUNS = 20  # timed batch-1 runs behind each latency figure (the median is reported)
PRODUCER = f"keras_resnet {__version__}"
_INTEGER_TENSORS = {"INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BOOL", "INT4", "UINT4",
                    "INT2"}


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
        return out + self.contract


# ---- conversion --------------------------------------------------------------------------------------------


def _input_spec(model, batch: int | None):
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise ModelFileError(f"{model.name} has {len(model.inputs)} inputs; conversion supports single-input models")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ModelFileError(f"{model.name} has an input of unknown size {shape}; build it with a fixed input_shape")
    return tf.TensorSpec((batch, *shape), tf.float32, name="image")


def _converter(model, batch: int | None, workdir: str, subsample: str = "space_to_depth"):
    from keras_resnet.model.blocks import tflite_tracing

    with tflite_tracing(subsample):  # option-A ChannelPadding as PAD, its subsampling as `subsample` (see there)
        return _trace(model, batch, workdir)


def _trace(model, batch: int | None, workdir: str):
    import tensorflow as tf

    spec = _input_spec(model, batch)
    if type(model).__module__.startswith("tf_keras"):
        function = tf.function(lambda image: model(image, training=False))
        # The converter saves its second argument as a SavedModel. Given the tf_keras model itself it traces every
        # layer's call for the SavedModel (ResNet-20 QAT: 95 of 133 s); a bare module holding the function and the
        # variables it reads converts to the identical flatbuffer in a sixth of the time.
        holder = tf.Module()
        holder.weights = list(model.variables)
        holder.serve = function
        return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function(spec)], holder)
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda image: model(image, training=False), input_signature=[spec])
    path = os.path.join(workdir, "saved_model")
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(path, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(path)


def convert_model(model, *, quantization: str = "float32", io_type: str = "float32", batch: int | None = None,
                  calibration: np.ndarray | None = None, temp_dir: str | None = None,
                  subsample: str = "space_to_depth") -> bytes:
    """``.tflite`` bytes of ``model``. ``calibration``: model-ready float32 images for int8 PTQ. ``temp_dir``: where
    the temporary SavedModel folder goes (default: the system's temporary folder); it is removed afterwards, and
    one left by a killed conversion is removed by the next conversion there (see :func:`convert`).
    ``subsample``: how option A's subsampling is traced (:func:`keras_resnet.model.blocks.tflite_tracing`)."""
    import tensorflow as tf

    if quantization not in MODES:
        raise ConfigError(f"unknown quantization {quantization!r}; choose from {', '.join(MODES)}")
    qat = _is_qat(model)
    if qat and quantization != "int8":
        raise ConfigError(f"{model.name} is a QAT model; it converts to int8 only (got --quantize {quantization})")

    def attempt(new_quantizer: bool) -> bytes:
        workdir = tempfile.mkdtemp(prefix=runlock.temporary_prefix("convert"), dir=temp_dir)
        try:
            converter = _converter(model, batch, workdir, subsample)
            converter.experimental_new_quantizer = new_quantizer
            if quantization == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif quantization == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            elif quantization == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                if not qat:  # PTQ: ranges from the calibration images; QAT ranges come from FakeQuant nodes
                    # TFLITE_BUILTINS_INT8 only. (For QAT the converter refuses this without a representative
                    # dataset; the ops are checked after conversion instead.)
                    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
                if io_type != "float32":
                    converter.inference_input_type = getattr(tf, io_type)
                    converter.inference_output_type = getattr(tf, io_type)
            return _run(converter, quantization)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    if quantization == "int8" and not qat and (calibration is None or not len(calibration)):
        raise ConfigError("int8 post-training quantization of a float model needs calibration images "
                        "(--calibration-data DATASET, or 'random' for latency-only work)")
    # Option-A ResNets convert fully integer since ChannelPadding is traced as PAD (blocks.tflite_tracing);
    # the converter's legacy quantizer (experimental_new_quantizer=False) is not needed and cannot
    # quantize PADV2 anyway.
    return attempt(True)


def _is_qat(model) -> bool:
    """A tfmot (tf_keras) or native Keras 3 (:mod:`keras_resnet.quant.qat`) QAT model: int8 from its FakeQuant ranges."""
    if is_qat_model(model):
        return True
    if type(model).__module__.startswith("tf_keras"):
        return False
    from keras_resnet.quant.qat import is_native_qat

    return is_native_qat(model)


def _run(converter, quantization: str) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()), console.native_output_silenced():
            return converter.convert()
    except Exception as error:  # converter errors are long MLIR dumps: keep the first line
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ModelFileError(f"TFLite conversion ({quantization}) failed: {first[:300]}") from error


# ---- inspection and validation -----------------------------------------------------------------------------


def op_summary(content: bytes) -> tuple[dict[str, int], list[str]]:
    """(op counts, ops that read or write a non-integer tensor) of a ``.tflite`` model, from its flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(content, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(op_names.get(builtin, f"BUILTIN_{builtin}") if builtin != schema.BuiltinOperator.CUSTOM
                     else f"CUSTOM:{(code.CustomCode() or b'').decode('utf-8', 'replace')}")
    graph = model.Subgraphs(0)
    types = [type_names.get(graph.Tensors(t).Type(), "?") for t in range(graph.TensorsLength())]
    counts: dict[str, int] = {}
    floating: list[str] = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        name = codes[op.OpcodeIndex()]
        counts[name] = counts.get(name, 0) + 1
        tensors = [*op.InputsAsNumpy(), *op.OutputsAsNumpy()] if op.InputsLength() + op.OutputsLength() else []
        if any(t >= 0 and types[t] not in _INTEGER_TENSORS for t in tensors):
            floating.append(f"{name}#{index}")
    return counts, floating


def gpu_report(content: bytes) -> list[str]:
    """Ops the GPU delegate would not run, from ``tf.lite.experimental.Analyzer`` (empty: all supported)."""
    import tensorflow as tf

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
    text = buffer.getvalue()
    problems = []
    for line in text.splitlines():
        match = re.search(r"GPU COMPATIBILITY WARNING: (.*)", line)
        if match:
            problems.append(match.group(1).strip())
    if not problems and "compatible with GPU delegate" not in text:
        problems.append("the analyzer did not confirm GPU compatibility")
    return sorted(set(problems))


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


# ---- data, metadata --------------------------------------------------------------------------------------


def images(source: str | None, split: str, count: int, shape: tuple[int, ...], *, data_dir: str | None = None,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` uint8-valued float32 pixel images (and labels) of a dataset split, or random pixels."""
    if source in (None, "random"):
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (count, *shape)).astype(np.float32), None
    if source.endswith(".npz") and os.path.isfile(source):
        with np.load(source) as f:
            x = f["x"] if "x" in f else f[list(f.keys())[0]]
            y = f["y"] if "y" in f else None
    else:
        from keras_resnet.data import datasets as data

        x, y = data.load(source, split, data_dir, image_size=shape[0])  # folder datasets: at the model's size
    if len(x) == 0:
        raise DataError(f"{source} has no {split} images")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(x))[:count])
    return np.asarray(x[keep], np.float32), None if y is None else np.asarray(y)[keep]


def normalization_constants(model) -> dict | None:
    """mean/std of the model's own input ``normalization`` layer (Keras 3 layer or its QAT depthwise twin)."""
    layer = next((layer for layer in model.layers if layer.name in ("normalization", "quant_normalization")), None)
    if layer is None:
        return None
    inner = getattr(layer, "layer", layer)  # unwrap a tfmot QuantizeWrapper
    kind = type(inner).__name__
    if kind == "Normalization":
        import keras

        mean = np.ravel(keras.ops.convert_to_numpy(inner.mean)).astype(float)
        std = np.sqrt(np.ravel(keras.ops.convert_to_numpy(inner.variance)).astype(float))
    elif kind == "QATAffine":  # qat.quantize_model rewrote it: scale = 1/std, offset = -mean/std
        import keras

        std = 1.0 / np.ravel(keras.ops.convert_to_numpy(inner.scale)).astype(float)
        mean = -np.ravel(keras.ops.convert_to_numpy(inner.offset)).astype(float) * std
    elif kind == "DepthwiseConv2D":  # quantize.to_tf_keras rewrote it: scale = 1/std, bias = -mean/std
        named = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
        kernel, bias = named["depthwise_kernel"], named["bias"]
        std = 1.0 / np.ravel(kernel).astype(float)
        mean = -np.ravel(bias).astype(float) * std
    else:
        return None
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def build_metadata(model, name: str, quantization: str, labels: list[str] | None, *, mean=None, std=None,
                   resize: str = "stretch", crop_fraction: float = CROP_FRACTION, interpolation: str = "bilinear",
                   preprocessing: dict | None = None) -> dict:
    """The ``keras_resnet`` metadata: labels, input (size, mean/std, resize policy: ``resize``, ``crop_fraction``,
    ``interpolation``, which resnet-edge applies), and the source's recorded ``preprocessing`` when imported."""
    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    if labels is not None and len(labels) != classes:
        raise ConfigError(f"{len(labels)} labels given but the model has {classes} outputs")
    inside = normalization_constants(model)
    return {
        "schema": SCHEMA,
        "model": name,
        "labels": list(labels) if labels is not None else [str(i) for i in range(classes)],
        "input": {"height": height, "width": width, "channels": channels, "layout": "NHWC", "color": "GRAY" if channels == 1 else "RGB",
                  "mean": list(mean) if mean is not None else [0.0] * channels,
                  "std": list(std) if std is not None else [1.0] * channels, "resize": resize,
                  "crop_fraction": float(crop_fraction), "interpolation": interpolation},
        "normalization_in_model": inside,
        "preprocessing": preprocessing,
        "quantization": quantization,
        "producer": PRODUCER,
    }


def _float_bytes(model) -> int:
    """4 bytes per model weight; a QAT model's quantizer ranges and step counters do not count."""
    # A QuantizeWrapper holds the kernel it quantizes itself (not its inner layer): count wrapper weights.
    weights = {id(w): w for layer in model.layers for w in layer.weights
               if not any(k in w.name for k in ("_min", "_max", "optimizer_step"))}
    return 4 * sum(int(np.prod(w.shape)) for w in weights.values())


# ---- the whole job ---------------------------------------------------------------------------------------


@dataclass
class Job:
    """What a conversion works from, shared by the converter path and :mod:`keras_resnet.export.aeq`: the model, its
    calibration images (model-ready) and validation images (pixels, model-ready, labels), labels and pixel
    normalisation for the metadata, and the output's folder."""

    model: object
    path: str | None
    folder: str
    qat: bool
    mean: list[float]
    std: list[float]
    calibration: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    prepared: np.ndarray
    source: str
    labels: list[str] | None

    policy: dict  # the runner's resize policy (:func:`resize_policy`), read once per conversion

    def metadata(self, spec: ConvertSpec, quantization: str) -> dict:
        return build_metadata(self.model, spec.name or _model_name(self.path, self.model), quantization,
                              self.labels, mean=self.mean, std=self.std, **self.policy)


def prepare_job(model_or_path, output: str, spec: ConvertSpec, *, force: bool, unsafe: bool,
                calibrate: Callable[[bool], bool]) -> Job:
    """Check the output, load the model and read the calibration (when ``calibrate(qat)``) and validation images,
    preprocessed as the device runner does."""
    if not str(output).endswith(".tflite"):
        raise ConfigError(f"output {output} must end in .tflite")
    folder = check_output(output, force=force)
    runlock.remove_stale_temporaries(folder, "convert")  # SavedModel folders of killed conversions
    path = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None
    model = load_model(path, unsafe=unsafe) if path is not None else model_or_path
    qat = _is_qat(model)

    shape = tuple(int(d) for d in _input_spec(model, None).shape[1:])
    channels = shape[-1]
    mean = list(spec.mean or [0.0] * channels)
    std = list(spec.std or [1.0] * channels)
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"--mean and --std need {channels} values each")

    def prepare(x: np.ndarray, source: str) -> np.ndarray:  # pixels → model input, as the runner does
        check_images(model, x, source)
        return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)

    calibration = None
    if calibrate(qat):
        if spec.calibration_data is None:
            raise ConfigError("int8 post-training quantization needs --calibration-data DATASET (or 'random' for "
                              "latency-only work); a QAT model needs none")
        x, _ = images(spec.calibration_data, "train", spec.calibration_samples, shape, data_dir=spec.data_dir)
        calibration = prepare(x, f"calibration data {spec.calibration_data}")
    source = spec.validation_data or (spec.calibration_data if spec.calibration_data not in (None, "random")
                                      else None) or spec.dataset or "random"
    x_val, y_val = images(source, "val", spec.validation_samples, shape, data_dir=spec.data_dir, seed=1)
    prepared = prepare(x_val, f"validation data {source}")
    labels = spec.labels
    if labels is None and spec.dataset is not None:
        from keras_resnet.data import datasets as data

        labels = list(data.info(spec.dataset, spec.data_dir).labels)
    return Job(model=model, path=None if path is None else os.fspath(path), folder=folder, qat=qat, mean=mean,
               std=std, calibration=calibration, x_val=x_val, y_val=y_val, prepared=prepared, source=source,
               labels=None if labels is None else list(labels),
               policy=resize_policy(spec, read_preprocessing(path) if path is not None else None))


def measure(path: str, job: Job, threads: int) -> tuple[dict, float]:
    """(:func:`compare` of the ``.tflite`` at ``path`` in resnet-edge with the Keras model on the validation images,
    median batch-1 latency in ms over :data:`LATENCY_RUNS` runs)."""
    runner = _runner(path, threads, safe=False)  # our own converter's output: no child-process guard
    try:
        result = compare(runner, job.model, job.x_val, job.prepared, job.y_val)
        latency = runner.benchmark(runs=LATENCY_RUNS, warmup=3, batch=1)["median_ms"]
    finally:
        del runner
    return result, latency


def write_validated(content: bytes, output: str, job: Job, threshold: float, *, threads: int,
                    force: bool) -> tuple[dict, float]:
    """Write ``content`` to ``output`` atomically after :func:`measure` accepts it (top-1 agreement with the Keras
    model at least ``threshold``); ValidationError, nothing written, otherwise."""
    with atomic_path(output, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
        result, latency = measure(tmp, job, threads)
        if result["agreement"] < threshold:
            raise ValidationError(f"top-1 agreement with the Keras model is {result['agreement']:.4f} on "
                                  f"{len(job.x_val)} {job.source} images, below --min-agreement {threshold}; "
                                  f"nothing written")
    return result, latency


def convert(model_or_path, output: str, spec: ConvertSpec | None = None, *, force: bool = False,
            unsafe: bool = False, **fields) -> Report:
    """Convert, embed metadata, validate in resnet-edge and write ``output`` atomically; returns the :class:`Report`.

    ``spec`` (or its fields as keywords, e.g. ``quantization="int8", calibration_data="digits"``) says what to
    produce. Raises a :class:`~keras_resnet.core.errors.Error` (nothing written) for bad arguments, files or data, and
    :class:`~keras_resnet.core.errors.ValidationError` when the top-1 agreement of the finished file with the Keras
    model on the validation images falls below ``min_agreement``. ``quantizer="aeq"`` hands the job to
    :func:`keras_resnet.export.aeq.convert_aeq` (ai-edge-quantizer).
    """
    spec = dataclasses.replace(spec or ConvertSpec(), **fields)
    if spec.quantizer == "aeq":
        from keras_resnet.export.aeq import convert_aeq

        return convert_aeq(model_or_path, output, spec, force=force, unsafe=unsafe)
    resolved: dict[str, tuple[str, str, int | None]] = {}

    def calibrate(qat: bool) -> bool:
        resolved["target"] = _resolve_target(spec, qat)
        return resolved["target"][0] == "int8" and not qat

    job = prepare_job(model_or_path, output, spec, force=force, unsafe=unsafe, calibrate=calibrate)
    model = job.model
    quantization, io_type, batch = resolved["target"]
    threshold = MIN_AGREEMENT[quantization] if spec.min_agreement is None else spec.min_agreement

    start = time.perf_counter()
    content = convert_model(model, quantization=quantization, io_type=io_type, batch=batch,
                            calibration=job.calibration,
                            temp_dir=job.folder)  # next to the output, not in a /tmp that may be small or shared
    seconds = time.perf_counter() - start
    counts, floating = op_summary(content)
    if spec.target == "edgetpu" and floating:
        raise ValidationError(f"not fully integer: {len(floating)} ops would stay float on the Edge TPU "
                              f"({', '.join(floating[:8])}); nothing written")
    gpu = gpu_report(content) if spec.target == "gpu" else []
    content = embed_metadata(content, job.metadata(spec, quantization))
    contract = edgetpu_gate(content) if spec.target == "edgetpu" else []

    result, latency = write_validated(content, output, job, threshold, threads=spec.threads, force=force)
    float_bytes = _float_bytes(model)
    return Report(output=os.fspath(output), quantization=quantization, target=spec.target, io_type=io_type,
                  size_bytes=len(content), float_bytes=float_bytes, size_ratio=len(content) / max(1, float_bytes),
                  samples=len(job.x_val), validation=job.source, **result, latency_ms=latency, threads=spec.threads,
                  convert_seconds=seconds, float_ops=floating, gpu_unsupported=gpu, ops=counts, metadata=True,
                  contract=contract, resize=policy_text(job.policy))


def resize_policy(spec: ConvertSpec, recorded: dict | None) -> dict:
    """How the runner fits images: the flags when given, else the imported source's recorded crop and
    interpolation (``center_crop``), else resnet-edge's defaults (``stretch``; 0.875, bilinear for center_crop)."""
    return {"resize": spec.resize or ("center_crop" if recorded else "stretch"),
            "crop_fraction": spec.crop_fraction if spec.crop_fraction is not None else
            (recorded["crop_pct"] if recorded else CROP_FRACTION),
            "interpolation": spec.interpolation or (recorded["interpolation"] if recorded else "bilinear"),
            "preprocessing": recorded}


def policy_text(policy: dict) -> str:
    """``"center_crop 0.95 bicubic (from timm:resnet50.a1_in1k)"``, ``"stretch bilinear"``."""
    text = policy["resize"] + (f" {policy['crop_fraction']:g}" if policy["resize"] == "center_crop" else "")
    text += f" {policy['interpolation']}"
    source = policy.get("preprocessing") or {}
    if source.get("source"):
        tag = f".{source['tag']}" if source.get("tag") else ""
        text += f" (recorded from {source['source']}:{source.get('architecture')}{tag})"
    return text


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


def _resolve_target(spec: ConvertSpec, qat: bool) -> tuple[str, str, int | None]:
    """``(quantization, I/O type, batch)`` for a target preset and the user's explicit choices."""
    quantization, io_type, batch = spec.quantization, spec.io_type, None
    if spec.target == "gpu":
        if quantization not in (None, "float16", "float32"):
            raise ConfigError(f"target gpu takes float16 (default) or float32 models; got --quantize {quantization}")
        if io_type not in (None, "float32"):
            raise ConfigError("target gpu uses float32 input and output; drop --io-type")
        quantization, io_type = quantization or "float16", "float32"
    elif spec.target == "edgetpu":
        if quantization not in (None, "int8"):
            raise ConfigError(f"target edgetpu needs full int8; got --quantize {quantization}")
        quantization, batch, io_type = "int8", 1, io_type or "uint8"
        if io_type == "float32":
            raise ConfigError("target edgetpu needs integer I/O: --io-type int8 or uint8")
    else:
        quantization = quantization or ("int8" if qat else "float32")
        io_type = io_type or ("int8" if quantization == "int8" else "float32")
    if io_type != "float32" and quantization != "int8":
        raise ConfigError(f"--io-type {io_type} needs --quantize int8 (a {quantization} model has float32 I/O)")
    return quantization, io_type, batch


def _model_name(path, model) -> str:
    if path is not None:
        return os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return model.name


# ---- command line ------------------------------------------------------------------------------------------


def convert_command(args) -> int:
    """``keras-resnet convert MODEL --output OUT.tflite``: the options are :class:`ConvertSpec` fields."""
    from keras_resnet.spec.fields import from_args

    report = convert(args.model, args.output, from_args(ConvertSpec, args), force=args.force, unsafe=args.unsafe)
    print("\n".join(report.lines()), flush=True)
    if args.json:
        print(console.json_line(asdict(report)), flush=True)
    return 0
