"""Import timm and torchvision ResNet weights into keras_resnet models: ``keras-resnet import timm:resnet50d``.

The architectures are the package's own (:func:`keras_resnet.model.build.ResNet` with :class:`BlockOptions`: v1.5
strides, ``avg_down``, ``cardinality``/``base_width``, ``se_ratio``), so the imported model is plain Keras layers that
QAT and TFLite see one by one. Weights come from a ``.safetensors`` or ``.pth`` file read by
:mod:`keras_resnet.io.weights` (numpy only, no torch, no code from the file) and are mapped by name:

=========================================  =============================================
PyTorch (timm / torchvision)               keras_resnet layer
=========================================  =============================================
``conv1`` / ``bn1``                        ``conv1_conv`` / ``conv1_bn``
``conv1.0/.1/.3/.4/.6`` + ``bn1`` (deep)   ``conv1_{1,2,3}_conv`` / ``_bn``
``layer{s}.{b}.conv{i}`` / ``.bn{i}``      ``conv{s+1}_block{b+1}_{i}_conv`` / ``_bn``
``layer{s}.{b}.downsample.0/.1``           ``conv{s+1}_block{b+1}_0_conv`` / ``_bn`` (``.1/.2`` after ResNet-D's pool)
``layer{s}.{b}.se.fc1`` / ``.se.fc2``      ``..._se_reduce`` / ``..._se_expand``
``fc``                                     ``predictions``
=========================================  =============================================

Convolution kernels go from OIHW to HWIO, the classifier from (out, in) to (in, out). PyTorch's BatchNorm epsilon
(1e-5) differs from the package's (1.001e-5): the difference is folded into the moving variance, so the outputs
match exactly. The pixel normalisation of the source goes inside the model as a ``Normalization`` layer (the model
takes 0–255 pixels, like every keras_resnet model); the input size, crop fraction and interpolation are returned in
:class:`Preprocessing` and written next to the model by ``keras-resnet import``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.core.files import read_json_file
from keras_resnet.io.weights import read_weights
from keras_resnet.model.blocks import BN_EPSILON
from keras_resnet.spec.specs import IMAGENET, Arch, BlockOptions

TORCH_BN_EPSILON = 1e-5
SOURCES = ("timm", "torchvision", "keras-hub")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TORCH = {"stride_on": "3x3"}


@dataclass(frozen=True)
class Preprocessing:
    """What the source model expects: ``mean``/``std`` of 0–1 pixels (inside the imported model), the input size,
    the crop fraction (resize to ``size / crop_pct``, then centre-crop ``size``) and the interpolation."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}


def _architectures() -> dict[str, tuple[Arch, dict[str, Any]]]:
    table: dict[str, tuple[Arch, dict[str, Any]]] = {}
    for depth, arch in IMAGENET.items():
        table[f"resnet{depth}"] = (arch, dict(_TORCH))
        table[f"resnet{depth}d"] = (dataclasses.replace(arch, stem="deep"), {**_TORCH, "avg_down": True})
        if arch.block == "bottleneck":
            table[f"seresnet{depth}"] = (arch, {**_TORCH, "se_ratio": 1 / 16})
    for depth, groups, width in ((50, 32, 4), (101, 32, 4), (101, 32, 8), (101, 64, 4), (152, 32, 4)):
        table[f"resnext{depth}_{groups}x{width}d"] = (IMAGENET[depth], {**_TORCH, "cardinality": groups,
                                                                         "base_width": width})
    for depth in (50, 101):
        table[f"wide_resnet{depth}_2"] = (IMAGENET[depth], {**_TORCH, "base_width": 128})
    return table


ARCHITECTURES: dict[str, tuple[Arch, dict[str, Any]]] = _architectures()
TORCHVISION = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
               "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")

# Where the weights are fetched from when no file is given (timm: the Hugging Face hub; torchvision: its URLs,
# the DEFAULT weights of torchvision 0.29, with the preprocessing of their transforms()).
TIMM_DEFAULT_TAGS = {  # timm 1.0.31's default tag of each architecture (get_pretrained_cfg(arch).tag)
    "resnet18": "a1_in1k", "resnet34": "a1_in1k", "resnet50": "a1_in1k", "resnet101": "a1h_in1k",
    "resnet152": "a1h_in1k", "resnet18d": "ra2_in1k", "resnet34d": "ra2_in1k", "resnet50d": "ra2_in1k",
    "resnet101d": "ra2_in1k", "resnet152d": "ra2_in1k", "resnet200d": "ra2_in1k", "resnext50_32x4d": "a1h_in1k",
    "resnext101_32x4d": "fb_ssl_yfcc100m_ft_in1k", "resnext101_32x8d": "tv_in1k", "resnext101_64x4d": "c1_in1k",
    "seresnet50": "a1_in1k", "wide_resnet50_2": "racm_in1k", "wide_resnet101_2": "tv_in1k",
}
# timm 1.0.31's pretrained_cfg (input size, crop_pct, interpolation) of every tag of the supported architectures;
# mean/std are ImageNet's except for the *.ra4_e3600_r224_in1k tags (0.5, 0.5, 0.5). Regenerate with timm's
# get_pretrained_cfg when timm adds tags.
TIMM_PRETRAINED: dict[str, tuple[int, float, str]] = {
    "resnet18.a1_in1k": (224, 0.95, "bicubic"),
    "resnet18.a2_in1k": (224, 0.95, "bicubic"),
    "resnet18.a3_in1k": (160, 0.95, "bicubic"),
    "resnet18.fb_ssl_yfcc100m_ft_in1k": (224, 0.875, "bilinear"),
    "resnet18.fb_swsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnet18.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet18.tv_in1k": (224, 0.875, "bilinear"),
    "resnet34.a1_in1k": (224, 0.95, "bicubic"),
    "resnet34.a2_in1k": (224, 0.95, "bicubic"),
    "resnet34.a3_in1k": (160, 0.95, "bicubic"),
    "resnet34.bt_in1k": (224, 0.875, "bicubic"),
    "resnet34.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet34.ra4_e3600_r224_in1k": (224, 0.9, "bicubic"),
    "resnet34.tv_in1k": (224, 0.875, "bilinear"),
    "resnet50.a1_in1k": (224, 0.95, "bicubic"),
    "resnet50.a1h_in1k": (176, 0.9, "bicubic"),
    "resnet50.a2_in1k": (224, 0.95, "bicubic"),
    "resnet50.a3_in1k": (160, 0.95, "bicubic"),
    "resnet50.am_in1k": (224, 0.875, "bicubic"),
    "resnet50.b1k_in1k": (224, 0.95, "bicubic"),
    "resnet50.b2k_in1k": (224, 0.95, "bicubic"),
    "resnet50.bamboo": (224, 1.0, "bicubic"),
    "resnet50.bt_in1k": (224, 0.875, "bicubic"),
    "resnet50.c1_in1k": (224, 0.95, "bicubic"),
    "resnet50.c2_in1k": (224, 0.95, "bicubic"),
    "resnet50.d_in1k": (224, 0.95, "bicubic"),
    "resnet50.fb_ssl_yfcc100m_ft_in1k": (224, 0.875, "bilinear"),
    "resnet50.fb_swsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnet50.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet50.ra_in1k": (224, 0.875, "bicubic"),
    "resnet50.ram_in1k": (224, 0.875, "bicubic"),
    "resnet50.tv2_in1k": (176, 0.875, "bilinear"),
    "resnet50.tv_in1k": (224, 0.875, "bilinear"),
    "resnet101.a1_in1k": (224, 0.95, "bicubic"),
    "resnet101.a1h_in1k": (224, 0.95, "bicubic"),
    "resnet101.a2_in1k": (224, 0.95, "bicubic"),
    "resnet101.a3_in1k": (160, 0.95, "bicubic"),
    "resnet101.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet101.tv2_in1k": (176, 0.875, "bilinear"),
    "resnet101.tv_in1k": (224, 0.875, "bilinear"),
    "resnet152.a1_in1k": (224, 0.95, "bicubic"),
    "resnet152.a1h_in1k": (224, 0.95, "bicubic"),
    "resnet152.a2_in1k": (224, 0.95, "bicubic"),
    "resnet152.a3_in1k": (160, 0.95, "bicubic"),
    "resnet152.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet152.tv2_in1k": (176, 0.875, "bilinear"),
    "resnet152.tv_in1k": (224, 0.875, "bilinear"),
    "resnet18d.ra2_in1k": (224, 0.875, "bicubic"),
    "resnet18d.ra4_e3600_r224_in1k": (224, 0.9, "bicubic"),
    "resnet34d.ra2_in1k": (224, 0.875, "bicubic"),
    "resnet50d.a1_in1k": (224, 0.95, "bicubic"),
    "resnet50d.a2_in1k": (224, 0.95, "bicubic"),
    "resnet50d.a3_in1k": (160, 0.95, "bicubic"),
    "resnet50d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet50d.ra2_in1k": (224, 0.875, "bicubic"),
    "resnet50d.ra4_e3600_r224_in1k": (224, 0.95, "bicubic"),
    "resnet101d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet101d.ra2_in1k": (256, 0.95, "bicubic"),
    "resnet152d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnet152d.ra2_in1k": (256, 0.95, "bicubic"),
    "resnet200d.ra2_in1k": (256, 0.95, "bicubic"),
    "resnext50_32x4d.a1_in1k": (224, 0.95, "bicubic"),
    "resnext50_32x4d.a1h_in1k": (224, 0.95, "bicubic"),
    "resnext50_32x4d.a2_in1k": (224, 0.95, "bicubic"),
    "resnext50_32x4d.a3_in1k": (160, 0.95, "bicubic"),
    "resnext50_32x4d.fb_ssl_yfcc100m_ft_in1k": (224, 0.875, "bilinear"),
    "resnext50_32x4d.fb_swsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnext50_32x4d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnext50_32x4d.ra_in1k": (224, 0.875, "bicubic"),
    "resnext50_32x4d.tv2_in1k": (176, 0.875, "bilinear"),
    "resnext50_32x4d.tv_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x4d.fb_ssl_yfcc100m_ft_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x4d.fb_swsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x4d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnext101_32x8d.fb_ssl_yfcc100m_ft_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x8d.fb_swsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x8d.fb_wsl_ig1b_ft_in1k": (224, 0.875, "bilinear"),
    "resnext101_32x8d.tv2_in1k": (176, 0.875, "bilinear"),
    "resnext101_32x8d.tv_in1k": (224, 0.875, "bilinear"),
    "resnext101_64x4d.c1_in1k": (224, 0.95, "bicubic"),
    "resnext101_64x4d.gluon_in1k": (224, 0.875, "bicubic"),
    "resnext101_64x4d.tv_in1k": (224, 0.875, "bilinear"),
    "seresnet50.a1_in1k": (224, 0.95, "bicubic"),
    "seresnet50.a2_in1k": (224, 0.95, "bicubic"),
    "seresnet50.a3_in1k": (160, 0.95, "bicubic"),
    "seresnet50.ra2_in1k": (224, 0.875, "bicubic"),
    "wide_resnet50_2.racm_in1k": (224, 0.875, "bicubic"),
    "wide_resnet50_2.tv2_in1k": (176, 0.875, "bilinear"),
    "wide_resnet50_2.tv_in1k": (224, 0.875, "bilinear"),
    "wide_resnet101_2.tv2_in1k": (176, 0.875, "bilinear"),
    "wide_resnet101_2.tv_in1k": (224, 0.875, "bilinear"),
}
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-f82ba261.pth",
    "resnext50_32x4d": "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth",
    "resnext101_32x8d": "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth",
    "resnext101_64x4d": "https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth",
    "wide_resnet50_2": "https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth",
    "wide_resnet101_2": "https://download.pytorch.org/models/wide_resnet101_2-d733dc28.pth",
}
# torchvision's DEFAULT transforms: resize 256 (v1 weights: resnet18/34) or 232 (v2), centre-crop 224, bilinear.
TORCHVISION_RESIZE = {"resnet18": 256, "resnet34": 256}


def parse_source(text: str) -> tuple[str, str, str | None]:
    """``"timm:resnet50.a1_in1k"`` → ``("timm", "resnet50", "a1_in1k")``; the tag is None when absent.
    ``"keras-hub:PATH"`` → ``("keras-hub", PATH, None)`` (a preset directory)."""
    source, sep, rest = str(text).partition(":")
    if source == "keras-hub" and rest:
        return source, rest, None
    if not sep or source not in SOURCES or not rest:
        raise ConfigError(f"expected SOURCE:ARCH with SOURCE one of {', '.join(SOURCES)} (e.g. timm:resnet50d or "
                          f"torchvision:resnet50); got {text!r}")
    arch, _, tag = rest.partition(".")
    return source, arch, tag or None


def architecture(source: str, name: str) -> tuple[Arch, BlockOptions]:
    """The keras_resnet architecture of a timm or torchvision model name."""
    known = TORCHVISION if source == "torchvision" else tuple(ARCHITECTURES)
    if name not in known:
        raise ConfigError(f"{source} architecture {name!r} is not supported; choose from {', '.join(known)}")
    arch, options = ARCHITECTURES[name]
    return arch, BlockOptions(**options)


def default_preprocessing(source: str, name: str, tag: str | None = None) -> Preprocessing:
    """The source's published preprocessing for ``name`` (timm 1.0.31's pretrained_cfg of the tag, or of the default
    tag; torchvision's DEFAULT transforms). A ``config.json`` next to a timm file (its Hugging Face repo) overrides
    it; an unknown tag gets timm's usual 224, crop 0.875, bicubic."""
    if source == "torchvision":
        return Preprocessing(crop_pct=round(224 / TORCHVISION_RESIZE.get(name, 232), 4))
    key = f"{name}.{tag or TIMM_DEFAULT_TAGS.get(name, '')}"
    size, crop, interpolation = TIMM_PRETRAINED.get(key, (224, 0.875, "bicubic"))
    half = (0.5, 0.5, 0.5)
    mean, std = (half, half) if key.endswith(".ra4_e3600_r224_in1k") else (IMAGENET_MEAN, IMAGENET_STD)
    return Preprocessing(mean=mean, std=std, input_size=size, crop_pct=crop, interpolation=interpolation)


def read_timm_config(path: str, fallback: Preprocessing) -> Preprocessing:
    """Preprocessing from a timm Hugging Face ``config.json`` (its ``pretrained_cfg``), else ``fallback``."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read(1 << 20)
        cfg = json.loads(raw).get("pretrained_cfg", {})
        size = cfg.get("input_size", [3, fallback.input_size])[-1]
        return Preprocessing(mean=tuple(float(v) for v in cfg.get("mean", fallback.mean)),
                             std=tuple(float(v) for v in cfg.get("std", fallback.std)), input_size=int(size),
                             crop_pct=float(cfg.get("crop_pct", fallback.crop_pct)),
                             interpolation=str(cfg.get("interpolation", fallback.interpolation)))
    except (OSError, ValueError, TypeError, AttributeError, IndexError, RecursionError):
        return fallback


# ---- names --------------------------------------------------------------------------------------------------

_DEEP_STEM = {"conv1_1_conv": "conv1.0", "conv1_1_bn": "conv1.1", "conv1_2_conv": "conv1.3", "conv1_2_bn": "conv1.4",
              "conv1_3_conv": "conv1.6", "conv1_3_bn": "bn1", "conv1_conv": "conv1", "conv1_bn": "bn1",
              "predictions": "fc"}
_BLOCK = re.compile(r"^conv(\d+)_block(\d+)_(\d+|se)_(conv|bn|reduce|expand)$")


def torch_name(layer: str, opts: BlockOptions) -> str | None:
    """The PyTorch module path of a keras_resnet layer name (None: a layer without PyTorch weights)."""
    if layer in _DEEP_STEM:
        return _DEEP_STEM[layer]
    match = _BLOCK.match(layer)
    if not match:
        return None
    stage, index, unit, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(index) - 1}"
    if unit == "se":
        return f"{prefix}.se.{'fc1' if kind == 'reduce' else 'fc2'}"
    if unit == "0":
        first = 1 if opts.avg_down else 0  # ResNet-D: downsample.0 is the pool (an Identity in stage 1)
        return f"{prefix}.downsample.{first + (kind == 'bn')}"
    return f"{prefix}.{kind}{unit}"


def _convert(layer, tensors: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    kind = type(layer).__name__
    if kind == "BatchNormalization":
        var = tensors[f"{prefix}.running_var"] + (TORCH_BN_EPSILON - BN_EPSILON)
        return [tensors[f"{prefix}.weight"], tensors[f"{prefix}.bias"], tensors[f"{prefix}.running_mean"], var]
    weight = tensors[f"{prefix}.weight"]
    kernel = weight.transpose(2, 3, 1, 0) if kind == "Conv2D" else weight.T
    return [kernel] + ([tensors[f"{prefix}.bias"]] if f"{prefix}.bias" in tensors else [])


def expected_keys(model, opts: BlockOptions) -> dict[str, tuple[int, ...]]:
    """``{PyTorch state-dict key: PyTorch shape}`` that ``model`` needs (running statistics included)."""
    keys: dict[str, tuple[int, ...]] = {}
    for layer in model.layers:
        prefix = torch_name(layer.name, opts)
        if prefix is None or not layer.weights:
            continue
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            n = (int(layer.weights[0].shape[0]),)
            keys.update({f"{prefix}.{k}": n for k in ("weight", "bias", "running_mean", "running_var")})
            continue
        shape = tuple(int(d) for d in layer.weights[0].shape)
        keys[f"{prefix}.weight"] = (shape[3], shape[2], shape[0], shape[1]) if kind == "Conv2D" else shape[::-1]
        if len(layer.weights) > 1:
            keys[f"{prefix}.bias"] = (int(layer.weights[1].shape[0]),)
    return keys


def _check_keys(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], what: str) -> None:
    present = {k for k in tensors if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    wrong = sorted(f"{k} {list(tensors[k].shape)} (expected {list(expected[k])})" for k in set(expected) & present
                   if tuple(tensors[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                parts.append(f"{len(items)} {label}: {', '.join(items[:6])}{', ...' if len(items) > 6 else ''}")
        raise ModelFileError(f"{what} does not fit this architecture: " + "; ".join(parts)
                             + ". Is it a checkpoint of another model?")


def build_keras_model(arch: Arch, opts: BlockOptions, *, classes: int, preprocessing: Preprocessing,
                      input_shape: tuple[int, ...] | None = None, include_top: bool = True,
                      classifier_activation: str | None = "softmax", name: str = "resnet"):
    """``Input (0–255 pixels) → Normalization → ResNet(arch)``, the layout the package's models have."""
    import keras

    from keras_resnet.model.build import ResNet

    size = preprocessing.input_size
    inputs = keras.Input(shape=tuple(input_shape or (size, size, 3)))
    mean = [255.0 * m for m in preprocessing.mean]
    variance = [(255.0 * s) ** 2 for s in preprocessing.std]
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalization")(inputs)
    backbone = ResNet(arch, input_tensor=x, options=opts, classes=classes, include_top=include_top,
                      pooling=None if include_top else "avg", classifier_activation=classifier_activation,
                      name=name, stem=arch.stem)
    return keras.Model(inputs, backbone.output, name=name)  # one input, not ResNet's list of source inputs


def load_state_dict(model, tensors: dict[str, np.ndarray], opts: BlockOptions, *, what: str = "weights") -> int:
    """Copy a PyTorch state dict into ``model`` (built by :func:`build_keras_model`); every key must be used and
    every layer filled. Returns the number of layers set."""
    expected = expected_keys(model, opts)
    include_top = any(layer.name == "predictions" for layer in model.layers)
    if not include_top:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("fc.")}
    _check_keys(tensors, expected, what)
    count = 0
    for layer in model.layers:
        prefix = torch_name(layer.name, opts)
        if prefix is None or not layer.weights:
            continue
        layer.set_weights([np.asarray(w, np.float32) for w in _convert(layer, tensors, prefix)])
        count += 1
    return count


def convert_state_dict(tensors: dict[str, np.ndarray], arch: Arch, opts: BlockOptions, *,
                       preprocessing: Preprocessing = Preprocessing(), input_shape=None, include_top: bool = True,
                       classifier_activation: str | None = "softmax", name: str = "resnet", what: str = "weights"):
    """A Keras model of ``arch`` holding a timm / torchvision state dict (classes taken from ``fc.weight``)."""
    fc = tensors.get("fc.weight")
    if include_top and fc is None:
        raise ModelFileError(f"{what} has no classifier (fc.weight); pass include_top=False for a backbone")
    classes = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 1000
    model = build_keras_model(arch, opts, classes=classes, preprocessing=preprocessing, input_shape=input_shape,
                              include_top=include_top, classifier_activation=classifier_activation, name=name)
    load_state_dict(model, tensors, opts, what=what)
    return model


# ---- keras-hub presets ----------------------------------------------------------------------------------------

KERAS_HUB_BLOCKS = {"basic_block": ("basic", False), "bottleneck_block": ("bottleneck", False),
                    "basic_block_vd": ("basic", True), "bottleneck_block_vd": ("bottleneck", True)}
MAX_PRESET_JSON = 1 << 20


def _preset_json(folder: str, name: str, required: bool = True) -> dict | None:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        if required:
            raise ModelFileError(f"{folder} has no {name}: not a keras-hub preset directory")
        return None
    value = read_json_file(path, max_bytes=MAX_PRESET_JSON, max_depth=32, what="keras-hub preset file")
    if not isinstance(value, dict):
        raise ModelFileError(f"{path} is not a JSON object")
    return value


def keras_hub_architecture(config: dict, what: str) -> tuple[Arch, BlockOptions]:
    """The keras_resnet architecture of a keras-hub ``ResNetBackbone`` config (ResNet and ResNet-vd, v1 only)."""
    if config.get("class_name") != "ResNetBackbone" or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{what}: expected a keras-hub ResNetBackbone config; got {config.get('class_name')!r}")
    c = config["config"]
    if c.get("use_pre_activation"):
        raise ModelFileError(f"{what}: pre-activation (ResNetV2) keras-hub presets are not supported yet")
    if c.get("block_type") not in KERAS_HUB_BLOCKS:
        raise ModelFileError(f"{what}: unknown block_type {c.get('block_type')!r}")
    block, vd = KERAS_HUB_BLOCKS[c["block_type"]]
    filters, blocks, strides = (c.get(k) for k in ("stackwise_num_filters", "stackwise_num_blocks",
                                                   "stackwise_num_strides"))
    stem, kernels = c.get("input_conv_filters"), c.get("input_conv_kernel_sizes")
    lists = (filters, blocks, strides, stem, kernels)
    if not all(isinstance(v, list) and v and all(isinstance(i, int) and 0 < i < 1 << 16 for i in v) for v in lists) \
            or not len(filters) == len(blocks) == len(strides):
        raise ModelFileError(f"{what}: the stage lists are not lists of positive integers of one length")
    if strides != [1] + [2] * (len(strides) - 1):
        raise ModelFileError(f"{what}: stage strides {strides} are not supported (1, 2, 2, ... only)")
    if stem == [stem[-1]] and kernels == [7]:
        kind = "imagenet"
    elif len(stem) == 3 and kernels == [3, 3, 3] and stem[0] == stem[1] == stem[2] // 2:
        kind = "deep"
    else:
        raise ModelFileError(f"{what}: stem {stem} with kernels {kernels} is not supported (7x7, or three 3x3 "
                             f"convs of w/2, w/2, w)")
    arch = Arch(block, tuple(blocks), tuple(filters), kind, stem[-1])
    return arch, BlockOptions(stride_on="3x3", avg_down=vd)


def _keras_hub_preprocessing(folder: str) -> Preprocessing:
    converter = _preset_json(folder, "image_converter.json", required=False) or {}
    c = converter.get("config") if isinstance(converter.get("config"), dict) else {}
    scale, offset = c.get("scale"), c.get("offset")
    size = c.get("image_size") or [224]
    try:
        if isinstance(scale, list) and isinstance(offset, list) and len(scale) == len(offset) == 3:
            # keras-hub feeds scale · pixel + offset (pixels 0-255): std = 1 / (255 scale), mean = -offset / (255 scale)
            mean = tuple(round(-float(o) / (255 * float(s)), 6) for o, s in zip(offset, scale, strict=True))
            std = tuple(round(1 / (255 * float(s)), 6) for s in scale)
        elif isinstance(scale, (int, float)) and scale > 0 and offset in (None, 0):
            mean, std = (0.0, 0.0, 0.0), (1 / (255 * float(scale)),) * 3
        else:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        return Preprocessing(mean=mean, std=std, input_size=int(size[0]), crop_pct=1.0,
                             interpolation=str(c.get("interpolation", "bilinear")))
    except (TypeError, ValueError, ZeroDivisionError, IndexError) as error:
        raise ModelFileError(f"{folder}/image_converter.json: unexpected scale/offset/image_size") from error


def import_keras_hub(folder: str | os.PathLike, *, input_shape=None, include_top: bool = True,
                     classifier_activation: str | None = "softmax", name: str | None = None):
    """``(Keras model, Preprocessing)`` from a keras-hub ResNet preset directory (``config.json`` +
    ``model.weights.h5``; ``task.weights.h5`` adds the classifier), without keras-hub.

    keras-hub's backbone has the same layers in the same order as keras_resnet's ResNet with ``stride_on="3x3"``
    (and ``avg_down`` + deep stem for ``*_vd``), so Keras loads ``model.weights.h5`` into that graph by its own
    path rules (which check every shape); the weights are then copied by position into the named model.
    """
    import keras

    from keras_resnet.io.model_io import check_hdf5
    from keras_resnet.model.build import ResNet

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ModelFileError(f"{folder} is not a keras-hub preset directory. Kaggle handles are not downloaded here: "
                             f"fetch the preset (e.g. kagglehub.model_download('keras/resnetv1/keras/"
                             f"resnet_50_imagenet')) and pass its folder, keras-hub:/path/to/preset")
    arch, opts = keras_hub_architecture(_preset_json(folder, "config.json"), f"{folder}/config.json")
    weights = os.path.join(folder, "model.weights.h5")
    if not os.path.isfile(weights):
        raise ModelFileError(f"{folder} has no model.weights.h5")
    check_hdf5(weights, weights)
    twin = ResNet(arch, include_top=False, input_shape=(None, None, 3), options=opts, stem=arch.stem,
                  name="keras_hub_twin")
    try:
        twin.load_weights(weights)
    except Exception as error:  # Keras raises ValueError / KeyError / OSError for a file of another layout
        raise ModelFileError(f"{weights} does not fit the architecture of {folder}/config.json: "
                             f"{str(error).strip().splitlines()[0][:300]}") from error
    head = None
    task = os.path.join(folder, "task.weights.h5")
    if include_top:
        if not os.path.isfile(task):
            raise ModelFileError(f"{folder} has no task.weights.h5 (a backbone-only preset); pass "
                                 f"include_top=False for the backbone")
        check_hdf5(task, task)
        import h5py

        with h5py.File(task, "r") as f:
            try:
                head = [np.asarray(f[f"layers/dense/vars/{i}"], np.float32) for i in (0, 1)]
            except KeyError as error:
                raise ModelFileError(f"{task} holds no classifier (layers/dense)") from error
        if head[0].ndim != 2 or head[1].shape != (head[0].shape[1],):
            raise ModelFileError(f"{task}: classifier shapes {head[0].shape}, {head[1].shape} do not fit")
    preprocessing = _keras_hub_preprocessing(folder)
    model = build_keras_model(arch, opts, classes=head[0].shape[1] if head else 1000, preprocessing=preprocessing,
                              input_shape=input_shape, include_top=include_top,
                              classifier_activation=classifier_activation,
                              name=name or os.path.basename(os.path.normpath(folder)).replace("-", "_"))
    by_name = {layer.name: layer for layer in twin.layers}
    for layer in model.layers:
        if layer.name == "predictions":
            layer.set_weights(head)
        elif layer.weights and layer.name != "normalization":
            values = by_name[layer.name].get_weights()
            if isinstance(layer, keras.layers.BatchNormalization):  # keras-hub's epsilon is PyTorch's 1e-5
                values[3] = values[3] + (TORCH_BN_EPSILON - BN_EPSILON)
            layer.set_weights(values)
    return model, preprocessing


def from_keras_hub(preset: str | os.PathLike, **kwargs):
    """A Keras model from a keras-hub ResNet / ResNet-vd preset directory (``include_top``, ``input_shape``,
    ``classifier_activation``, ``name`` as :func:`import_model`)."""
    return import_keras_hub(preset, **kwargs)[0]


# ---- fetching ----------------------------------------------------------------------------------------------------


def _fetch(source: str, name: str, tag: str | None) -> tuple[str, str | None]:
    """``(weights path, config.json path or None)`` from the source's hub; a clear error when offline."""
    if source == "timm":
        tag = tag or TIMM_DEFAULT_TAGS.get(name)
        if tag is None:
            raise ConfigError(f"timm publishes no weights for {name}; pass --weights FILE")
        repo = f"timm/{name}.{tag}"
        hint = (f"Offline? Fetch https://huggingface.co/{repo}/resolve/main/model.safetensors (and config.json) on a "
                f"connected machine and pass it with --weights model.safetensors (Python: weights='model.safetensors')")
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as error:
            raise ModelFileError(f"huggingface_hub is not installed (pip install 'keras-resnets[hub]'), so {repo} "
                                 f"cannot be downloaded. {hint}") from error
        try:
            path = hf_hub_download(repo, "model.safetensors")
        except Exception as error:  # its offline, HTTP and cache errors share no base class but Exception
            raise ModelFileError(f"could not download {repo} ({type(error).__name__}). {hint}") from error
        try:
            config = hf_hub_download(repo, "config.json")
        except Exception:  # the preprocessing then falls back to the table; the weights are what matter
            config = None
        return path, config
    url = TORCHVISION_URLS[name]
    file_name = url.rsplit("/", 1)[-1]
    hint = (f"Offline? Fetch {url} on a connected machine and pass it with --weights {file_name} "
            f"(Python: weights='{file_name}')")
    try:
        import keras

        return keras.utils.get_file(file_name, url, cache_subdir="models"), None
    except Exception as error:  # urllib / socket errors differ by platform; all mean "could not fetch"
        reason = (str(error).strip().splitlines() or [""])[0][:120]
        raise ModelFileError(f"could not download {file_name} ({type(error).__name__}: {reason}). {hint}") \
            from error


def import_model(spec: str, weights: str | os.PathLike | None = None, *, input_shape=None, include_top: bool = True,
                 classifier_activation: str | None = "softmax", name: str | None = None):
    """``(Keras model, Preprocessing)`` for ``"timm:ARCH[.TAG]"``, ``"torchvision:ARCH"`` or
    ``"keras-hub:PRESET_DIR"``.

    ``weights``: a ``.safetensors`` / ``.pth`` file; None downloads the source's published weights (timm through
    ``huggingface_hub``, torchvision from its URL) and fails with a clear message offline.
    """
    source, arch_name, tag = parse_source(spec)
    if source == "keras-hub":
        folder = weights if weights is not None else arch_name
        return import_keras_hub(folder, input_shape=input_shape, include_top=include_top,
                                classifier_activation=classifier_activation, name=name)
    arch, opts = architecture(source, arch_name)
    config = None
    if weights is None:
        weights, config = _fetch(source, arch_name, tag)
    else:
        weights = os.fspath(weights)
        sidecar = os.path.join(os.path.dirname(os.path.abspath(weights)), "config.json")
        config = sidecar if source == "timm" and os.path.isfile(sidecar) else None
    preprocessing = default_preprocessing(source, arch_name, tag)
    if config is not None:
        preprocessing = read_timm_config(config, preprocessing)
    tensors = read_weights(weights)
    model = convert_state_dict(tensors, arch, opts, preprocessing=preprocessing, input_shape=input_shape,
                               include_top=include_top, classifier_activation=classifier_activation,
                               name=name or arch_name.replace(".", "_"), what=os.fspath(weights))
    return model, preprocessing


def from_timm(name: str, weights: str | os.PathLike | None = None, **kwargs):
    """A Keras model with timm's ``name`` (``"resnet50d"``, ``"resnet50.a1_in1k"``) architecture and weights.

    ``weights``: a ``model.safetensors`` or ``.pth`` file (None: download from the Hugging Face hub). Keyword
    arguments: ``input_shape``, ``include_top``, ``classifier_activation``, ``name``.
    """
    return import_model(f"timm:{name}", weights, **kwargs)[0]


def from_torchvision(name: str, weights: str | os.PathLike | None = None, **kwargs):
    """A Keras model with torchvision's ``name`` (``"resnet50"``, ``"resnext50_32x4d"``) architecture and
    weights (a ``.pth`` or ``.safetensors`` file; None: download torchvision's DEFAULT weights)."""
    return import_model(f"torchvision:{name}", weights, **kwargs)[0]


def preprocessing_path(model_path: str | os.PathLike) -> str:
    """Where ``keras-resnet import`` writes the preprocessing of ``OUT.keras`` too: ``OUT.preprocessing.json``."""
    from keras_resnet.io.model_io import preprocessing_path as sidecar

    return sidecar(model_path)


def read_preprocessing(model_path: str | os.PathLike) -> dict | None:
    """The preprocessing recorded for an imported model: inside the ``.keras`` (travels with the file through
    ``qat --engine keras``), else ``OUT.preprocessing.json`` next to it; None when neither exists."""
    from keras_resnet.io.model_io import read_preprocessing as read

    return read(model_path)


# ---- command line: `keras-resnet import` -------------------------------------------------------------------------


def import_command(args) -> int:
    """``keras-resnet import SOURCE:ARCH [--weights FILE] --output OUT.keras``."""
    import time

    from keras_resnet.core.files import atomic_path, atomic_write, check_output
    from keras_resnet.io.model_io import INTERPOLATIONS, attach_preprocessing
    from keras_resnet.spec.commands import ImportSpec
    from keras_resnet.spec.fields import from_args

    spec: ImportSpec = from_args(ImportSpec, args)
    if not spec.output.endswith(".keras"):
        raise ConfigError(f"--output must end in .keras; got {spec.output}")
    sidecar = preprocessing_path(spec.output)
    check_output(spec.output, force=spec.force)
    check_output(sidecar, force=spec.force)
    start = time.perf_counter()
    model, preprocessing = import_model(spec.source, spec.weights,
                                        include_top=True, classifier_activation=spec.classifier_activation)
    seconds = time.perf_counter() - start
    source, arch, tag = parse_source(spec.source)
    record = {"source": source, "architecture": arch, "tag": tag, **preprocessing.as_dict()}
    if record["interpolation"] not in INTERPOLATIONS:  # keras-hub's lanczos3/5, area: resnet-edge has no such filter
        near = "bicubic" if str(record["interpolation"]).startswith("lanczos") else "bilinear"
        print(f"note: the source resizes with {record['interpolation']}; resnet-edge will use {near}", flush=True)
        record["interpolation"] = near
    with atomic_path(spec.output, force=spec.force) as tmp:
        model.save(tmp)
        attach_preprocessing(tmp, record)  # inside the .keras: it travels with the model (qat, convert)
    atomic_write(sidecar, json.dumps(record, indent=1) + "\n", force=spec.force)
    print(f"imported {spec.source} ({model.count_params():,} parameters) in {seconds:.1f} s; wrote {spec.output} "
          f"and {sidecar}", flush=True)
    return 0


__all__ = ["ARCHITECTURES", "Preprocessing", "architecture", "convert_state_dict", "expected_keys", "from_keras_hub",
           "from_timm", "from_torchvision", "import_keras_hub", "import_model", "load_state_dict", "parse_source", "torch_name"]
