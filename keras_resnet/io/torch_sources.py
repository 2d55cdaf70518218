"""The timm and torchvision ResNets that can be imported: their keras_resnet architectures, their published
preprocessing (timm 1.0.31's pretrained_cfg, torchvision 0.29's DEFAULT transforms), and where their weights are
downloaded from when no file is given (timm: the Hugging Face hub; torchvision: its URLs). The weights themselves are
mapped by :mod:`keras_resnet.io.torch_mapping`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.io.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from keras_resnet.spec.specs import IMAGENET, Arch, BlockOptions

_TORCH = {"stride_on": "3x3"}


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


# ---- fetching ----------------------------------------------------------------------------------------------------


def fetch_weights(source: str, name: str, tag: str | None) -> tuple[str, str | None]:
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


__all__ = ["ARCHITECTURES", "TIMM_DEFAULT_TAGS", "TIMM_PRETRAINED", "TORCHVISION", "TORCHVISION_URLS", "architecture",
           "default_preprocessing", "fetch_weights", "read_timm_config"]
