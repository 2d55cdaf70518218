"""One builder: ``ResNet(arch, ...)`` builds any :class:`~keras_resnet.spec.specs.Arch` of the depth table.

The named models (``ResNet50``, ``ResNet20``, ``Plain56``, ...) are functions in :mod:`keras_resnet.model.models`, each
a call of :func:`build_named` with its :data:`~keras_resnet.spec.specs.MODELS` entry;
:func:`keras_resnet.model.registry.build_model` builds one by name.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.model.blocks import bn, conv, keras_lib, relu, stack
from keras_resnet.spec.specs import MODELS, Arch, BlockOptions, Head, Stem, model_spec, resolve_options


def build_stem(x, stem: Stem, filters: int, opts: BlockOptions):
    """conv1 with ``filters`` outputs: 7×7/2 + 3×3/2 max-pool, a deep 3×(3×3) stem, or CIFAR's single 3×3."""
    lib = keras_lib(x)
    post = not opts.preact  # v2 stems end on a bare conv; the first block normalises

    def unit(x, filters, kernel, stride, name, activate=True):
        x = conv(x, filters, kernel, f"{name}_conv", opts, stride=stride, bias=not activate,
                 pad=kernel > 3 or stride > 1)
        return relu(bn(x, f"{name}_bn", opts), f"{name}_relu") if activate else x

    if stem == "cifar":
        return unit(x, filters, 3, 1, "conv1", post)
    if stem == "deep":
        x = unit(x, filters // 2, 3, 2, "conv1_1")
        x = unit(x, filters // 2, 3, 1, "conv1_2")
        x = unit(x, filters, 3, 1, "conv1_3", post)
    else:
        x = unit(x, filters, 7, 2, "conv1", post)
    x = lib.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return lib.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def classifier(x, head: Head, classes: int, activation, initializer: str):
    """The top: GlobalAveragePooling2D (``head="global"``) or AveragePooling2D over the whole last map + Flatten
    (``"flatten"``, MLPerf Tiny's layers: its pool size is the smaller side, as the reference's), then the Dense
    ``predictions``."""
    lib = keras_lib(x)
    if head == "global":
        x = lib.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    else:
        height, width = x.shape[1:3]
        if height is None or width is None:
            raise ConfigError("head 'flatten' pools the whole last feature map: it needs a fixed input_shape "
                              f"(height and width), not {tuple(x.shape[1:])}")
        x = lib.layers.AveragePooling2D(min(height, width), name="avg_pool")(x)
        x = lib.layers.Flatten(name="flatten")(x)
    return lib.layers.Dense(classes, activation=activation, kernel_initializer=initializer, name="predictions")(x)


def drop_path_rates(rate: float, blocks: int) -> tuple[float, ...]:
    """Stochastic-depth rate of each block: linear from 0 (first) to ``rate`` (last), as timm's ResNet."""
    if not rate:
        return ()
    return tuple(rate * i / max(blocks - 1, 1) for i in range(blocks))


def ResNet(
    arch: Arch,
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: Sequence[int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    name: str = "resnet",
    options: BlockOptions = BlockOptions(),
    stem: Stem | None = None,
    stride_last: bool = False,
    features: bool = False,
    library: Literal["keras", "tf_keras"] = "keras",
    keras_weights: str | None = None,
):
    """Build a ResNet from a depth-table entry.

    ``features=True`` returns a backbone whose outputs are a dict ``{"C2": ..., "C3": ...}`` of stage
    outputs (stage ``convK``), for detection or segmentation heads. ``library="tf_keras"`` builds the
    Keras 2 twin (for tfmot QAT) with the same layer names. ``keras_weights`` names the
    keras.applications file used by ``weights="imagenet"``.
    """
    with compat.recursion_limit(compat.recursion_limit_for(layers=5 * arch.depth)):
        return _resnet(arch, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
                       name, options, stem, stride_last, features, library, keras_weights)


def _resnet(arch, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name,
            options, stem, stride_last, features, library, keras_weights):
    stem = stem or arch.stem
    default = 32 if arch.stem == "cifar" else 224
    input_shape = _input_shape(input_shape, input_tensor, default, arch.total_stride, name,
                               include_top and weights == "imagenet")
    _check_head(include_top, pooling, classes, weights, features, classifier_activation)
    lib = importlib.import_module(library)

    if input_tensor is None:
        inputs = lib.layers.Input(shape=input_shape)
        x = inputs
    else:
        x = input_tensor
        inputs = lib.utils.get_source_inputs(input_tensor)
    x = build_stem(x, stem, arch.stem_width, options)
    outputs = {}
    rates = drop_path_rates(options.drop_path_rate, sum(arch.blocks))
    for k, (filters, blocks) in enumerate(zip(arch.filters, arch.blocks, strict=True)):
        stride = 1 if k == 0 else 2
        if stride_last:  # keras V2: every stage but the last hands its stride to the next stage's end
            stride = 1 if k == len(arch.blocks) - 1 else 2
        x, outputs[f"C{k + 2}"] = stack(x, filters, blocks, arch.block, stride=stride, name=f"conv{k + 2}",
                                        opts=options, stride_last=stride_last,
                                        drop_rates=rates[sum(arch.blocks[:k]):sum(arch.blocks[:k + 1])])
    if options.preact:
        x = relu(bn(x, "post_bn", options), "post_relu")
        outputs[f"C{len(arch.blocks) + 1}"] = x

    if features:
        return lib.Model(inputs, outputs, name=name)
    if include_top:
        x = classifier(x, arch.head, classes, classifier_activation, options.classifier_initializer)
    elif pooling == "avg":
        x = lib.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = lib.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = lib.Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, _weights_file(weights, keras_weights, include_top, name))
    return model


def _input_shape(shape, input_tensor, default: int, min_size: int, name: str, fixed: bool) -> tuple[int, ...]:
    if shape is None and input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
    if shape is None:
        return (default, default, 3)
    shape = tuple(shape)
    if len(shape) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels); got {shape}")
    if fixed and shape != (default, default, 3):
        raise ConfigError(f"{name} with weights='imagenet' and include_top=True needs input_shape "
                         f"({default}, {default}, 3); got {shape}")
    h, w, c = shape
    if (c is not None and c < 1) or any(d is not None and d < min_size for d in (h, w)):
        raise ConfigError(f"input_shape {shape} is too small for {name}: height and width must be at least "
                         f"{min_size} and channels at least 1")
    return shape


def _check_head(include_top, pooling, classes, weights, features, activation) -> None:
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ConfigError(f"classes must be a positive integer; got {classes!r}")
    if features and include_top:
        raise ConfigError("features=True returns stage outputs; pass include_top=False with it")
    if weights == "imagenet" and include_top:
        if classes != 1000:
            raise ConfigError(f"weights='imagenet' with include_top=True needs classes=1000; got {classes}")
        if activation not in (None, "softmax"):
            raise ConfigError("weights='imagenet' supports classifier_activation None or 'softmax' only")
    if weights not in (None, "imagenet") and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
        raise ConfigError(f"weights must be None, 'imagenet' or the path of a weights file; {weights!r} is none "
                         f"of these (no such file)")


KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# MD5 of keras.applications' files (with top, without top), as published in keras/src/applications/resnet*.py.
KERAS_WEIGHTS_HASHES: dict[str, tuple[str, str]] = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}


def _weights_file(weights, keras_weights: str | None, include_top: bool, name: str) -> str:
    if weights != "imagenet":
        return os.fspath(weights)
    if keras_weights is None:
        published = ", ".join(e.function for e in MODELS.values() if e.keras_weights)
        raise ConfigError(f"no published ImageNet weights for {name} with these options; keras.applications "
                         f"publishes them for {published} (default variant); pass weights=None or a file")
    import keras

    file_name = f"{keras_weights}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    try:
        return keras.utils.get_file(file_name, KERAS_WEIGHTS_URL + file_name, cache_subdir="models",
                                    file_hash=KERAS_WEIGHTS_HASHES[keras_weights][0 if include_top else 1])
    except Exception as error:  # urllib / socket errors differ by platform; all mean "could not fetch"
        raise ModelFileError(
            f"could not download ImageNet weights {file_name} ({error.__class__.__name__}: {error}). Offline? "
            f"Fetch {KERAS_WEIGHTS_URL}{file_name} on a connected machine and pass weights='/path/to/{file_name}'"
        ) from error


def load_weights(model, path: str) -> None:
    """Load weights into ``model`` by layer name from a ``.keras`` model, ``.weights.h5`` or legacy ``.h5`` file.

    Every layer of ``model`` that has weights must find them in the file; extra layers in the file
    (e.g. a classifier when ``include_top=False``) are ignored.
    """
    if path.endswith(".keras"):
        import keras

        transfer_weights(keras.saving.load_model(path, compile=False), model, strict=False)
        return
    import h5py

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        names = {n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("layer_names", [])}
    if not names:  # Keras 3 .weights.h5: stored by model structure
        model.load_weights(path)
        return
    missing = sorted(layer.name for layer in model.layers if layer.weights and layer.name not in names)
    if missing:
        raise ModelFileError(f"{path} has no weights for {len(missing)} layers of {model.name}, e.g. {missing[:3]}; "
                         f"is it a file for a different architecture?")
    model.load_weights(path, by_name=True)


def transfer_weights(source, target, *, strict: bool = True) -> int:
    """Copy weights layer by layer, matching names, from ``source`` to ``target`` (Keras 3 or tf_keras).

    With ``strict`` every weighted layer of ``target`` must exist in ``source``. Returns the layer count.
    """
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            if strict:
                raise ConfigError(f"layer {layer.name!r} of {target.name} has no counterpart in {source.name}")
            continue
        layer.set_weights(by_name[layer.name].get_weights())
        copied += 1
    return copied


def predict(model, x, batch_size: int = 32):
    """``model.predict(x)`` with every batch padded to ``batch_size`` images (outputs trimmed back).

    Keras traces its predict function once per input shape, so a partial last batch costs a second trace on every
    call, and repeated calls (one per conversion, per QAT evaluation) end in tf.function retracing warnings.
    Works for Keras 3 and tf_keras models.
    """
    import numpy as np

    x = np.asarray(x, np.float32)
    n = len(x)
    pad = (-n) % batch_size
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)])
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))[:n]


def build_named(key: str, *, include_top: bool = True, weights: str | None = None, input_tensor=None,
                input_shape: Sequence[int] | None = None, pooling: str | None = None, classes: int | None = None,
                classifier_activation: str | Callable | None = "softmax", name: str | None = None,
                variant: str = "v1", features: bool = False, library: Literal["keras", "tf_keras"] = "keras",
                **options: Any):
    """Build the :data:`~keras_resnet.spec.specs.MODELS` entry ``key`` with keras.applications' arguments.

    ``variant`` is one of :data:`~keras_resnet.spec.specs.VARIANTS` (ImageNet models); any other keyword is a
    :class:`~keras_resnet.spec.specs.BlockOptions` field (or ``stem``) overriding the entry's defaults.
    """
    key, spec = model_spec(key)
    block_options, stem, default = resolve_options(spec, variant, **options)
    return ResNet(
        spec.arch, include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
        pooling=pooling, classes=spec.classes if classes is None else classes,
        classifier_activation=classifier_activation, name=name or key, options=block_options, stem=stem,
        stride_last=spec.stride_last, features=features, library=library,
        keras_weights=key if spec.keras_weights and default else None,
    )
