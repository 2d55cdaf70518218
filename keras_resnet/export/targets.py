"""Target planning: what one conversion produces, decided once, up front, from the spec and the loaded model.

:func:`resolve_target` turns a :class:`~keras_resnet.spec.conversion.ConvertSpec` (target preset, explicit
``--quantize`` / ``--io-type``, quantizer and recipe) and the model (float or QAT) into a frozen
:class:`TargetPlan`: the converter's mode, the finished file's I/O type and batch, whether calibration images are
needed, the agreement threshold, how option A's subsampling and a whole-map average pooling are traced. Every
later step reads the plan; none decides again. Targets are presets:

``cpu``      any mode (default float32; int8 for a QAT model).
``gpu``      float16 weights, float32 I/O, plus the GPU delegate compatibility report (ops that would
             fall back to the CPU).
``edgetpu``  full int8 with int8/uint8 I/O, batch 1, TFLITE_BUILTINS_INT8 ops only; fails naming the
             ops if any tensor stays float.
``ethos-u55-128`` (every Vela accelerator config, ``ethos-u55-32`` … ``ethos-u85-2048``)
             Arm Ethos-U NPUs: full int8, int8 I/O, batch 1; compiled by Vela when installed
             (keras_resnet.export.ethos), refused when an op would run on the CPU.
``mcu``      TensorFlow Lite Micro: full int8, int8 I/O, batch 1; the file runs in TFLM, which must match
             LiteRT's reference kernels to 0 LSB, and its tensor arena is measured (keras_resnet.export.micro).
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet_edge.choices import ETHOS_U_TARGETS

from keras_resnet.core.errors import ConfigError
from keras_resnet.quant.tfmot_qat import is_qat_model
from keras_resnet.spec.conversion import AEQ_RECIPES, ConvertSpec

# float modes must be near-exact; int8/dynamic: 8-bit rounding flips the top-1 of ambiguous inputs (measured
# 97-100% on digits/ResNet-20 held-out images, 1 flip in 100 is one borderline image), so 0.95 catches real
# breakage (a wrong range, a float op gone wrong: agreement drops to chance) without failing on honest rounding.
MIN_AGREEMENT = {"float32": 0.99, "float16": 0.99, "dynamic": 0.95, "int8": 0.95}


@dataclass(frozen=True)
class TargetPlan:
    """What to produce, resolved from the spec and the model (see :func:`resolve_target`)."""

    target: str  # cpu | gpu | edgetpu | mcu | ethos-u*
    quantization: str  # the converter's mode; with ai-edge-quantizer: float32, the model it quantizes
    io_type: str  # the finished file's input/output type
    batch: int | None  # a fixed batch size (edgetpu: 1), else dynamic
    qat: bool  # a QAT model: int8 from its FakeQuant ranges, no calibration images
    calibrate: bool  # calibration images are needed (int8 PTQ, static aeq recipes, the aeq search)
    min_agreement: float  # the finished file's top-1 agreement with the Keras model must reach this
    subsample: str  # how option A's subsampling is traced (keras_resnet.model.blocks): see subsample_for()
    pool: str  # how an AveragePooling2D over its whole input is traced: see pool_for()
    recipe: str | None = None  # the ai-edge-quantizer recipe (``--quantizer aeq``), else None


def subsample_for(target: str, recipe: str | None = None) -> str:
    """How option A's subsampling is traced for ``target`` (:func:`keras_resnet.model.blocks.tflite_tracing`), the one
    place this is decided. ``space_to_depth`` (SPACE_TO_DEPTH + channel slice) keeps the cpu graph one XNNPACK
    partition and is within the Edge TPU compiler 16.0 table; Vela 5.2 has no SPACE_TO_DEPTH (measured, int8
    ResNet-20 on ethos-u55-128: 2 ops left on the CPU with it, every op on the NPU with ``max_pool``, a 1x1/2
    MAX_POOL_2D), and TFLite has no int16 SPACE_TO_DEPTH (ai-edge-quantizer's static_wi8_ai16)."""
    if target in ETHOS_U_TARGETS or recipe == "static_wi8_ai16":
        return "max_pool"
    return "space_to_depth"


POOL_TRACES = ("average_pool", "mean")


def pool_for(target: str, recipe: str | None = None) -> str:
    """How an AveragePooling2D whose window is its whole input (valid padding, a 1x1 output: the MLPerf Tiny ResNet-8
    head) is traced for ``target`` (:func:`keras_resnet.export.trace.traced_graph`), the one place this is decided.
    ``mean`` (MEAN over H and W, keepdims) for the converter's cpu files. Why: XNNPACK takes no int8 AVERAGE_POOL_2D,
    so that head split the int8 ResNet-8 into 2 XNNPACK partitions; as MEAN it is 1 (measured in LiteRT's
    Interpreter; Fashion-MNIST ResNet-8: float32 outputs within 1.2e-6 of the AVERAGE_POOL_2D file, int8 agreement
    with Keras 99.18% -> 99.28%, int8 latency 0.5-2% lower, 1 thread). ``average_pool`` (AVERAGE_POOL_2D, as Keras
    has it) everywhere else: Vela maps it onto Ethos-U (the MLPerf Tiny reference int8 file runs 100% on U55), and
    the gpu, edgetpu and mcu files stay as they were; ai-edge-quantizer's recipes (``recipe``) were not measured
    with MEAN."""
    return "mean" if target == "cpu" and recipe is None else "average_pool"


def is_qat(model) -> bool:
    """A tfmot (tf_keras) or native Keras 3 (:mod:`keras_resnet.quant.native_qat`) QAT model: int8 from its
    FakeQuant ranges."""
    if is_qat_model(model):
        return True
    if type(model).__module__.startswith("tf_keras"):
        return False
    from keras_resnet.quant.native_layers import is_native_qat

    return is_native_qat(model)


def resolve_target(spec: ConvertSpec, model) -> TargetPlan:
    """The :class:`TargetPlan` for ``spec`` and ``model``; ConfigError for choices that contradict each other or
    the model (a QAT model to float16, uint8 I/O for the GPU, ...)."""
    qat = is_qat(model)
    if spec.quantizer == "aeq":
        return _aeq_plan(spec, qat)
    quantization, io_type, batch = _converter_choice(spec, qat)
    threshold = MIN_AGREEMENT[quantization] if spec.min_agreement is None else spec.min_agreement
    return TargetPlan(target=spec.target, quantization=quantization, io_type=io_type, batch=batch, qat=qat,
                      calibrate=quantization == "int8" and not qat, min_agreement=threshold,
                      subsample=subsample_for(spec.target), pool=pool_for(spec.target))


def _converter_choice(spec: ConvertSpec, qat: bool) -> tuple[str, str, int | None]:
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
    elif spec.target in ETHOS_U_TARGETS:  # Vela: int8 (or int16) ops only; int8 I/O, static batch 1
        if quantization not in (None, "int8") or io_type not in (None, "int8"):
            raise ConfigError(f"target {spec.target} is full int8 with int8 I/O; drop --quantize/--io-type")
        quantization, batch, io_type = "int8", 1, "int8"
    elif spec.target == "mcu":  # TensorFlow Lite Micro (keras_resnet.export.micro): int8 kernels, int8 I/O
        if quantization not in (None, "int8") or io_type not in (None, "int8"):
            raise ConfigError("target mcu is full int8 with int8 I/O; drop --quantize/--io-type")
        quantization, batch, io_type = "int8", 1, "int8"
    else:
        quantization = quantization or ("int8" if qat else "float32")
        io_type = io_type or ("int8" if quantization == "int8" else "float32")
    if io_type != "float32" and quantization != "int8":
        raise ConfigError(f"--io-type {io_type} needs --quantize int8 (a {quantization} model has float32 I/O)")
    return quantization, io_type, batch


def _aeq_plan(spec: ConvertSpec, qat: bool) -> TargetPlan:
    """ai-edge-quantizer quantizes the converter's float32 file. I/O: static_wi8_ai8 keeps ai-edge-quantizer's
    int8 I/O unless told otherwise; static_wi8_ai16 would have int16 I/O, which resnet-edge (like most device code)
    does not feed, so it gets float32 I/O; dynamic and weight-only models have float activations anyway."""
    if qat:
        raise ConfigError("a QAT model is already quantized (it converts to int8 with the converter); "
                          "--quantizer aeq takes float models")
    recipe = spec.aeq_recipe or AEQ_RECIPES[0]
    return TargetPlan(
        target="cpu", quantization="float32", batch=None, qat=False, recipe=recipe,
        io_type=spec.io_type or ("int8" if recipe == "static_wi8_ai8" else "float32"),
        calibrate=recipe.startswith("static") or spec.max_accuracy_drop is not None,
        min_agreement=MIN_AGREEMENT["int8"] if spec.min_agreement is None else spec.min_agreement,
        subsample=subsample_for("cpu", recipe), pool=pool_for("cpu", recipe))
