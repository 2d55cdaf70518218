"""What every ResNet is, as data, with no Keras import: block options, the depth table and the named models.

This is the bottom layer of the package (``specs → blocks → build → data → training → export → cli``): the
command line lists models, checks options and prints help from here without loading Keras or TensorFlow.

- :class:`BlockOptions`: how a block is built (one value per model).
- :class:`Arch` and :data:`IMAGENET` / :func:`cifar_arch`: the depth table.
- :class:`ModelSpec` and :data:`MODELS`: every named model (``resnet50``, ``resnet20v2``, ``plain56``, ...) as an
  architecture plus the option defaults that differ from :class:`BlockOptions`, like Model Garden's
  ``RESNET_SPECS``; :mod:`keras_resnet.models` holds one function per entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from keras_resnet.errors import ConfigError

Shortcut = Literal["A", "B", "C"]
Skip = Literal["residual", "highway", "none"]
StrideOn = Literal["1x1", "3x3"]
Stem = Literal["imagenet", "deep", "cifar"]
BlockKind = Literal["basic", "bottleneck"]


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
    skip: "residual" adds the shortcut, "highway" gates it, "none" drops it (plain nets).
    stride_on: the conv that downsamples in a bottleneck: "1x1" (original, keras.applications) or
        "3x3" (v1.5). Basic blocks always stride on their first 3×3.
    avg_down: ResNet-D shortcut, 2×2 average pooling then a stride-1 1×1 projection.
    width: multiplier of the inner widths (Wide ResNets).
    use_bias: give every conv a bias (keras.applications v1); otherwise only convs not followed by BN.
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
    use_bias: bool = False
    zero_init: bool = False
    weight_decay: float = 0.0
    kernel_initializer: str = "he_uniform"  # He et al.'s variance (2/fan_in); uniform builds faster than normal
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        check_choice("shortcut", self.shortcut, ("A", "B", "C"))
        check_choice("skip", self.skip, ("residual", "highway", "none"))
        check_choice("stride_on", self.stride_on, ("1x1", "3x3"))
        for name in ("preact", "avg_down", "use_bias", "zero_init"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        for name in ("width", "weight_decay", "drop_path_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                    or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{name} must be a finite number; got {value!r}")
        if not self.width > 0:
            raise ConfigError(f"width must be positive; got {self.width}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if not 0 <= self.drop_path_rate < 1:
            raise ConfigError(f"drop_path_rate must be in [0, 1); got {self.drop_path_rate}")
        if not isinstance(self.kernel_initializer, str):
            raise ConfigError(f"kernel_initializer must be a Keras initializer name; got {self.kernel_initializer!r}")


OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BlockOptions))


@dataclass(frozen=True)
class Arch:
    """A depth table entry: block type, blocks per stage, base filters per stage, stem."""

    block: BlockKind
    blocks: tuple[int, ...]
    filters: tuple[int, ...] = (64, 128, 256, 512)
    stem: Stem = "imagenet"

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

    @property
    def cifar(self) -> bool:
        return self.arch.stem == "cifar"

    def describe(self) -> str:
        kind = "pre-activation " if self.options.get("preact") else ""
        skip = {"none": "plain (no shortcut) ", "highway": "highway "}.get(self.options.get("skip", ""), "")
        family = "CIFAR" if self.cifar else "ImageNet"
        return (f"{self.function}: {kind}{skip}{self.arch.block} {family} network, depth {self.arch.depth}, "
                f"blocks {self.arch.blocks}.")


_V1_KERAS = {"use_bias": True}  # keras.applications v1: a bias on every conv
_V2 = {"preact": True, "stride_on": "3x3"}


def _table() -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    for depth, arch in IMAGENET.items():
        weights = depth in (50, 101, 152)
        models[f"resnet{depth}"] = ModelSpec(f"ResNet{depth}", arch, _V1_KERAS, keras_weights=weights)
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", arch, _V2, stride_last=True, keras_weights=weights)
        models[f"plain{depth}"] = ModelSpec(f"Plain{depth}", arch, {**_V1_KERAS, "skip": "none"})
    cifar = {"classes": 10, "input_size": 32}
    for depth in CIFAR_DEPTHS:
        arch = cifar_arch(depth)
        models[f"resnet{depth}"] = ModelSpec(f"ResNet{depth}", arch, {"shortcut": "A"}, **cifar)
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", arch, {**_V2, "shortcut": "A"}, **cifar)
        models[f"plain{depth}"] = ModelSpec(f"Plain{depth}", arch, {"skip": "none"}, **cifar)
        models[f"highway{depth}"] = ModelSpec(f"Highway{depth}", arch, {"skip": "highway", "shortcut": "A"}, **cifar)
    for depth in CIFAR_BOTTLENECK_DEPTHS:
        models[f"resnet{depth}v2"] = ModelSpec(f"ResNet{depth}V2", cifar_arch(depth, "bottleneck"), _V2, **cifar)
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
