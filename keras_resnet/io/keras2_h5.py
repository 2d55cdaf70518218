"""Load the weight arrays of someone else's Keras 2 ``.h5`` file into a keras_resnet model through a layer-name map.

Keras 2 names every layer it was not given a name for by class and creation order (``conv2d``, ``conv2d_1``,
``batch_normalization``, ...), so a published model's file does not load by keras_resnet's layer names
(:func:`keras_resnet.model.build.load_weights`): a map, ours → theirs, says which layer is which.

Only weight arrays are read, with h5py: no ``model_config``, no Keras loader, no code from the file. The file first
passes :func:`~keras_resnet.io.model_checks.check_hdf5` (declared against stored bytes, the total capped); every
weight must be a plain float dataset reached by a hard link inside the file (no external or soft links); the file's
weighted layers and the map must match one to one, and every array's shape must equal the layer's, before any weight
is set. Failures are :class:`~keras_resnet.core.errors.ModelFileError` (the file) or
:class:`~keras_resnet.core.errors.ConfigError` (the model does not fit the map).

:data:`MLPERF_TINY_RESNET8` maps :func:`~keras_resnet.model.models.ResNet8` onto MLPerf Tiny's reference
(mlcommons/tiny, ``benchmark/training/image_classification/trained_models/pretrainedResnet.h5``);
:func:`load_mlperf_tiny_weights` loads that file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np

from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.io.model_checks import check_hdf5, check_readable, first_line

MAX_LAYERS = 10_000  # layer_names of a Keras 2 file (ResNet-152: 566)
MAX_WEIGHTS_PER_LAYER = 16  # BatchNormalization holds 4


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _names(node, attribute: str, limit: int, what: str) -> list[str]:
    raw = node.attrs.get(attribute)
    if raw is None:
        return []
    names = [_text(n) for n in np.asarray(raw).reshape(-1)]
    if len(names) > limit:
        raise ModelFileError(f"{what}: {attribute} lists {len(names)} entries (at most {limit})")
    return names


def _dataset(h5py, group, name: str, what: str) -> np.ndarray:
    """The array stored under ``name`` in ``group``, which must be a float dataset behind hard links only."""
    node = group
    for part in name.strip("/").split("/"):
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ModelFileError(f"{what}: weight {name!r} is {'missing' if link is None else 'a link out of the file'}")
        node = node[part]
    if not isinstance(node, h5py.Dataset) or node.dtype.kind != "f":
        raise ModelFileError(f"{what}: weight {name!r} is not a float array")
    return np.asarray(node[()], dtype=np.float32)


def read_h5_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """``{layer name: [arrays in the layer's order]}`` of a Keras 2 ``.h5`` file (a whole model or weights only),
    for the layers that hold weights, in the file's order."""
    import h5py

    path = check_readable(path)
    check_hdf5(path, path)
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = _names(group, "layer_names", MAX_LAYERS, path)
            if not layers:
                raise ModelFileError(f"{path} lists no layer_names: not a Keras 2 .h5 weights file (a Keras 3 "
                                     ".weights.h5 loads with keras_resnet.load_weights)")
            weights: dict[str, list[np.ndarray]] = {}
            for layer in layers:
                link = group.get(layer, getlink=True)
                if not isinstance(link, h5py.HardLink) or not isinstance(group[layer], h5py.Group):
                    raise ModelFileError(f"{path}: layer {layer!r} has no weight group in the file")
                names = _names(group[layer], "weight_names", MAX_WEIGHTS_PER_LAYER, f"{path}: layer {layer!r}")
                if names:
                    weights[layer] = [_dataset(h5py, group[layer], n, f"{path}: layer {layer!r}") for n in names]
            return weights
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path} is not a readable Keras 2 .h5 file: {first_line(error)}") from error


def _listed(*parts: tuple[str, list[str]]) -> str:
    return "; ".join(f"{what} {names[:3]}{' ...' if len(names) > 3 else ''}" for what, names in parts if names)


def load_h5_weights(model, path: str | os.PathLike, names: Mapping[str, str], *,
                    ignore: Iterable[str] = ("normalization",)) -> int:
    """Set the weights of ``model`` (Keras 3 or tf_keras) from a Keras 2 ``.h5`` file: layer ``ours`` of the model
    takes the arrays of layer ``names[ours]`` of the file. Returns the number of layers set.

    Every weighted layer of the model must be in ``names`` (except those in ``ignore``: the input normalisation of
    ``keras-resnet train``'s models), and every weighted layer of the file must be a value of ``names``: a file of
    another architecture is refused, not half loaded. Nothing is set until every shape has matched.
    """
    path = os.fspath(path)
    stored = read_h5_weights(path)
    ignore = set(ignore)
    layers = {layer.name: layer for layer in model.layers}
    unmapped = [n for n, layer in layers.items() if layer.weights and n not in names and n not in ignore]
    absent = [n for n in names if n not in layers]
    if unmapped or absent:
        raise ConfigError(f"{model.name} does not fit this weight map: " + _listed(
            ("layers with weights and no counterpart", unmapped), ("counterparts of no layer", absent)))
    missing = [theirs for theirs in names.values() if theirs not in stored]
    extra = sorted(set(stored) - set(names.values()))
    if missing or extra:
        raise ModelFileError(f"{path} does not hold this model's weights: " + _listed(
            ("missing layers", missing), (f"layers no layer of {model.name} takes", extra)))
    plan = []
    for ours, theirs in names.items():
        expected = [tuple(int(d) for d in w.shape) for w in layers[ours].weights]
        arrays = stored[theirs]
        if [a.shape for a in arrays] != expected:
            raise ModelFileError(f"{path}: layer {theirs!r} holds shapes {[a.shape for a in arrays]}, but {ours!r} of "
                                 f"{model.name} takes {expected}")
        plan.append((layers[ours], arrays))
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return len(plan)


def _mlperf_tiny_resnet8() -> dict[str, str]:
    """Keras 2 numbers layers of a class in creation order; the reference creates, in each block, the branch's convs
    and BNs first and the projection shortcut's conv after them (keras_model.py, ``resnet_v1_eembc``)."""
    convs = ["conv1_conv", "conv2_block1_1_conv", "conv2_block1_2_conv",
             "conv3_block1_1_conv", "conv3_block1_2_conv", "conv3_block1_0_conv",
             "conv4_block1_1_conv", "conv4_block1_2_conv", "conv4_block1_0_conv"]
    bns = ["conv1_bn", "conv2_block1_1_bn", "conv2_block1_2_bn", "conv3_block1_1_bn", "conv3_block1_2_bn",
           "conv4_block1_1_bn", "conv4_block1_2_bn"]

    def keras2(base: str, i: int) -> str:
        return base if i == 0 else f"{base}_{i}"

    return {**{n: keras2("conv2d", i) for i, n in enumerate(convs)},
            **{n: keras2("batch_normalization", i) for i, n in enumerate(bns)},
            "predictions": "dense"}


# keras_resnet's ResNet8 → MLPerf Tiny's pretrainedResnet.h5 (conv2d … conv2d_8, batch_normalization … _6, dense).
MLPERF_TINY_RESNET8: dict[str, str] = _mlperf_tiny_resnet8()


def load_mlperf_tiny_weights(model, path: str | os.PathLike) -> int:
    """Load MLPerf Tiny's trained ResNet-8 (``pretrainedResnet.h5``, or a file its ``train.py`` wrote) into
    ``model``, a :func:`~keras_resnet.model.models.ResNet8` (or ``keras-resnet train``'s model of it). Returns the
    number of layers set.

    The reference was trained on raw 0–255 CIFAR-10 pixels, which ``ResNet8()`` takes as they come; the
    ``normalization`` layer of ``keras-resnet train``'s models is left as it is.
    """
    return load_h5_weights(model, path, MLPERF_TINY_RESNET8)


__all__ = ["MLPERF_TINY_RESNET8", "load_h5_weights", "load_mlperf_tiny_weights", "read_h5_weights"]
