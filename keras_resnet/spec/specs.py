"""What every ResNet is, as data, with no Keras import: block options, the depth table and the named models.

This is the bottom layer of the package (``specs → blocks → build → data → training → export → cli``): the
command line lists models, checks options and prints help from here without loading Keras or TensorFlow.

- :class:`BlockOptions`: how a block is built (one value per model).
- :class:`Arch` and :data:`IMAGENET` / :func:`cifar_arch`: the depth table.
- :class:`ModelSpec` and :data:`MODELS`: every named model (``resnet50``, ``resnet20v2``, ``plain56``, ...) as an
  architecture plus the option defaults that differ from :class:`BlockOptions`, like Model Garden's
  ``RESNET_SPECS``; :mod:`keras_resnet.model.models` holds one function per entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from keras_resnet.core.errors import ConfigError

Shortcut = Literal["A", "B", "C"]
Skip = Literal["residual", "highway", "none"]
StrideOn = Literal["1x1", "3x3"]
Stem = Literal["imagenet", "deep", "cifar"]
Head = Literal["global", "flatten"]
BlockKind = Literal["basic", "bottleneck"]
ConvPadding = Literal["explicit", "same"]

BN_EPSILON = 1.001e-5  # keras.applications' value; the pretrained weights were trained with it
BN_MOMENTUM = 0.9  # as Torch/fb.resnet.torch; Keras' 0.99 lags far behind on short runs and small datasets


def normalize_name(name: str) -> str:
    """The lookup key of a model or dataset name: lower case, without ``-`` and ``_`` (``ResNet-50`` → ``resnet50``)."""
    return str(name).lower().replace("-", "").replace("_", "")


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


@dataclass(frozen=True)
class BlockOptions:
    """How a block is built; one value is shared by every block of a model.

    preact: pre-activation (v2: BN → ReLU → conv) instead of post-activation (v1: conv → BN → ReLU).
    shortcut: "A" strided subsample + zero-padded channels, "B" 1×1 projection where channels change,
        "C" projection on every block.
    shortcut_bn: normalise a v1 projection shortcut (1×1 conv → BN, keras.applications, torchvision); False: a bare
        1×1 conv with a bias (MLPerf Tiny's ResNet-8).
    skip: "residual" adds the shortcut, "highway" gates it, "none" drops it (plain nets).
    stride_on: the conv that downsamples in a bottleneck: "1x1" (original, keras.applications) or
        "3x3" (v1.5). Basic blocks always stride on their first 3×3.
    avg_down: ResNet-D shortcut, 2×2 average pooling then a stride-1 1×1 projection.
    width: multiplier of the inner widths (Wide ResNets).
    cardinality: groups of the bottleneck's 3×3 conv (ResNeXt); its width is
        ``floor(filters · base_width / 64) · cardinality`` as in timm and torchvision (``groups``, ``width_per_group``).
    base_width: bottleneck width per group at 64 filters (ResNeXt 32x4d: 4; Wide ResNet-50-2: 128).
    se_ratio: squeeze-and-excitation after the branch's last BN, before the add, with
        ``se_channels(out, se_ratio)`` hidden channels (timm's SEModule: 1/16, rounded to a multiple of 8); 0: none.
    use_bias: give every conv a bias (keras.applications v1); otherwise only convs not followed by BN.
    conv_padding: how convs that need padding (strided, and every 3×3 of a v2 block) pad: "explicit", a symmetric
        ZeroPadding2D then a "valid" conv (keras.applications, torchvision); "same", Keras's ``padding="same"``,
        which on even sizes puts a stride-2 conv's one extra row and column at the bottom and right only
        (TensorFlow's convention; the MLPerf Tiny reference): the same weights give different outputs.
    bn_epsilon, bn_momentum: every BatchNormalization's (Keras's own defaults: 1e-3 and 0.99).
    zero_init: start the branch at zero (last BN gamma in v1, last conv kernel in v2).
    weight_decay: L2 penalty ``weight_decay / 2 · ||w||²`` on kernels, whose gradient is ``weight_decay · w``.
    drop_path_rate: stochastic depth (Huang et al. 2016; timm's ``drop_path_rate``): in training, each residual
        branch is dropped for a whole sample with a rate rising linearly from 0 (first block) to this value (last
        block); identity at inference. 0: off.
    """

    preact: bool = False
    shortcut: Shortcut = "B"
    skip: Skip = "residual"
    stride_on: StrideOn = "1x1"
    avg_down: bool = False
    width: float = 1.0
    cardinality: int = 1
    base_width: int = 64
    se_ratio: float = 0.0
    use_bias: bool = False
    zero_init: bool = False
    weight_decay: float = 0.0
    kernel_initializer: str = "he_uniform"  # He et al.'s variance (2/fan_in); uniform builds faster than normal
    classifier_initializer: str = "glorot_uniform"  # the Dense classifier's (Keras's default)
    drop_path_rate: float = 0.0
    shortcut_bn: bool = True
    conv_padding: ConvPadding = "explicit"
    bn_epsilon: float = BN_EPSILON
    bn_momentum: float = BN_MOMENTUM

    def __post_init__(self) -> None:
        check_choice("shortcut", self.shortcut, ("A", "B", "C"))
        check_choice("skip", self.skip, ("residual", "highway", "none"))
        check_choice("stride_on", self.stride_on, ("1x1", "3x3"))
        check_choice("conv_padding", self.conv_padding, ("explicit", "same"))
        for name in ("preact", "avg_down", "use_bias", "zero_init", "shortcut_bn"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        for name in ("cardinality", "base_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        for name in ("width", "weight_decay", "se_ratio", "drop_path_rate", "bn_epsilon", "bn_momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                    or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{name} must be a finite number; got {value!r}")
        if not self.width > 0:
            raise ConfigError(f"width must be positive; got {self.width}")
        if not 0 <= self.se_ratio <= 1:
            raise ConfigError(f"se_ratio must be in [0, 1]; got {self.se_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if not 0 <= self.drop_path_rate < 1:
            raise ConfigError(f"drop_path_rate must be in [0, 1); got {self.drop_path_rate}")
        if not self.bn_epsilon > 0 or not 0 <= self.bn_momentum < 1:
            raise ConfigError(f"bn_epsilon must be > 0 and bn_momentum in [0, 1); got {self.bn_epsilon}, "
                              f"{self.bn_momentum}")
        for name in ("kernel_initializer", "classifier_initializer"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a Keras initializer name; got {getattr(self, name)!r}")


OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BlockOptions))


def se_channels(channels: int, ratio: float, divisor: int = 8) -> int:
    """Hidden channels of a squeeze-and-excitation unit: timm's ``make_divisible(channels · ratio, 8,
    round_limit=0)`` (timm/layers/squeeze_excite.py, helpers.py): the nearest multiple of 8, at least 8."""
    v = channels * ratio
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


@dataclass(frozen=True)
class Arch:
    """A depth table entry: block type, blocks per stage, base filters per stage, stem.

    ``stem_filters``: the stem's output channels when they differ from ``filters[0]`` (timm's 's' and 'e' deep
    stems end on 128; reduced-width copies of torchvision and timm models keep their 64-channel 7×7 stem).
    ``head``: how the classifier reads the last stage: "global", GlobalAveragePooling2D (keras.applications);
    "flatten", AveragePooling2D over the whole last map then Flatten (the MLPerf Tiny reference's layers; the same
    numbers on square inputs, and TFLite's AVERAGE_POOL_2D + RESHAPE instead of MEAN).
    """

    block: BlockKind
    blocks: tuple[int, ...]
    filters: tuple[int, ...] = (64, 128, 256, 512)
    stem: Stem = "imagenet"
    stem_filters: int | None = None
    head: Head = "global"

    def __post_init__(self) -> None:
        check_choice("head", self.head, ("global", "flatten"))

    @property
    def stem_width(self) -> int:
        return self.filters[0] if self.stem_filters is None else self.stem_filters

    @property
    def depth(self) -> int:
        return 2 + (2 if self.block == "basic" else 3) * sum(self.blocks)

    @property
    def total_stride(self) -> int:  # the stem's and the stages' downsampling together
        return (1 if self.stem == "cifar" else 4) * 2 ** (len(self.blocks) - 1)


IMAGENET: dict[int, Arch] = {
    18: Arch("basic", (2, 2, 2, 2)),
    34: Arch("basic", (3, 4, 6, 3)),
    50: Arch("bottleneck", (3, 4, 6, 3)),
    101: Arch("bottleneck", (3, 4, 23, 3)),
    152: Arch("bottleneck", (3, 8, 36, 3)),
    200: Arch("bottleneck", (3, 24, 36, 3)),
}
CIFAR_DEPTHS: tuple[int, ...] = (20, 32, 44, 56, 110, 1202)
CIFAR_BOTTLENECK_DEPTHS: tuple[int, ...] = (164, 1001)


def cifar_arch(depth: int, block: BlockKind = "basic") -> Arch:
    """He et al.'s CIFAR nets: depth 6n+2 (basic) or 9n+2 (bottleneck), 16/32/64 filters."""
    per_block = 2 if block == "basic" else 3
    n, rest = divmod(depth - 2, 3 * per_block)
    if rest or n < 1:
        raise ConfigError(
            f"CIFAR ResNet depth must be 6n+2 for basic blocks (20, 32, 44, 56, 110, 1202, ...) or 9n+2 for "
            f"bottleneck blocks (164, 1001, ...); got depth {depth} with {block} blocks"
        )
    return Arch(block, (n, n, n), (16, 32, 64), "cifar")


def imagenet_arch(depth: int) -> Arch:
    if depth not in IMAGENET:
        raise ConfigError(f"ImageNet ResNet depth must be one of {', '.join(map(str, IMAGENET))}; got {depth}")
    return IMAGENET[depth]


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its architecture and the defaults that differ from :class:`BlockOptions`."""

    function: str
    arch: Arch
    options: dict[str, Any] = field(default_factory=dict)
    stride_last: bool = False  # keras.applications V2 strides in the last block of a stage
    classes: int = 1000
    input_size: int = 224
    keras_weights: bool = False  # keras.applications publishes ImageNet weights for this exact model
    timm: str | None = None  # the timm / torchvision architecture this entry reproduces (io.torch_sources)
    about: str = ""  # one more sentence for describe(): the published model this entry reproduces

    @property
    def cifar(self) -> bool:
        return self.arch.stem == "cifar"

    def describe(self) -> str:
        kind = "pre-activation " if self.options.get("preact") else ""
        skip = {"none": "plain (no shortcut) ", "highway": "highway "}.get(self.options.get("skip", ""), "")
        family = "CIFAR" if self.cifar else "ImageNet"
        o = self.options
        extra = "".join([
            f" ResNeXt {o['cardinality']}x{o['base_width']}d (grouped 3x3 convs)." if o.get("cardinality", 1) > 1
            else "",
            f" Wide: bottleneck width x{o['base_width'] // 64}." if o.get("base_width", 64) > 64
            and o.get("cardinality", 1) == 1 else "",
            " Squeeze-and-excitation in every block." if o.get("se_ratio") else "",
            " ResNet-D: deep 3x3 stem, average-pool shortcuts." if o.get("avg_down") else "",
            f" timm's / torchvision's {self.timm} layout (stride on the 3x3, no conv biases)." if self.timm else "",
            f" {self.about}" if self.about else "",
        ])
        return (f"{self.function}: {kind}{skip}{self.arch.block} {family} network, depth {self.arch.depth}, "
                f"blocks {self.arch.blocks}.{extra}")


_V1_KERAS = {"use_bias": True}  # keras.applications v1: a bias on every conv
_V2 = {"preact": True, "stride_on": "3x3"}
_TORCH = {"stride_on": "3x3"}  # torchvision / timm: v1.5, convs without biases (the BlockOptions default)
# MLPerf Tiny's image-classification reference (mlcommons/tiny, benchmark/training/image_classification,
# keras_model.py, conv_filters=16): every conv with a bias, he_normal, padding="same" (strided convs included),
# 1×1 projection shortcuts without BN, Keras's BN defaults, a he_normal Dense after AveragePooling2D + Flatten.
_MLPERF_TINY = {"use_bias": True, "shortcut_bn": False, "conv_padding": "same", "bn_epsilon": 1e-3,
                "bn_momentum": 0.99, "kernel_initializer": "he_normal", "classifier_initializer": "he_normal"}


def _table() -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    for depth, arch in IMAGENET.items():
        weights = depth in (50, 101, 152)
        models[f"resnet{depth}"] = ModelSpec(f"ResNet{depth}", arch, _V1_KERAS, keras_weights=weights)
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", arch, _V2, stride_last=True, keras_weights=weights)
        models[f"plain{depth}"] = ModelSpec(f"Plain{depth}", arch, {**_V1_KERAS, "skip": "none"})
    cifar = {"classes": 10, "input_size": 32}
    models["resnet8"] = ModelSpec(
        "ResNet8", dataclasses.replace(cifar_arch(8), head="flatten"), _MLPERF_TINY, **cifar,
        about="MLPerf Tiny's image-classification reference, layer for layer.")
    for depth in CIFAR_DEPTHS:
        arch = cifar_arch(depth)
        models[f"resnet{depth}"] = ModelSpec(f"ResNet{depth}", arch, {"shortcut": "A"}, **cifar)
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", arch, {**_V2, "shortcut": "A"}, **cifar)
        models[f"plain{depth}"] = ModelSpec(f"Plain{depth}", arch, {"skip": "none"}, **cifar)
        models[f"highway{depth}"] = ModelSpec(f"Highway{depth}", arch, {"skip": "highway", "shortcut": "A"}, **cifar)
    for depth in CIFAR_BOTTLENECK_DEPTHS:
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", cifar_arch(depth, "bottleneck"), _V2, **cifar)
    # timm / torchvision variants (keras_resnet.io.hub imports their weights): v1.5 strides, no conv biases.
    for depth in (50, 101):
        deep = dataclasses.replace(IMAGENET[depth], stem="deep")
        models[f"resnet{depth}d"] = ModelSpec(f"ResNet{depth}D", deep, {**_TORCH, "avg_down": True},
                                              timm=f"resnet{depth}d")
        models[f"seresnet{depth}"] = ModelSpec(f"SEResNet{depth}", IMAGENET[depth], {**_TORCH, "se_ratio": 1 / 16},
                                               timm=f"seresnet{depth}")
        models[f"wideresnet{depth}2"] = ModelSpec(f"WideResNet{depth}_2", IMAGENET[depth],
                                                  {**_TORCH, "base_width": 128}, timm=f"wide_resnet{depth}_2")
    for depth, (groups, width) in ((50, (32, 4)), (101, (32, 8))):
        models[f"resnext{depth}{groups}x{width}d"] = ModelSpec(
            f"ResNeXt{depth}_{groups}x{width}d", IMAGENET[depth],
            {**_TORCH, "cardinality": groups, "base_width": width}, timm=f"resnext{depth}_{groups}x{width}d")
    return models


MODELS: dict[str, ModelSpec] = _table()

# Shorthands for the common ImageNet variants (Bag of Tricks naming).
VARIANTS: dict[str, dict[str, Any]] = {
    "v1": {},
    "v1.5": {"stride_on": "3x3"},
    "c": {"stride_on": "3x3", "stem": "deep"},
    "d": {"stride_on": "3x3", "stem": "deep", "avg_down": True},
}


def model_spec(name: str) -> tuple[str, ModelSpec]:
    """``(key, spec)`` of a named model; ``name`` is matched after :func:`normalize_name`."""
    key = normalize_name(name)
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return key, MODELS[key]


def resolve_options(spec: ModelSpec, variant: str = "v1", **options: Any) -> tuple[BlockOptions, str | None, bool]:
    """``(block options, stem override, is the default variant)`` for a named model and user overrides."""
    if variant not in VARIANTS or (spec.cifar and variant != "v1"):
        allowed = "'v1'" if spec.cifar else ", ".join(map(repr, VARIANTS))
        raise ConfigError(f"variant must be one of {allowed} for {spec.function}; got {variant!r}")
    fields = {*OPTION_FIELDS, "stem"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {spec.function}; choose from {sorted(fields)}")
    merged = {**spec.options, **VARIANTS[variant], **options}
    stem = merged.pop("stem", None)
    if stem is not None:
        check_choice("stem", stem, ("imagenet", "deep", "cifar"))
    return BlockOptions(**merged), stem, merged == spec.options and stem is None
