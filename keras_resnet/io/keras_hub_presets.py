"""keras-hub ResNet presets (``keras-hub:/path/to/preset``) into keras_resnet models, without keras-hub.

A preset directory holds ``config.json`` (a ``ResNetBackbone``), ``model.weights.h5``, optionally ``task.weights.h5``
(the classifier) and ``image_converter.json`` (the preprocessing). The JSON files are read with bounded size and
nesting; the HDF5 files pass :func:`keras_resnet.io.model_checks.check_hdf5` before Keras or h5py reads their values.
"""

from __future__ import annotations

import os

import numpy as np

from keras_resnet.core.errors import ModelFileError
from keras_resnet.core.files import read_json_file
from keras_resnet.io.import_common import TORCH_BN_EPSILON, build_keras_model
from keras_resnet.io.model_checks import check_hdf5
from keras_resnet.io.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from keras_resnet.spec.specs import BN_EPSILON, Arch, BlockOptions

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


__all__ = ["KERAS_HUB_BLOCKS", "import_keras_hub", "keras_hub_architecture"]
