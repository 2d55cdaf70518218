"""Regenerate tests/fixtures/import/: small random-init timm and torchvision ResNets and their reference outputs.

Needs torch, torchvision, timm and safetensors (NOT keras_resnet's dependencies; a separate environment):

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch torchvision timm safetensors
    /tmp/torchenv/bin/python scripts/make_import_fixtures.py [--output tests/fixtures/import]

Each fixture is a reduced-width copy of a supported architecture, built by the real timm / torchvision classes
(same block classes, same forward code, same state-dict names), with every BatchNorm's weight, bias, running mean
and variance randomised so that eval-mode BN is not the identity. Written:

- ``NAME.safetensors`` / ``NAME.pth`` (torch.save zip format, for the restricted unpickler): the state dict;
- ``reference.npz``: ``inputs_{S}`` (uint8 pixels, NHWC) and ``{NAME}_{S}`` (the PyTorch logits) for S in SIZES;
- ``manifest.json``: per fixture, the source, the file, the keras_resnet architecture it reduces and the weights'
  dtype; plus ``full_size``: the state-dict names and shapes of the real, full-size models (no weights), so the
  tests check the name mapping of every named architecture without downloading anything.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import timm
import torch
import torchvision
from safetensors.torch import save_file
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

SIZES = (224, 97)  # 97: odd sizes exercise the ceil-mode average pool of ResNet-D and "same" padding
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASSES = 10
SMALL = (8, 16, 32, 64)  # stage widths of the reduced copies (full size: 64, 128, 256, 512)
BLOCKS = (2, 1, 1, 1)  # an identity block in stage 1, a projection in every stage


def randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    model.eval()


def timm_small(block, **kwargs) -> torch.nn.Module:
    return ResNet(block=block, layers=list(BLOCKS), channels=SMALL, num_classes=CLASSES, **kwargs)


def torchvision_small(block: str, **kwargs) -> torch.nn.Module:
    """torchvision's own ResNet class and blocks with stage widths SMALL (its __init__ fixes 64..512, so the
    stage builder is given a quarter... an eighth of them); the 64-channel 7x7 stem is kept."""
    from torchvision.models import resnet as tv

    cls = {"basic": tv.BasicBlock, "bottleneck": tv.Bottleneck}[block]
    original = tv.ResNet._make_layer

    def small_layer(self, block, planes, blocks, stride=1, dilate=False):
        return original(self, block, planes // 8, blocks, stride, dilate)

    tv.ResNet._make_layer = small_layer
    try:
        model = tv.ResNet(cls, list(BLOCKS), num_classes=CLASSES, **kwargs)
    finally:
        tv.ResNet._make_layer = original
    model.fc = torch.nn.Linear(SMALL[-1] * cls.expansion, CLASSES)
    return model


def bottleneck(**options):
    return {"block": "bottleneck", "options": {"stride_on": "3x3", **options}}


# name: (source, constructor, keras_resnet architecture, file format, stored dtype)
FIXTURES = {
    "timm_resnet18": ("timm", lambda: timm_small(BasicBlock),
                      {"block": "basic", "options": {"stride_on": "3x3"}, "stem_filters": 64}, "safetensors",
                      "float32"),
    "timm_resnet50": ("timm", lambda: timm_small(Bottleneck), {**bottleneck(), "stem_filters": 64}, "safetensors",
                      "float32"),
    "timm_resnet50d": ("timm", lambda: timm_small(Bottleneck, stem_width=8, stem_type="deep", avg_down=True),
                       {**bottleneck(avg_down=True), "stem": "deep", "stem_filters": 16}, "safetensors", "float32"),
    "timm_resnet18d": ("timm", lambda: timm_small(BasicBlock, stem_width=8, stem_type="deep", avg_down=True),
                       {"block": "basic", "options": {"stride_on": "3x3", "avg_down": True}, "stem": "deep",
                        "stem_filters": 16}, "safetensors", "float32"),
    "timm_resnext50": ("timm", lambda: timm_small(Bottleneck, cardinality=4, base_width=32),
                       {**bottleneck(cardinality=4, base_width=32), "stem_filters": 64}, "safetensors", "bfloat16"),
    "timm_seresnet50": ("timm", lambda: timm_small(Bottleneck, block_args={"attn_layer": "se"}),
                        {**bottleneck(se_ratio=1 / 16), "stem_filters": 64}, "safetensors", "float16"),
    "timm_wide_resnet50": ("timm", lambda: timm_small(Bottleneck, base_width=128),
                           {**bottleneck(base_width=128), "stem_filters": 64}, "safetensors", "float32"),
    "tv_resnet18": ("torchvision", lambda: torchvision_small("basic"),
                    {"block": "basic", "options": {"stride_on": "3x3"}, "stem_filters": 64}, "pth", "float32"),
    "tv_resnet50": ("torchvision", lambda: torchvision_small("bottleneck"), {**bottleneck(), "stem_filters": 64},
                    "pth", "float32"),
    "tv_resnext50": ("torchvision", lambda: torchvision_small("bottleneck", groups=4, width_per_group=32),
                     {**bottleneck(cardinality=4, base_width=32), "stem_filters": 64}, "pth", "float32"),
    "tv_wide_resnet50": ("torchvision", lambda: torchvision_small("bottleneck", width_per_group=128),
                         {**bottleneck(base_width=128), "stem_filters": 64}, "safetensors", "float32"),
}

FULL_TIMM = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet18d", "resnet50d", "resnet101d",
             "resnext50_32x4d", "resnext101_32x8d", "seresnet50", "seresnet101", "wide_resnet50_2",
             "wide_resnet101_2")
FULL_TORCHVISION = ("resnet18", "resnet50", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                    "wide_resnet50_2", "wide_resnet101_2")


def logits(model: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x.double()).numpy()  # float64 reference: the tolerance then measures the Keras side only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                         "import"))
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    reference = {f"inputs_{s}": rng.integers(0, 256, (2, s, s, 3), dtype=np.uint8) for s in SIZES}
    manifest = {"versions": {"torch": torch.__version__, "timm": timm.__version__,
                             "torchvision": torchvision.__version__},
                "sizes": list(SIZES), "mean": MEAN, "std": STD, "classes": CLASSES, "fixtures": {}, "full_size": {}}
    for seed, (name, (source, make, arch, fmt, dtype)) in enumerate(FIXTURES.items()):
        model = make()
        randomise(model, seed)
        stored = {k: v.detach().to(getattr(torch, dtype)).contiguous() for k, v in model.state_dict().items()
                  if k.endswith(("weight", "bias", "running_mean", "running_var"))}
        # the reference runs on exactly the stored (rounded) values
        model.load_state_dict({k: v.float() for k, v in stored.items()}, strict=False)
        file = f"{name}.{fmt}"
        if fmt == "safetensors":
            save_file(stored, os.path.join(args.output, file))
        else:
            torch.save(stored, os.path.join(args.output, file))
        model = model.double()
        for s in SIZES:
            reference[f"{name}_{s}"] = logits(model, reference[f"inputs_{s}"]).astype(np.float64)
        manifest["fixtures"][name] = {"source": source, "file": file, "dtype": dtype, "blocks": list(BLOCKS),
                                      "filters": list(SMALL), **arch}
        print(f"{name}: {file} {os.path.getsize(os.path.join(args.output, file)):,} bytes")
    for source, names in (("timm", FULL_TIMM), ("torchvision", FULL_TORCHVISION)):
        for name in names:
            model = timm.create_model(name) if source == "timm" else getattr(torchvision.models, name)()
            manifest["full_size"][f"{source}:{name}"] = {k: list(v.shape) for k, v in model.state_dict().items()
                                                        if not k.endswith("num_batches_tracked")}
    np.savez_compressed(os.path.join(args.output, "reference.npz"), **reference)
    with open(os.path.join(args.output, "manifest.json"), "w", encoding="utf-8") as f:
        full = manifest.pop("full_size")
        text = json.dumps(manifest, indent=1)  # readable; the full-size shapes, one model per line
        lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in full.items())
        f.write(text[:-2] + ',\n "full_size": {\n' + lines + "\n }\n}\n")


if __name__ == "__main__":
    main()
