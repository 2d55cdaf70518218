"""timm and torchvision state dicts into keras_resnet models: the name mapping, the layout change, the checks.

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
takes 0–255 pixels, like every keras_resnet model); the input size, crop fraction and interpolation travel in
:class:`~keras_resnet.io.preprocessing.Preprocessing`. Which architectures exist and where their weights come from:
:mod:`keras_resnet.io.torch_sources`.
"""

from __future__ import annotations

import re

import numpy as np

from keras_resnet.core.errors import ModelFileError
from keras_resnet.io.import_common import TORCH_BN_EPSILON, build_keras_model
from keras_resnet.io.preprocessing import Preprocessing
from keras_resnet.spec.specs import BN_EPSILON, Arch, BlockOptions

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


__all__ = ["convert_state_dict", "expected_keys", "load_state_dict", "torch_name"]
