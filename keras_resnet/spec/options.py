"""One definition per option: the dataclasses that are the Python API, and the command line generated from them.

Each field carries its command-line help in ``metadata["cli"]`` (:func:`opt`); :func:`add_arguments` turns a
dataclass into argparse options and :func:`from_args` back into an instance. Flags that several commands share
(``--dataset``, ``--data-dir``, ``--output``, ``--force``, ``--unsafe``, ``--json``) are defined once, in
:data:`SHARED`. Nothing here imports Keras or TensorFlow: ``keras-resnet SUB --help`` is instant.

- :class:`Recipe`: what defines a training run (``keras-resnet train``, :func:`keras_resnet.train.loop.train`).
- :class:`ConvertSpec`: a TFLite conversion (``keras-resnet convert``, :func:`keras_resnet.export.convert.convert`).
- :class:`QATSpec`, :class:`EvalSpec`, :class:`DemoSettings`: ``qat``, ``evaluate`` and ``demo``.
- :class:`ImportSpec`: ``keras-resnet import`` (:mod:`keras_resnet.io.hub`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.specs import OPTION_FIELDS, BlockOptions, check_choice

DATASET_HELP = ("digits (bundled), fashion-mnist, cifar10, cifar100, or folder:PATH (one sub-folder of images per "
                "class)")
SCHEDULES = ("step", "cosine")
STRATEGIES = ("auto", "mirrored", "multiworker")
MODES = ("float32", "float16", "dynamic", "int8")
TARGETS = ("cpu", "gpu", "edgetpu")
IO_TYPES = ("int8", "uint8", "float32")
SPLITS = ("train", "val", "test")
RESIZE = ("stretch", "center_crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # resnet-edge's resize filters (resnet_edge.preprocess)
LOSSES = ("ce", "bce")
QUANTIZERS = ("tflite", "aeq")
# ai-edge-quantizer recipes (keras_resnet.export.aeq): int8 weights with int8 or int16 activations (static, calibrated),
# int8 weights with activations quantized at run time (dynamic), or int8 weights dequantized to float (weight-only).
AEQ_RECIPES = ("static_wi8_ai8", "static_wi8_ai16", "dynamic_wi8", "weight_only_wi8")
# --recipe presets: fields they set when left at their defaults. "modern": the ingredients of timm's "ResNet strikes
# back" A3 and torchvision's v2 recipe, kept with SGD (see docs/training.md, "Modern recipe options").
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "modern": {"schedule": "cosine", "warmup_epochs": 1.0, "label_smoothing": 0.1, "mixup_alpha": 0.2,
               "cutmix_alpha": 1.0, "ema_decay": 0.99, "randaugment_ops": 2, "randaugment_magnitude": 6.0,
               "builder_options": {"drop_path_rate": 0.05}},
}
QAT_ENGINES = ("tfmot", "keras")
# The QAT engine of `keras-resnet qat --engine`, `keras-resnet train --qat-engine` and the demo (one default for all).
# The native engine met issue 12's accuracy targets against float and tfmot on ResNet-20, ResNet-20V2 and ResNet-56
# (Fashion-MNIST, docs/results.md stage q); tfmot stays selectable as the reference.
DEFAULT_QAT_ENGINE = "keras"


@dataclass(frozen=True)
class Flag:
    """How a dataclass field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name
    short: str | None = None
    metavar: str | None = None
    choices: tuple | None = None
    parse: Callable[[str], Any] | None = None  # default: the type of the field's default
    positional: bool = False
    required: bool = False
    repeat: bool = False  # may be given several times; the values are collected
    negate: str | None = None  # for a field that defaults to True: the flag that turns it off


def opt(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, **flag: Any) -> Any:
    """A dataclass field with command-line help (see :class:`Flag`)."""
    meta = {"cli": Flag(help, **flag)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def floats(text: str) -> tuple[float, ...]:
    """``"1,2.5,3"`` → ``(1.0, 2.5, 3.0)`` (finite values only)."""
    return tuple(_finite(v) for v in text.split(","))


def patterns(text: str) -> tuple[str, ...]:
    """``"stem,conv4_.*_2_conv"`` → ``("stem", "conv4_.*_2_conv")`` (comma-separated, none empty)."""
    values = tuple(v.strip() for v in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer-name patterns; got {text!r}")
    return values


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (``zero_init=true``), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; got {text!r}")
    if key not in OPTION_FIELDS and key != "stem":
        raise argparse.ArgumentTypeError(f"unknown builder option {key!r}; choose from {', '.join(OPTION_FIELDS)}, stem")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def read_labels(path: str) -> tuple[str, ...]:
    """Class labels from a text file, one per line (blank lines skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise argparse.ArgumentTypeError(f"cannot read labels {path}: {error}") from error


SHARED: dict[str, Flag] = {
    "dataset": Flag(DATASET_HELP),
    "data_dir": Flag("where the dataset's files are (CIFAR python batches, Fashion-MNIST IDX files, image folder)",
                     metavar="DIR"),
    "output": Flag("where to write the result", short="-o"),
    "force": Flag("overwrite the output if it exists"),
    "unsafe": Flag("allow model files with layers that run code (Lambda, unknown classes); only for files you trust"),
    "json": Flag("also print the result as one JSON object on the last line"),
    "qat_engine": Flag("keras: native Keras 3 QAT (keras_resnet.quant.qat), any backend, writes .keras; tfmot: "
                       "tensorflow-model-optimization on a tf_keras twin, TensorFlow only, writes .h5",
                       choices=QAT_ENGINES),
    "min_agreement": Flag("refuse a .tflite whose top-1 agreement with the Keras model is below this, in [0, 1] "
                          "(default 0.99 float32/float16, 0.95 dynamic/int8)", parse=_finite),
}


def shared(name: str, default: Any = None, **changes: Any) -> Any:
    """A field using the shared definition of ``--name`` (``changes``: e.g. ``required=True``)."""
    return field(default=default, metadata={"cli": dataclasses.replace(SHARED[name], **changes)})


def _check_finite(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{owner}: {name.replace('_', ' ')} must be a finite number; got {value!r}")


def _check_agreement(value: float | None) -> None:
    _check_finite("convert", min_agreement=value)
    if value is not None and not 0 <= value <= 1:
        raise ConfigError(f"--min-agreement must be in [0, 1]; got {value}")


def _check_positive_int(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{owner}: {name.replace('_', ' ')} must be a positive integer; got {value!r}")


# ---- commands' options ---------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """The arguments that define a training run (saved in ``summary.json``; a resumed run must match them)."""

    model: str = opt("resnet20", "a name from `keras-resnet models`")
    init: str | None = opt(None, "fine-tune: start from this Keras 3 model file (e.g. from `keras-resnet import`) "
                                 "instead of --model's random weights; its input normalization is kept, its "
                                 "classifier replaced when the dataset has another class count", metavar="MODEL.keras")
    dataset: str = shared("dataset", "digits")
    data_dir: str | None = shared("data_dir")
    image_size: int | None = opt(None, "resize folder images to this size (default: 32; with --init the model's "
                                       "input size)", parse=_positive_int)
    bad_images: str = opt("skip", "corrupt or unreadable images in a folder dataset: skip them (counted) or refuse "
                          "the dataset", choices=("skip", "refuse"))
    epochs: int = opt(30, "training epochs", parse=_positive_int)
    batch_size: int = opt(128, "global batch size, split over replicas", parse=_positive_int)
    lr: float | None = opt(None, "peak learning rate (default: 0.1 × batch size / 128)", parse=_finite)
    momentum: float = opt(0.9, "SGD momentum", parse=_finite)
    weight_decay: float = opt(1e-4, "L2 weight decay on kernels", parse=_finite)
    schedule: str = opt("step", "step: lr ÷10 at 50%% and 75%% of training; cosine: cosine decay to 0",
                        choices=SCHEDULES)
    warmup_epochs: float = opt(0.0, "train the first N epochs at lr × warm-up factor (He et al.'s ResNet-110 trick)",
                               parse=_finite)
    warmup_factor: float = opt(0.1, "the warm-up learning rate as a fraction of the peak", parse=_finite)
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy loss (0: none)", parse=_finite)
    mixed_precision: bool = opt(False, "float16 compute, float32 variables (GPUs)")
    augment: bool = opt(True, "no pad/crop/flip augmentation", negate="--no-augment")
    seed: int = opt(0, "shuffling and augmentation seed", parse=int)
    limit: int | None = opt(None, "train on the first N training images only (quick trials)", parse=_positive_int)
    builder_options: dict[str, Any] = opt(help="a builder option, e.g. --option zero_init=true --option "
                                               "shortcut=B, --option drop_path_rate=0.05 (stochastic depth) "
                                               "(repeatable)", factory=dict, flag="--option",
                                          metavar="KEY=VALUE", parse=key_value, repeat=True)
    # The modern recipe (docs/training.md): every option off by default, so the default stays the paper's recipe.
    preset: str = opt("paper", "a bundle of options: modern = cosine, 1 warm-up epoch, label smoothing 0.1, "
                               "mixup 0.2 / cutmix 1.0, drop_path_rate 0.05, EMA 0.99, RandAugment 2 ops at "
                               "magnitude 6; options given explicitly (not at their default) win",
                      flag="--recipe", choices=tuple(PRESETS))
    loss: str = opt("ce", "ce: softmax cross-entropy; bce: binary cross-entropy on each class's probability "
                          "against one-hot/soft targets (timm A1-A3 style)", choices=LOSSES)
    mixup_alpha: float = opt(0.0, "mixup: blend each batch with itself reversed, lambda ~ Beta(alpha, alpha), "
                                  "labels mixed alike (0: off; timm A3 0.1, torchvision v2 0.2)", parse=_finite)
    cutmix_alpha: float = opt(0.0, "cutmix: paste a box of the reversed batch, lambda ~ Beta(alpha, alpha) "
                                   "(0: off; timm/torchvision 1.0)", parse=_finite)
    mix_prob: float = opt(1.0, "probability of mixing a batch when mixup or cutmix is on", parse=_finite)
    mix_switch_prob: float = opt(0.5, "with both mixup and cutmix on: probability of cutmix for a batch",
                                 parse=_finite)
    ema_decay: float = opt(0.0, "keep an exponential moving average of the weights, updated every step with this "
                                "decay; validation, best.keras and last.keras use it (0: off)", parse=_finite)
    randaugment_ops: int = opt(0, "RandAugment: N random ops per image (0: off)", parse=int)
    randaugment_magnitude: float = opt(9.0, "RandAugment magnitude M in [0, 10]", parse=_finite)

    def __post_init__(self) -> None:
        check_choice("recipe preset", self.preset, tuple(PRESETS))
        self._apply_preset()
        _check_positive_int("recipe", epochs=self.epochs, batch_size=self.batch_size, limit=self.limit,
                            image_size=self.image_size)
        self._check_modern()
        _check_finite("recipe", lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      warmup_epochs=self.warmup_epochs, warmup_factor=self.warmup_factor,
                      label_smoothing=self.label_smoothing)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"learning rate must be positive; got {self.lr}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("weight decay must be >= 0 and momentum in [0, 1)")
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("bad_images", self.bad_images, ("skip", "refuse"))
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warm-up epochs must be in [0, epochs); got {self.warmup_epochs}")
        if not 0 < self.warmup_factor <= 1:
            raise ConfigError(f"warm-up factor must be in (0, 1]; got {self.warmup_factor}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label smoothing must be in [0, 1); got {self.label_smoothing}")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"image size must be at least 8; got {self.image_size}")
        if self.init is not None and (self.mixed_precision or self.builder_options):
            raise ConfigError("--init fine-tunes the model file as it is: --mixed-precision and --option do not "
                              "apply to it")
        if not isinstance(self.builder_options, dict):
            self.builder_options = dict(self.builder_options)
        unknown = sorted(set(self.builder_options) - {*OPTION_FIELDS, "stem"})
        if unknown:
            raise ConfigError(f"unknown builder option(s) {unknown}; choose from {', '.join(OPTION_FIELDS)}, stem")
        BlockOptions(**{k: v for k, v in self.builder_options.items() if k != "stem"})  # types and ranges, early

    def _apply_preset(self) -> None:
        """Set the preset's fields that are still at their defaults (explicit values win; idempotent)."""
        defaults = {f.name: _default(f) for f in dataclasses.fields(self)}
        for name, value in PRESETS[self.preset].items():
            if name == "builder_options":
                self.builder_options = {**value, **dict(self.builder_options)}
            elif getattr(self, name) == defaults[name]:
                setattr(self, name, value)

    def _check_modern(self) -> None:
        _check_finite("recipe", mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
                      mix_prob=self.mix_prob, mix_switch_prob=self.mix_switch_prob, ema_decay=self.ema_decay,
                      randaugment_magnitude=self.randaugment_magnitude)
        check_choice("loss", self.loss, LOSSES)
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ConfigError("mixup and cutmix alphas must be >= 0 (0: off)")
        for name in ("mix_prob", "mix_switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be in [0, 1]; got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"EMA decay must be in [0, 1) (0: off); got {self.ema_decay}")
        if isinstance(self.randaugment_ops, bool) or not isinstance(self.randaugment_ops, int) \
                or self.randaugment_ops < 0:
            raise ConfigError(f"RandAugment ops must be an integer >= 0; got {self.randaugment_ops!r}")
        if not 0 <= self.randaugment_magnitude <= 10:
            raise ConfigError(f"RandAugment magnitude must be in [0, 10]; got {self.randaugment_magnitude}")

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def one_hot(self) -> bool:
        """Whether the loss takes one-hot (soft) targets: label smoothing, mixup/cutmix or BCE."""
        return bool(self.label_smoothing) or self.mixes or self.loss == "bce"

    def base_lr(self) -> float:
        return self.lr if self.lr is not None else 0.1 * self.batch_size / 128


@dataclass
class TrainRun:
    """How a training run is carried out, beyond its :class:`Recipe` (these may change on a resume)."""

    output: str | None = shared("output", help="output folder (default: runs/MODEL-DATASET)")
    strategy: str = opt("auto", "auto: multi-worker if TF_CONFIG lists several tasks, mirrored on several GPUs, "
                                "else one device; mirrored: all local GPUs; multiworker: one process per machine "
                                "(TF_CONFIG)", choices=STRATEGIES)
    qat_epochs: int = opt(0, "afterwards, fine-tune a quantization-aware copy of best.keras for N epochs into "
                             "OUTPUT/qat.keras (--qat-engine keras) or OUTPUT/qat.h5 (--qat-engine tfmot), for "
                             "`keras-resnet convert`", parse=int)
    qat_engine: str = shared("qat_engine", DEFAULT_QAT_ENGINE)
    verbose: int = opt(1, "0 silent, 1 progress bar, 2 one line per epoch", parse=int, choices=(0, 1, 2))
    json: bool = shared("json", False)

    def __post_init__(self) -> None:
        if self.qat_epochs < 0:
            raise ConfigError(f"--qat-epochs must be >= 0; got {self.qat_epochs}")
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("--qat-engine", self.qat_engine, QAT_ENGINES)


@dataclass
class ConvertSpec:
    """A TFLite conversion: what to produce, which data to calibrate and validate on, and the metadata."""

    quantization: str | None = opt(None, "float32, float16, dynamic (int8 weights) or int8 (full integer); "
                                         "default: by --target, int8 for QAT models", flag="--quantize",
                                   choices=MODES)
    target: str = opt("cpu", "cpu, gpu (float16 + GPU delegate report) or edgetpu (full int8, batch 1, integer "
                             "ops only)", choices=TARGETS)
    io_type: str | None = opt(None, "int8 models' input/output type (default int8; uint8 for edgetpu; with "
                                    "--quantizer aeq: int8 for static_wi8_ai8, else float32)", choices=IO_TYPES)
    calibration_data: str | None = opt(None, "images for int8 PTQ ranges: a dataset name, an .npz with x, or "
                                             "'random' (latency-only work)")
    calibration_samples: int = opt(200, "calibration images", parse=_positive_int)
    validation_data: str | None = opt(None, "held-out images to compare the .tflite with the Keras model "
                                            "(default: the calibration dataset's val split, else random pixels)")
    validation_samples: int = opt(200, "validation images", parse=_positive_int)
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
                                   "else stretch", choices=RESIZE)
    crop_fraction: float | None = opt(None, "center_crop keeps this fraction of the shorter side (metadata; default: "
                                            "the model's recorded crop_pct, else 0.875)", parse=_finite)
    interpolation: str | None = opt(None, "the runner's resize filter (metadata; default: the model's recorded "
                                          "interpolation, else bilinear)", choices=INTERPOLATIONS)
    threads: int = opt(2, "interpreter threads for validation and the latency figure", parse=_positive_int)
    name: str | None = opt(None, "the model name in the metadata (default: the file name)")
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
                                                "each step beside the converter's int8", parse=_finite)
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
            check_choice("resize", self.resize, RESIZE)
        if self.interpolation is not None:
            check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        if self.crop_fraction is not None and not 0.05 <= self.crop_fraction <= 1:
            raise ConfigError(f"--crop-fraction must be in [0.05, 1]; got {self.crop_fraction}")
        _check_positive_int("convert", calibration_samples=self.calibration_samples,
                            validation_samples=self.validation_samples, threads=self.threads)
        _check_agreement(self.min_agreement)
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None:
                _check_finite("convert", **{f"{name}[{i}]": v for i, v in enumerate(values)})
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"--std values must be > 0; got {list(self.std)}")

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
            _check_finite("convert", max_accuracy_drop=self.max_accuracy_drop)
            if self.max_accuracy_drop < 0:
                raise ConfigError(f"--max-accuracy-drop is in accuracy points, >= 0; got {self.max_accuracy_drop}")
            if recipe != "static_wi8_ai8":
                raise ConfigError(f"--max-accuracy-drop searches from all int8: it needs --recipe static_wi8_ai8 "
                                  f"(got {recipe})")


@dataclass
class CheckSpec:
    """A deployment-contract check of a ``.tflite`` file (``keras-resnet check``, the same as ``resnet-edge check``)."""

    target: str = opt("cpu", "cpu (XNNPACK), gpu (the GPU delegate) or edgetpu (edgetpu_compiler 16.0)",
                      choices=TARGETS)
    compiler: str | None = opt(None, "edgetpu_compiler to run for --target edgetpu (default: the one on PATH, if any)",
                               metavar="PATH")
    run_compiler: bool = opt(True, "never run edgetpu_compiler", negate="--no-compiler")
    strict: bool = opt(False, "fail on fallbacks (ops that run elsewhere) too, not only on errors")

    def __post_init__(self) -> None:
        check_choice("target", self.target, TARGETS)


@dataclass
class QATSpec:
    """Quantization-aware fine-tuning of a trained model (``keras-resnet qat``)."""

    dataset: str = shared("dataset", required=True, help="dataset to fine-tune on: " + DATASET_HELP)
    data_dir: str | None = shared("data_dir")
    epochs: int = opt(2, "fine-tuning epochs", parse=int)
    batch_size: int = opt(64, "batch size", parse=_positive_int)
    learning_rate: float = opt(1e-3, "SGD learning rate", parse=_finite)
    engine: str = shared("qat_engine", DEFAULT_QAT_ENGINE)

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, QAT_ENGINES)
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0; got {self.epochs!r}")
        _check_positive_int("qat", batch_size=self.batch_size)
        _check_finite("qat", learning_rate=self.learning_rate)
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be positive; got {self.learning_rate}")


@dataclass
class EvalSpec:
    """What to evaluate a model on (``keras-resnet evaluate``)."""

    dataset: str = shared("dataset", "digits")
    data_dir: str | None = shared("data_dir")
    split: str = opt("test", "dataset split", choices=SPLITS)
    batch_size: int = opt(128, "batch size", parse=_positive_int)
    limit: int | None = opt(None, "evaluate the first N images only", parse=_positive_int)

    def __post_init__(self) -> None:
        check_choice("split", self.split, SPLITS)
        _check_positive_int("evaluate", batch_size=self.batch_size, limit=self.limit)


@dataclass
class DemoSettings:
    """``keras-resnet demo``: train, QAT, four TFLite formats and the device runner, on bundled data."""

    model: str = opt("resnet20", "a name from `keras-resnet models`")
    dataset: str = shared("dataset", "digits")
    data_dir: str | None = shared("data_dir")
    epochs: int = opt(12, "float training epochs (cosine schedule, label smoothing 0.1)", parse=_positive_int)
    qat_epochs: int = opt(1, "QAT fine-tuning epochs", parse=int)
    batch_size: int = opt(64, "batch size", parse=_positive_int)
    output: str = shared("output", "demo-output", help="folder for models, table and plots")
    threads: int = opt(2, "interpreter threads", parse=_positive_int)
    runs: int = opt(50, "timed runs per latency figure", parse=_positive_int)
    min_agreement: float | None = shared("min_agreement", help="passed to every conversion (lower it only for barely "
                                                               "trained models, e.g. --epochs 1 smoke runs)")

    def __post_init__(self) -> None:
        _check_agreement(self.min_agreement)
        _check_positive_int("demo", epochs=self.epochs, batch_size=self.batch_size, threads=self.threads,
                            runs=self.runs)
        if not isinstance(self.qat_epochs, int) or self.qat_epochs < 0:
            raise ConfigError(f"--qat-epochs must be >= 0; got {self.qat_epochs!r}")


@dataclass
class ImportSpec:
    """``keras-resnet import``: pretrained timm / torchvision weights into a Keras model (:mod:`keras_resnet.io.hub`)."""

    source: str = opt(None, "SOURCE:ARCH[.TAG]: timm:resnet50d, timm:resnet50.a1_in1k, torchvision:resnext50_32x4d, "
                            "... (see docs/pretrained.md)", positional=True)
    weights: str | None = opt(None, "the weights file (.safetensors, or .pth/.bin from torch.save); default: download "
                                    "it with the source's hub client (needs the network)", metavar="FILE")
    output: str = shared("output", None, required=True, help="the .keras model to write (the preprocessing goes "
                                                              "next to it, OUTPUT minus .keras + .preprocessing.json)")
    force: bool = shared("force", False)
    logits: bool = opt(False, "end the model on logits (no softmax), as the PyTorch model does")

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or ":" not in self.source:
            raise ConfigError(f"expected SOURCE:ARCH, e.g. timm:resnet50d or torchvision:resnet50; got {self.source!r}")

    @property
    def classifier_activation(self) -> str | None:
        return None if self.logits else "softmax"


# ---- dataclass <-> argparse --------------------------------------------------------------------------------


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one argparse option per field of ``cls`` that has a :class:`Flag` (``skip``: field names to leave out)."""
    for f in dataclasses.fields(cls):
        flag: Flag | None = f.metadata.get("cli")
        if flag is None or f.name in skip:
            continue
        default = _default(f)
        help_ = flag.help
        if default not in (None, False, True, {}, ()) and "default" not in help_:
            help_ += f" (default: {default})"
        if flag.positional:
            parser.add_argument(f.name, help=help_, metavar=flag.metavar)
            continue
        names = [flag.flag or "--" + f.name.replace("_", "-")] + ([flag.short] if flag.short else [])
        if isinstance(default, bool):
            if default:
                parser.add_argument(flag.negate or f"--no-{f.name.replace('_', '-')}", dest=f.name,
                                    action="store_false", help=help_)
            else:
                parser.add_argument(*names, dest=f.name, action="store_true", help=help_)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_, "metavar": flag.metavar}
        if flag.choices is not None:
            kwargs["choices"] = flag.choices
        kwargs["type"] = flag.parse or (type(default) if default is not None else str)
        if flag.repeat:
            kwargs.update(action="append", default=[])
        elif flag.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(*names, **kwargs)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from parsed arguments (fields the parser lacks keep their defaults)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        flag = f.metadata.get("cli")
        if flag is not None and flag.repeat and isinstance(_default(f), dict):
            value = dict(value)
        values[f.name] = value
    return cls(**{**values, **extra})
