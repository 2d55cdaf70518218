"""A training run's options: :class:`Recipe` (what defines the run, ``keras-resnet train``,
:func:`keras_resnet.train.loop.train`) and :class:`TrainRun` (how it is carried out), with the ``--recipe``
:data:`PRESETS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.fields import (
    DEFAULT_QAT_ENGINE,
    JIT_MODES,
    QAT_ENGINES,
    check_finite,
    check_positive_int,
    default_of,
    finite,
    key_value,
    opt,
    positive_int,
    shared,
)
from keras_resnet.spec.specs import OPTION_FIELDS, BlockOptions, check_choice

SCHEDULES = ("step", "cosine")
STRATEGIES = ("auto", "mirrored", "multiworker")
LOSSES = ("ce", "bce")
# --recipe presets: fields they set when left at their defaults. "modern": the ingredients of timm's "ResNet strikes
# back" A3 and torchvision's v2 recipe, kept with SGD (see docs/training.md, "Modern recipe options").
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "modern": {"schedule": "cosine", "warmup_epochs": 1.0, "label_smoothing": 0.1, "mixup_alpha": 0.2,
               "cutmix_alpha": 1.0, "ema_decay": 0.99, "randaugment_ops": 2, "randaugment_magnitude": 6.0,
               "builder_options": {"drop_path_rate": 0.05}},
}


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
                                       "input size)", parse=positive_int)
    bad_images: str = opt("skip", "corrupt or unreadable images in a folder dataset: skip them (counted) or refuse "
                          "the dataset", choices=("skip", "refuse"))
    epochs: int = opt(30, "training epochs", parse=positive_int)
    batch_size: int = opt(128, "global batch size, split over replicas", parse=positive_int)
    lr: float | None = opt(None, "peak learning rate (default: 0.1 × batch size / 128)", parse=finite)
    momentum: float = opt(0.9, "SGD momentum", parse=finite)
    weight_decay: float = opt(1e-4, "L2 weight decay on kernels", parse=finite)
    schedule: str = opt("step", "step: lr ÷10 at 50%% and 75%% of training; cosine: cosine decay to 0",
                        choices=SCHEDULES)
    warmup_epochs: float = opt(0.0, "train the first N epochs at lr × warm-up factor (He et al.'s ResNet-110 trick)",
                               parse=finite)
    warmup_factor: float = opt(0.1, "the warm-up learning rate as a fraction of the peak", parse=finite)
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy loss (0: none)", parse=finite)
    mixed_precision: bool = opt(False, "float16 compute, float32 variables (GPUs)")
    augment: bool = opt(True, "no pad/crop/flip augmentation", negate="--no-augment")
    seed: int = opt(0, "shuffling and augmentation seed", parse=int)
    limit: int | None = opt(None, "train on the first N training images only (quick trials)", parse=positive_int)
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
                                  "labels mixed alike (0: off; timm A3 0.1, torchvision v2 0.2)", parse=finite)
    cutmix_alpha: float = opt(0.0, "cutmix: paste a box of the reversed batch, lambda ~ Beta(alpha, alpha) "
                                   "(0: off; timm/torchvision 1.0)", parse=finite)
    mix_prob: float = opt(1.0, "probability of mixing a batch when mixup or cutmix is on", parse=finite)
    mix_switch_prob: float = opt(0.5, "with both mixup and cutmix on: probability of cutmix for a batch",
                                 parse=finite)
    ema_decay: float = opt(0.0, "keep an exponential moving average of the weights, updated every step with this "
                                "decay; validation, best.keras and last.keras use it (0: off)", parse=finite)
    randaugment_ops: int = opt(0, "RandAugment: N random ops per image (0: off)", parse=int)
    randaugment_magnitude: float = opt(9.0, "RandAugment magnitude M in [0, 10]", parse=finite)

    def __post_init__(self) -> None:
        check_choice("recipe preset", self.preset, tuple(PRESETS))
        self._apply_preset()
        check_positive_int("recipe", epochs=self.epochs, batch_size=self.batch_size, limit=self.limit,
                            image_size=self.image_size)
        self._check_modern()
        check_finite("recipe", lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
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
        defaults = {f.name: default_of(f) for f in dataclasses.fields(self)}
        for name, value in PRESETS[self.preset].items():
            if name == "builder_options":
                self.builder_options = {**value, **dict(self.builder_options)}
            elif getattr(self, name) == defaults[name]:
                setattr(self, name, value)

    def _check_modern(self) -> None:
        check_finite("recipe", mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
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
    jit: str = shared("jit", "auto")
    verbose: int = opt(1, "0 silent, 1 progress bar, 2 one line per epoch", parse=int, choices=(0, 1, 2))
    json: bool = shared("json", False)

    def __post_init__(self) -> None:
        if self.qat_epochs < 0:
            raise ConfigError(f"--qat-epochs must be >= 0; got {self.qat_epochs}")
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("--qat-engine", self.qat_engine, QAT_ENGINES)
        check_choice("--jit", self.jit, JIT_MODES)
