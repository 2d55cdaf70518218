"""Convert a Keras 3 model (or a tf_keras QAT model) to a validated ``.tflite`` file.

``convert()`` = conversion (float32, float16, dynamic-range or full-integer int8) + validation: the
``.tflite`` runs with ai-edge-litert next to the Keras model on held-out images, and the conversion
fails when their top-1 agreement falls below ``min_agreement``. Targets are presets:

``cpu``      any mode (default float32; int8 for a QAT model).
``gpu``      float16 weights, float32 I/O, plus the GPU delegate compatibility report (ops that would
             fall back to the CPU).
``edgetpu``  full int8 with int8/uint8 I/O, batch 1, TFLITE_BUILTINS_INT8 ops only; fails naming the
             ops if any tensor stays float.

Keras 3 models convert through a SavedModel (``keras.export.ExportArchive``); QAT models through a
concrete function of the tf_keras model (the converter reads their FakeQuant ranges, so they need no
calibration). The file gets keras_resnet's metadata (labels, input size, normalisation) when
:mod:`keras_resnet.metadata` is available. Outputs are written atomically and never overwrite without
``force``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keras_resnet.errors import UserError
from keras_resnet.quantize import atomic_path, check_images, is_qat_model, load_model

MODES = ("float32", "float16", "dynamic", "int8")
TARGETS = ("cpu", "gpu", "edgetpu")
IO_TYPES = ("int8", "uint8", "float32")
# float modes must be near-exact; int8/dynamic: 8-bit rounding flips the top-1 of ambiguous inputs (measured
# 97-100% on digits/ResNet-20 held-out images, 1 flip in 100 is one borderline image), so 0.95 catches real
# breakage (a wrong range, a float op gone wrong: agreement drops to chance) without failing on honest rounding.
MIN_AGREEMENT = {"float32": 0.99, "float16": 0.99, "dynamic": 0.95, "int8": 0.95}
PRODUCER = "keras_resnet 0.1.0"
_INT_TYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_)


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
        if self.target == "gpu":
            out.append("GPU delegate: all ops supported" if not self.gpu_unsupported else
                       f"GPU delegate would not run: {', '.join(self.gpu_unsupported)}")
        if self.float_ops and self.quantization == "int8":
            out.append(f"float ops left: {', '.join(self.float_ops)}")
        return out


# ---- conversion --------------------------------------------------------------------------------------------


def _input_spec(model, batch: int | None):
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise UserError(f"{model.name} has {len(model.inputs)} inputs; conversion supports single-input models")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise UserError(f"{model.name} has an input of unknown size {shape}; build it with a fixed input_shape")
    return tf.TensorSpec((batch, *shape), tf.float32, name="image")


def _converter(model, batch: int | None, workdir: str):
    from keras_resnet.blocks import tflite_tracing

    with tflite_tracing():  # option-A ChannelPadding as PAD (see there)
        return _trace(model, batch, workdir)


def _trace(model, batch: int | None, workdir: str):
    import tensorflow as tf

    spec = _input_spec(model, batch)
    if type(model).__module__.startswith("tf_keras"):
        function = tf.function(lambda image: model(image, training=False))
        return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function(spec)], model)
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda image: model(image, training=False), input_signature=[spec])
    path = os.path.join(workdir, "saved_model")
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(path, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(path)


def convert_model(model, *, quantization: str = "float32", io_type: str = "float32", batch: int | None = None,
                  calibration: np.ndarray | None = None) -> bytes:
    """``.tflite`` bytes of ``model``. ``calibration``: model-ready float32 images for int8 PTQ."""
    import tensorflow as tf

    if quantization not in MODES:
        raise UserError(f"unknown quantization {quantization!r}; choose from {', '.join(MODES)}")
    qat = is_qat_model(model)
    if qat and quantization != "int8":
        raise UserError(f"{model.name} is a QAT model; it converts to int8 only (got --quantize {quantization})")

    def attempt(new_quantizer: bool) -> bytes:
        workdir = tempfile.mkdtemp(prefix="keras-resnet-convert-")
        try:
            converter = _converter(model, batch, workdir)
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
        raise UserError("int8 post-training quantization of a float model needs calibration images "
                        "(--calibration-data DATASET, or 'random' for latency-only work)")
    # Option-A ResNets convert fully integer since ChannelPadding is traced as PAD (blocks.tflite_tracing);
    # the converter's legacy quantizer (experimental_new_quantizer=False) is not needed and cannot
    # quantize PADV2 anyway.
    return attempt(True)


def _run(converter, quantization: str) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return converter.convert()
    except Exception as error:  # converter errors are long MLIR dumps: keep the first line
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise UserError(f"TFLite conversion ({quantization}) failed: {first[:300]}") from None


# ---- inspection and validation -----------------------------------------------------------------------------


def interpreter(content: bytes | str, threads: int = 2, *, delegates: bool = True):
    """An allocated ai-edge-litert interpreter (``delegates=False``: builtin kernels only, for inspection)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"num_threads": threads}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    source = {"model_content": content} if isinstance(content, bytes) else {"model_path": content}
    it = Interpreter(**source, **kwargs)
    it.allocate_tensors()
    return it


def op_summary(content: bytes) -> tuple[dict[str, int], list[str]]:
    """(op counts, ops that read or write a float tensor) of a ``.tflite`` model."""
    it = interpreter(content, delegates=False)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    counts: dict[str, int] = {}
    floating: list[str] = []
    for op in it._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        indices = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0 and i in tensors]
        if any(not np.issubdtype(tensors[i]["dtype"], np.integer) and tensors[i]["dtype"] != np.bool_
               for i in indices):
            floating.append(f"{op['op_name']}#{op['index']}")
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


class TFLiteModel:
    """Run a ``.tflite`` classifier on float32 model-ready images, (de)quantizing I/O as needed."""

    def __init__(self, content: bytes | str, threads: int = 2):
        self.it = interpreter(content, threads)
        self.input = self.it.get_input_details()[0]
        self.output = self.it.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        self.dynamic = int(self.input.get("shape_signature", self.input["shape"])[0]) == -1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"][1:])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self.output["dtype"] == np.float32:
            return y.astype(np.float32)
        scale, zero = self.output["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def __call__(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        step = batch_size if self.dynamic else self.batch
        outputs = []
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            if self.dynamic and chunk.shape[0] != self.input["shape"][0]:
                self.it.resize_tensor_input(self.input["index"], [chunk.shape[0], *self.input_shape])
                self.it.allocate_tensors()
                self.input = self.it.get_input_details()[0]
                self.output = self.it.get_output_details()[0]
            self.it.set_tensor(self.input["index"], self._quantize(chunk))
            self.it.invoke()
            outputs.append(self._dequantize(self.it.get_tensor(self.output["index"])))
        return np.concatenate(outputs)

    def latency_ms(self, x: np.ndarray, runs: int = 20, warmup: int = 3) -> float:
        """Median wall time of one batch-1 invoke."""
        if self.dynamic and self.input["shape"][0] != 1:
            self.it.resize_tensor_input(self.input["index"], [1, *self.input_shape])
            self.it.allocate_tensors()
            self.input = self.it.get_input_details()[0]
            self.output = self.it.get_output_details()[0]
        self.it.set_tensor(self.input["index"], self._quantize(x[:1]))
        times = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            self.it.invoke()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)


def compare(tflite: TFLiteModel, model, x: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Top-1 agreement and output differences of the ``.tflite`` and the Keras model on ``x``."""
    ours = tflite(x)
    theirs = np.asarray(model.predict(x, batch_size=32, verbose=0), np.float32)
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
        from keras_resnet import data

        x, y = data.load(source, split, data_dir)
    if len(x) == 0:
        raise UserError(f"{source} has no {split} images")
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
    elif kind == "DepthwiseConv2D":  # quantize.to_tf_keras rewrote it: scale = 1/std, bias = -mean/std
        named = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
        kernel, bias = named["depthwise_kernel"], named["bias"]
        std = 1.0 / np.ravel(kernel).astype(float)
        mean = -np.ravel(bias).astype(float) * std
    else:
        return None
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def build_metadata(model, name: str, quantization: str, labels: list[str] | None, *, mean=None, std=None,
                   resize: str = "stretch") -> dict:
    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    if labels is not None and len(labels) != classes:
        raise UserError(f"{len(labels)} labels given but the model has {classes} outputs")
    inside = normalization_constants(model)
    return {
        "schema": "keras_resnet.metadata/1",
        "model": name,
        "labels": list(labels) if labels is not None else [str(i) for i in range(classes)],
        "input": {"height": height, "width": width, "channels": channels, "layout": "NHWC", "color": "RGB",
                  "mean": list(mean) if mean is not None else [0.0] * channels,
                  "std": list(std) if std is not None else [1.0] * channels, "resize": resize},
        "normalization_in_model": inside,
        "quantization": quantization,
        "producer": PRODUCER,
    }


def _embed(content: bytes, meta: dict) -> tuple[bytes, bool]:
    try:
        from keras_resnet.metadata import embed_metadata
    except ImportError:  # the metadata writer is optional; the model works without it
        return content, False
    return embed_metadata(content, meta), True


def _float_bytes(model) -> int:
    """4 bytes per model weight; a QAT model's quantizer ranges and step counters do not count."""
    # A QuantizeWrapper holds the kernel it quantizes itself (not its inner layer): count wrapper weights.
    weights = {id(w): w for layer in model.layers for w in layer.weights
               if not any(k in w.name for k in ("_min", "_max", "optimizer_step"))}
    return 4 * sum(int(np.prod(w.shape)) for w in weights.values())


# ---- the whole job ---------------------------------------------------------------------------------------


def convert(model_or_path, output: str, *, quantization: str | None = None, target: str = "cpu",
            io_type: str | None = None, calibration_data: str | None = None, calibration_samples: int = 200,
            validation_data: str | None = None, validation_samples: int = 200, data_dir: str | None = None,
            min_agreement: float | None = None, labels: list[str] | None = None, dataset: str | None = None,
            mean: list[float] | None = None, std: list[float] | None = None, resize: str = "stretch",
            threads: int = 2, force: bool = False, unsafe: bool = False, name: str | None = None) -> Report:
    """Convert, validate, embed metadata and write ``output`` atomically; returns the :class:`Report`.

    Raises :class:`UserError` (nothing written) for bad arguments, files or data, and when the top-1
    agreement on the validation images falls below ``min_agreement`` (the file is not written either).
    """
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if quantization is not None and quantization not in MODES:
        raise UserError(f"unknown quantization {quantization!r}; choose from {', '.join(MODES)}")
    if io_type is not None and io_type not in IO_TYPES:
        raise UserError(f"unknown I/O type {io_type!r}; choose from {', '.join(IO_TYPES)}")
    if not str(output).endswith(".tflite"):
        raise UserError(f"output {output} must end in .tflite")
    if os.path.exists(output) and not force:
        raise UserError(f"output {output} exists; pass --force to overwrite it")
    if calibration_samples < 1 or validation_samples < 1:
        raise UserError("--calibration-samples and --validation-samples must be positive")
    path = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None
    model = load_model(path, unsafe=unsafe) if path is not None else model_or_path
    qat = is_qat_model(model)

    batch = None
    if target == "gpu":
        if quantization not in (None, "float16", "float32"):
            raise UserError(f"target gpu takes float16 (default) or float32 models; got --quantize {quantization}")
        quantization, io_type = quantization or "float16", "float32" if io_type in (None, "float32") else io_type
        if io_type != "float32":
            raise UserError("target gpu uses float32 input and output; drop --io-type")
    elif target == "edgetpu":
        if quantization not in (None, "int8"):
            raise UserError(f"target edgetpu needs full int8; got --quantize {quantization}")
        quantization, batch = "int8", 1
        io_type = io_type or "uint8"
        if io_type == "float32":
            raise UserError("target edgetpu needs integer I/O: --io-type int8 or uint8")
    else:
        quantization = quantization or ("int8" if qat else "float32")
        io_type = io_type or ("int8" if quantization == "int8" else "float32")
    if io_type != "float32" and quantization != "int8":
        raise UserError(f"--io-type {io_type} needs --quantize int8 (a {quantization} model has float32 I/O)")
    threshold = MIN_AGREEMENT[quantization] if min_agreement is None else min_agreement

    shape = tuple(int(d) for d in _input_spec(model, None).shape[1:])
    channels = shape[-1]
    mean = mean or [0.0] * channels
    std = std or [1.0] * channels
    if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
        raise UserError(f"--mean and --std need {channels} values each (std > 0)")

    def prepare(x: np.ndarray, source: str) -> np.ndarray:  # pixels → model input, as the runner does
        check_images(model, x, source)
        return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)

    calibration = None
    if quantization == "int8" and not qat:
        if calibration_data is None:
            raise UserError("int8 post-training quantization needs --calibration-data DATASET (or 'random' for "
                            "latency-only work); a QAT model needs none")
        x, _ = images(calibration_data, "train", calibration_samples, shape, data_dir=data_dir)
        calibration = prepare(x, f"calibration data {calibration_data}")
    source = validation_data or (calibration_data if calibration_data not in (None, "random") else None) \
        or dataset or "random"
    x_val, y_val = images(source, "val", validation_samples, shape, data_dir=data_dir, seed=1)
    x_val = prepare(x_val, f"validation data {source}")
    if labels is None and dataset is not None:
        from keras_resnet import data

        labels = list(data.info(dataset, data_dir).labels)

    start = time.perf_counter()
    content = convert_model(model, quantization=quantization, io_type=io_type, batch=batch,
                            calibration=calibration)
    seconds = time.perf_counter() - start
    counts, floating = op_summary(content)
    if target == "edgetpu" and floating:
        raise UserError(f"not fully integer: {len(floating)} ops would stay float on the Edge TPU "
                        f"({', '.join(floating[:8])}); nothing written")
    gpu = gpu_report(content) if target == "gpu" else []

    tflite = TFLiteModel(content, threads)
    result = compare(tflite, model, x_val, y_val)
    latency = tflite.latency_ms(x_val)
    if result["agreement"] < threshold:
        raise UserError(f"top-1 agreement with the Keras model is {result['agreement']:.4f} on {len(x_val)} "
                        f"{source} images, below --min-agreement {threshold}; nothing written")

    meta = build_metadata(model, name or _model_name(path, model), quantization, labels, mean=mean, std=std,
                          resize=resize)
    content, embedded = _embed(content, meta)
    with atomic_path(output, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    float_bytes = _float_bytes(model)
    return Report(output=os.fspath(output), quantization=quantization, target=target, io_type=io_type,
                  size_bytes=len(content), float_bytes=float_bytes, size_ratio=len(content) / max(1, float_bytes),
                  samples=len(x_val), validation=source, **result, latency_ms=latency, threads=threads,
                  convert_seconds=seconds, float_ops=floating, gpu_unsupported=gpu, ops=counts,
                  metadata=embedded)


def _model_name(path, model) -> str:
    if path is not None:
        return os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return model.name


def load_tflite(path: str, threads: int = 2, **_: Any):
    """An :class:`keras_resnet.evaluate.Predictor` for a ``.tflite`` file: uint8 pixels in, probabilities out.

    Pixels are normalised as the embedded metadata says (input mean/std; 0/1 without metadata).
    """
    from keras_resnet.evaluate import Predictor

    try:
        model = TFLiteModel(path, threads)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"cannot load {path} as a TFLite model: {str(error).splitlines()[0]}") from None
    meta = None
    try:
        from keras_resnet.metadata import read_metadata

        meta = read_metadata(path)
    except ImportError:
        pass
    mean = np.asarray((meta or {}).get("input", {}).get("mean", [0.0]), np.float32)
    std = np.asarray((meta or {}).get("input", {}).get("std", [1.0]), np.float32)

    def predict(pixels: np.ndarray) -> np.ndarray:
        return model((pixels.astype(np.float32) - mean) / std)

    name = (meta or {}).get("model") or os.path.splitext(os.path.basename(path))[0]
    return Predictor(predict, model.input_shape, name, "tflite")


# ---- command line ------------------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def cli(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Convert a .keras model (float or QAT) to a validated .tflite file.")
    parser.add_argument("model", help="a Keras 3 .keras model, or a QAT model from `keras-resnet qat`")
    parser.add_argument("--output", "-o", required=True, help="the .tflite file to write")
    parser.add_argument("--quantize", choices=MODES, help="weights/activations: float32, float16, dynamic "
                        "(int8 weights) or int8 (full integer). Default: by --target; int8 for QAT models")
    parser.add_argument("--target", choices=TARGETS, default="cpu", help="cpu (default), gpu (float16 + GPU "
                        "delegate report) or edgetpu (full int8, batch 1, integer ops only)")
    parser.add_argument("--io-type", choices=IO_TYPES, help="int8 models' input/output type (default int8; "
                        "uint8 for edgetpu)")
    parser.add_argument("--calibration-data", help="images for int8 PTQ ranges: a dataset name (digits, "
                        "cifar10, ..., folder:PATH), an .npz with x, or 'random' (latency-only work)")
    parser.add_argument("--calibration-samples", type=int, default=200)
    parser.add_argument("--validation-data", help="held-out images to compare the .tflite with the Keras "
                        "model (default: the calibration dataset's val split, else random pixels)")
    parser.add_argument("--validation-samples", type=int, default=200)
    parser.add_argument("--data-dir", help="where the datasets live")
    parser.add_argument("--min-agreement", type=float, help="fail below this top-1 agreement with the Keras "
                        "model (default 0.99 float32/float16, 0.95 dynamic/int8)")
    parser.add_argument("--dataset", help="take class labels from this dataset for the metadata")
    parser.add_argument("--labels", help="a text file of class labels, one per line")
    parser.add_argument("--mean", type=_floats, help="per-channel pixel mean the model expects subtracted "
                        "(default 0: models with a normalization layer take raw pixels)")
    parser.add_argument("--std", type=_floats, help="per-channel pixel std (default 1)")
    parser.add_argument("--resize", choices=("stretch", "center_crop"), default="stretch",
                        help="how the runner should fit images to the input size (metadata)")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads for the latency figure")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument("--unsafe", action="store_true", help="allow Lambda layers (arbitrary code) in MODEL")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    labels = None
    if args.labels:
        try:
            with open(args.labels, encoding="utf-8") as f:
                labels = [line.strip() for line in f if line.strip()]
        except OSError as error:
            raise UserError(f"cannot read labels {args.labels}: {error.strerror}") from None
    report = convert(args.model, args.output, quantization=args.quantize, target=args.target,
                     io_type=args.io_type, calibration_data=args.calibration_data,
                     calibration_samples=args.calibration_samples, validation_data=args.validation_data,
                     validation_samples=args.validation_samples, data_dir=args.data_dir,
                     min_agreement=args.min_agreement, labels=labels, dataset=args.dataset, mean=args.mean,
                     std=args.std, resize=args.resize, threads=args.threads, force=args.force,
                     unsafe=args.unsafe)
    if args.json:
        import json

        print(json.dumps(asdict(report), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0
