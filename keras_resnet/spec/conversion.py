"""A TFLite conversion's options (:class:`ConvertSpec`: ``keras-resnet convert``,
:func:`keras_resnet.export.convert.convert`) and a deployment-contract check's (:class:`CheckSpec`:
``keras-resnet check``).

The targets, resize modes and resize filters are resnet-edge's (:mod:`resnet_edge.choices`, which imports nothing):
the runner defines them once and the metadata written here must stay within them.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet_edge.choices import ETHOS_U_TARGETS, INTERPOLATIONS, RESIZE_MODES, TARGETS

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.fields import (
    DATASET_HELP,
    check_agreement,
    check_finite,
    check_positive_int,
    finite,
    floats,
    opt,
    patterns,
    positive_int,
    read_labels,
    shared,
)
from keras_resnet.spec.specs import check_choice

MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("int8", "uint8", "float32")
QUANTIZERS = ("tflite", "aeq")
# ai-edge-quantizer recipes (keras_resnet.export.aeq): int8 weights with int8 or int16 activations (static, calibrated),
# int8 weights with activations quantized at run time (dynamic), or int8 weights dequantized to float (weight-only).
AEQ_RECIPES = ("static_wi8_ai8", "static_wi8_ai16", "dynamic_wi8", "weight_only_wi8")


@dataclass
class ConvertSpec:
    """A TFLite conversion: what to produce, which data to calibrate and validate on, and the metadata."""

    quantization: str | None = opt(None, "float32, float16, dynamic (int8 weights) or int8 (full integer); "
                                         "default: by --target, int8 for QAT models", flag="--quantize",
                                   choices=MODES)
    target: str = opt("cpu", "cpu, gpu (float16 + GPU delegate report), edgetpu (full int8, batch 1, integer "
                             "ops only), mcu (TensorFlow Lite Micro: full int8, run in TFLM, tensor arena "
                             "measured) or ethos-u55-128 etc. (Arm Ethos-U NPUs: full int8, compiled by Vela "
                             "into OUT_vela.tflite when installed)", choices=TARGETS)
    io_type: str | None = opt(None, "int8 models' input/output type (default int8; uint8 for edgetpu; with "
                                    "--quantizer aeq: int8 for static_wi8_ai8, else float32)", choices=IO_TYPES)
    calibration_data: str | None = opt(None, "images for int8 PTQ ranges: a dataset name, an .npz with x, or "
                                             "'random' (latency-only work)")
    calibration_samples: int = opt(200, "calibration images", parse=positive_int)
    validation_data: str | None = opt(None, "held-out images to compare the .tflite with the Keras model "
                                            "(default: the calibration dataset's val split, else random pixels)")
    validation_samples: int = opt(200, "validation images", parse=positive_int)
    data_dir: str | None = shared("data_dir")
    min_agreement: float | None = shared("min_agreement")
    dataset: str | None = shared("dataset", help="take class labels from this dataset for the metadata: "
                                                 + DATASET_HELP)
    labels: tuple[str, ...] | None = opt(None, "a text file of class labels, one per line", metavar="FILE",
                                         parse=read_labels)
    mean: tuple[float, ...] | None = opt(None, "per-channel pixel mean the model expects subtracted (default 0: "
                                               "models with a normalization layer take raw pixels)", parse=floats)
    std: tuple[float, ...] | None = opt(None, "per-channel pixel std (default 1)", parse=floats)
    resize: str | None = opt(None, "how the runner should fit images to the input size (metadata); default: "
                                   "center_crop for a model with a recorded preprocessing (keras-resnet import), "
                                   "else stretch", choices=RESIZE_MODES)
    crop_fraction: float | None = opt(None, "center_crop keeps this fraction of the shorter side (metadata; default: "
                                            "the model's recorded crop_pct, else 0.875)", parse=finite)
    interpolation: str | None = opt(None, "the runner's resize filter (metadata; default: the model's recorded "
                                          "interpolation, else bilinear)", choices=INTERPOLATIONS)
    threads: int = opt(2, "interpreter threads for validation and the latency figure", parse=positive_int)
    name: str | None = opt(None, "the model name in the metadata (default: the file name)")
    allow_cpu_fallback: bool = opt(False, "--target ethos-u*: write the file even when Vela (or its table) leaves "
                                          "ops on the CPU instead of the NPU")
    # --target mcu (TensorFlow Lite Micro, keras_resnet.export.micro, docs/deploy.md "Microcontrollers")
    arena_budget: float | None = opt(None, "--target mcu: refuse the model (nothing written) when the tensor arena "
                                           "TFLM needs exceeds this many KiB", metavar="KIB", parse=finite)
    flash_budget: float | None = opt(None, "--target mcu: refuse the model (nothing written) when the file (flash) "
                                           "exceeds this many KiB", metavar="KIB", parse=finite)
    c_source: str | None = opt(None, "--target mcu: also write model_data.cc/.h (the file as an aligned C array) and "
                                     "model_ops.h (its MicroMutableOpResolver registrations) to this folder",
                               metavar="DIR")
    # ai-edge-quantizer (keras_resnet.export.aeq, docs/conversion.md "ai-edge-quantizer"); every option below needs it.
    quantizer: str = opt("tflite", "tflite: the TFLite converter quantizes (--quantize); aeq: convert to float32, "
                                   "then quantize with ai-edge-quantizer (--recipe; pip install "
                                   "'keras-resnets[aeq]')", choices=QUANTIZERS)
    aeq_recipe: str | None = opt(None, "--quantizer aeq recipe: static_wi8_ai8 (default), static_wi8_ai16 (both "
                                       "calibrated on --calibration-data), dynamic_wi8 or weight_only_wi8",
                                 flag="--recipe", choices=AEQ_RECIPES)
    int16: tuple[str, ...] | None = opt(None, "aeq static recipes: give these ops int16 activations (int8 weights); "
                                              "comma-separated regexes searched in the Keras layer names, plus "
                                              "'stem' (the first conv) and 'classifier' (the last dense layer)",
                                        metavar="PATTERNS", parse=patterns)
    keep_float: tuple[str, ...] | None = opt(None, "aeq: leave these ops in float32 (patterns as for --int16; "
                                                   "--keep-float wins where both match)",
                                             metavar="PATTERNS", parse=patterns)
    max_accuracy_drop: float | None = opt(None, "aeq static_wi8_ai8: search greedily for a mix within this many "
                                                "accuracy points of the Keras model on --validation-data: from all "
                                                "int8, promote conv/Add/dense ops to int16 activations, worst SNR "
                                                "first (then to float), and print size, latency and accuracy of "
                                                "each step beside the converter's int8", parse=finite)
    diagnostics: str | None = opt(None, "aeq: print per-layer SNR/MSE against float (every conv, Add and dense "
                                        "op, worst first) and write diagnostics.json and diagnostics.png to this "
                                        "folder (created if missing)", metavar="DIR")

    def __post_init__(self) -> None:
        if self.quantization is not None:
            check_choice("quantization", self.quantization, MODES)
        check_choice("quantizer", self.quantizer, QUANTIZERS)
        self._check_aeq()
        check_choice("target", self.target, TARGETS)
        if self.io_type is not None:
            check_choice("I/O type", self.io_type, IO_TYPES)
        if self.resize is not None:
            check_choice("resize", self.resize, RESIZE_MODES)
        if self.interpolation is not None:
            check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        if self.crop_fraction is not None and not 0.05 <= self.crop_fraction <= 1:
            raise ConfigError(f"--crop-fraction must be in [0.05, 1]; got {self.crop_fraction}")
        check_positive_int("convert", calibration_samples=self.calibration_samples,
                            validation_samples=self.validation_samples, threads=self.threads)
        check_agreement(self.min_agreement)
        self._check_mcu()
        if self.allow_cpu_fallback and self.target not in ETHOS_U_TARGETS:
            raise ConfigError(f"--allow-cpu-fallback needs an ethos-u target (--target ethos-u55-128, ...), "
                              f"not {self.target}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None:
                check_finite("convert", **{f"{name}[{i}]": v for i, v in enumerate(values)})
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"--std values must be > 0; got {list(self.std)}")

    def _check_mcu(self) -> None:
        given = {"--arena-budget": self.arena_budget, "--flash-budget": self.flash_budget,
                 "--c-source": self.c_source}
        if self.target != "mcu":
            named = [flag for flag, value in given.items() if value is not None]
            if named:
                raise ConfigError(f"{', '.join(named)} need{'s' if len(named) == 1 else ''} --target mcu")
            return
        for flag in ("--arena-budget", "--flash-budget"):
            if given[flag] is not None:
                check_finite("convert", **{flag[2:].replace("-", "_"): given[flag]})
                if given[flag] <= 0:
                    raise ConfigError(f"{flag} is in KiB, > 0; got {given[flag]}")

    def _check_aeq(self) -> None:
        aeq_only = {"--recipe": self.aeq_recipe, "--int16": self.int16, "--keep-float": self.keep_float,
                    "--max-accuracy-drop": self.max_accuracy_drop, "--diagnostics": self.diagnostics}
        if self.quantizer != "aeq":
            given = [flag for flag, value in aeq_only.items() if value is not None]
            if given:
                raise ConfigError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --quantizer aeq")
            return
        if self.aeq_recipe is not None:
            check_choice("aeq recipe", self.aeq_recipe, AEQ_RECIPES)
        recipe = self.aeq_recipe or AEQ_RECIPES[0]
        if self.quantization is not None:
            raise ConfigError("--quantizer aeq quantizes the float32 conversion itself: drop --quantize "
                              "(choose with --recipe)")
        if self.target != "cpu":
            raise ConfigError(f"--quantizer aeq makes cpu models: drop --target {self.target}")
        if self.io_type not in (None, "float32", "int8") or (self.io_type == "int8" and recipe != "static_wi8_ai8"):
            raise ConfigError(f"--quantizer aeq: --io-type {self.io_type} needs --recipe static_wi8_ai8 (int8 I/O) "
                              f"or is not supported; float32 I/O works with every recipe")
        for name in ("int16", "keep_float"):
            values = getattr(self, name)
            if values is not None and (isinstance(values, str) or not all(isinstance(v, str) and v
                                                                            for v in values)):
                raise ConfigError(f"{name.replace('_', ' ')}: expected a sequence of layer-name patterns; "
                                  f"got {values!r}")
        if self.int16 is not None and not recipe.startswith("static"):
            raise ConfigError(f"--int16 needs a static recipe (static_wi8_ai8); {recipe} has float activations")
        if self.max_accuracy_drop is not None:
            check_finite("convert", max_accuracy_drop=self.max_accuracy_drop)
            if self.max_accuracy_drop < 0:
                raise ConfigError(f"--max-accuracy-drop is in accuracy points, >= 0; got {self.max_accuracy_drop}")
            if recipe != "static_wi8_ai8":
                raise ConfigError(f"--max-accuracy-drop searches from all int8: it needs --recipe static_wi8_ai8 "
                                  f"(got {recipe})")


@dataclass
class CheckSpec:
    """A deployment-contract check of a ``.tflite`` file (``keras-resnet check``, the same as ``resnet-edge check``)."""

    target: str = opt("cpu", "cpu (XNNPACK), gpu (the GPU delegate), edgetpu (edgetpu_compiler 16.0), "
                             "mcu (TensorFlow Lite Micro's op table, int8 only) or ethos-u55-128 etc. (Vela 5.2's "
                             "table, and Vela when installed)",
                      choices=TARGETS)
    compiler: str | None = opt(None, "edgetpu_compiler to run for --target edgetpu, vela for --target ethos-u* "
                                     "(default: the one installed, if any)", metavar="PATH")
    run_compiler: bool = opt(True, "never run edgetpu_compiler or Vela", negate="--no-compiler")
    strict: bool = opt(False, "fail on fallbacks (ops that run elsewhere) too, not only on errors")

    def __post_init__(self) -> None:
        check_choice("target", self.target, TARGETS)
