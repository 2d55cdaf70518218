"""Pretrained ResNets into keras_resnet models, one entry point for every source: :func:`import_model`
(``"timm:resnet50d"``, ``"torchvision:resnet50"``, ``"keras-hub:/path/to/preset"``), the ``from_*`` shortcuts of the
package, and :func:`import_to_file`, what ``keras-resnet import`` does.

The architectures are the package's own, so the imported model is plain Keras layers that QAT and TFLite see one by
one. The work is in :mod:`keras_resnet.io.torch_sources` (which timm / torchvision models, their preprocessing,
the download), :mod:`keras_resnet.io.torch_mapping` (state-dict names and layouts → Keras layers; the weights file
is read by :mod:`keras_resnet.io.weights`: numpy only, no torch, no code from the file) and
:mod:`keras_resnet.io.keras_hub_presets`.
"""

from __future__ import annotations

import json
import os
import time

from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_path, atomic_write, check_output
from keras_resnet.io.import_common import parse_source
from keras_resnet.io.keras_hub_presets import import_keras_hub
from keras_resnet.io.preprocessing import INTERPOLATIONS, attach_preprocessing, preprocessing_path
from keras_resnet.io.torch_mapping import convert_state_dict
from keras_resnet.io.torch_sources import architecture, default_preprocessing, fetch_weights, read_timm_config
from keras_resnet.io.weights import read_weights
from keras_resnet.spec.commands import ImportSpec


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
        weights, config = fetch_weights(source, arch_name, tag)
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


def from_keras_hub(preset: str | os.PathLike, **kwargs):
    """A Keras model from a keras-hub ResNet / ResNet-vd preset directory (``include_top``, ``input_shape``,
    ``classifier_activation``, ``name`` as :func:`import_model`)."""
    return import_keras_hub(preset, **kwargs)[0]


def import_to_file(spec: ImportSpec) -> str:
    """``keras-resnet import``: import ``spec.source`` and write ``spec.output`` (a ``.keras`` holding the
    preprocessing record) and the ``OUT.preprocessing.json`` next to it, both atomically. Returns the output path."""
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
    return spec.output


__all__ = ["from_keras_hub", "from_timm", "from_torchvision", "import_model", "import_to_file"]
