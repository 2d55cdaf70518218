"""One depth table, one builder: ImageNet and CIFAR ResNets, their V2, plain and highway twins.

``ResNet(arch, ...)`` builds any :class:`Arch`; the named models (``ResNet50``, ``ResNet20``,
``Plain56``, ...) are entries of :data:`MODELS`, turned into functions with keras.applications'
signature plus keyword-only variant arguments (see :class:`~keras_resnet.blocks.BlockOptions`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keras_resnet.blocks import BlockOptions, bn, conv, keras_lib, relu, stack

Stem = Literal["imagenet", "deep", "cifar"]


@dataclass(frozen=True)
class Arch:
    """A depth table entry: block type, blocks per stage, base filters per stage, stem."""

    block: Literal["basic", "bottleneck"]
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


def cifar_arch(depth: int, block: Literal["basic", "bottleneck"] = "basic") -> Arch:
    """He et al.'s CIFAR nets: depth 6n+2 (basic) or 9n+2 (bottleneck), 16/32/64 filters."""
    per_block = 2 if block == "basic" else 3
    n, rest = divmod(depth - 2, 3 * per_block)
    if rest or n < 1:
        raise ValueError(
            f"CIFAR ResNet depth must be 6n+2 for basic blocks (20, 32, 44, 56, 110, 1202, ...) or 9n+2 for "
            f"bottleneck blocks (164, 1001, ...); got depth {depth} with {block} blocks"
        )
    return Arch(block, (n, n, n), (16, 32, 64), "cifar")


def imagenet_arch(depth: int) -> Arch:
    if depth not in IMAGENET:
        raise ValueError(f"ImageNet ResNet depth must be one of {', '.join(map(str, IMAGENET))}; got {depth}")
    return IMAGENET[depth]


@dataclass(frozen=True)
class Entry:
    """A named model: its architecture and the defaults that differ from :class:`BlockOptions`."""

    function: str
    arch: Arch
    options: dict[str, Any] = field(default_factory=dict)
    stride_last: bool = False  # keras.applications V2 strides in the last block of a stage
    classes: int = 1000
    input_size: int = 224
    keras_weights: bool = False  # keras.applications publishes ImageNet weights for this exact model


_V1_KERAS = {"use_bias": True}  # keras.applications v1: a bias on every conv
_V2 = {"preact": True, "stride_on": "3x3"}


def _table() -> dict[str, Entry]:
    models: dict[str, Entry] = {}
    for depth in IMAGENET:
        arch = IMAGENET[depth]
        weights = depth in (50, 101, 152)
        models[f"resnet{depth}"] = Entry(f"ResNet{depth}", arch, _V1_KERAS, keras_weights=weights)
        models[f"resnet{depth}v2"] = Entry(f"ResNet{depth}V2", arch, _V2, stride_last=True, keras_weights=weights)
        models[f"plain{depth}"] = Entry(f"Plain{depth}", arch, {**_V1_KERAS, "skip": "none"})
    cifar = {"classes": 10, "input_size": 32}
    for depth in (20, 32, 44, 56, 110, 1202):
        arch = cifar_arch(depth)
        models[f"resnet{depth}"] = Entry(f"ResNet{depth}", arch, {"shortcut": "A"}, **cifar)
        models[f"resnet{depth}v2"] = Entry(f"ResNet{depth}V2", arch, {**_V2, "shortcut": "A"}, **cifar)
        models[f"plain{depth}"] = Entry(f"Plain{depth}", arch, {"skip": "none"}, **cifar)
        models[f"highway{depth}"] = Entry(f"Highway{depth}", arch, {"skip": "highway", "shortcut": "A"}, **cifar)
    for depth in (164, 1001):
        models[f"resnet{depth}v2"] = Entry(f"ResNet{depth}V2", cifar_arch(depth, "bottleneck"), _V2, **cifar)
    return models


MODELS: dict[str, Entry] = _table()

# Shorthands for the common ImageNet variants (Bag of Tricks naming).
VARIANTS: dict[str, dict[str, Any]] = {
    "v1": {},
    "v1.5": {"stride_on": "3x3"},
    "c": {"stride_on": "3x3", "stem": "deep"},
    "d": {"stride_on": "3x3", "stem": "deep", "avg_down": True},
}


def build_stem(x, stem: Stem, filters: int, opts: BlockOptions):
    """conv1 with ``filters`` outputs: 7×7/2 + 3×3/2 max-pool, a deep 3×(3×3) stem, or CIFAR's single 3×3."""
    lib = keras_lib(x)
    post = not opts.preact  # v2 stems end on a bare conv; the first block normalises

    def unit(x, filters, kernel, stride, name, activate=True):
        x = conv(x, filters, kernel, f"{name}_conv", opts, stride=stride, bias=not activate,
                 pad=kernel > 3 or stride > 1)
        return relu(bn(x, f"{name}_bn"), f"{name}_relu") if activate else x

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
    x = build_stem(x, stem, arch.filters[0], options)
    outputs = {}
    for k, (filters, blocks) in enumerate(zip(arch.filters, arch.blocks, strict=True)):
        stride = 1 if k == 0 else 2
        if stride_last:  # keras V2: every stage but the last hands its stride to the next stage's end
            stride = 1 if k == len(arch.blocks) - 1 else 2
        x, outputs[f"C{k + 2}"] = stack(x, filters, blocks, arch.block, stride=stride, name=f"conv{k + 2}",
                                        opts=options, stride_last=stride_last)
    if options.preact:
        x = relu(bn(x, "post_bn"), "post_relu")
        outputs[f"C{len(arch.blocks) + 1}"] = x

    # Keras walks the layer graph recursively (in building, saving, loading): give ResNet-1202 the depth.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * arch.depth + 1000))
    if features:
        return lib.Model(inputs, outputs, name=name)
    if include_top:
        x = lib.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = lib.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
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
        raise ValueError(f"input_shape must be (height, width, channels); got {shape}")
    if fixed and shape != (default, default, 3):
        raise ValueError(f"{name} with weights='imagenet' and include_top=True needs input_shape "
                         f"({default}, {default}, 3); got {shape}")
    h, w, c = shape
    if (c is not None and c < 1) or any(d is not None and d < min_size for d in (h, w)):
        raise ValueError(f"input_shape {shape} is too small for {name}: height and width must be at least "
                         f"{min_size} and channels at least 1")
    return shape


def _check_head(include_top, pooling, classes, weights, features, activation) -> None:
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be a positive integer; got {classes!r}")
    if features and include_top:
        raise ValueError("features=True returns stage outputs; pass include_top=False with it")
    if weights == "imagenet" and include_top:
        if classes != 1000:
            raise ValueError(f"weights='imagenet' with include_top=True needs classes=1000; got {classes}")
        if activation not in (None, "softmax"):
            raise ValueError("weights='imagenet' supports classifier_activation None or 'softmax' only")
    if weights not in (None, "imagenet") and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
        raise ValueError(f"weights must be None, 'imagenet' or the path of a weights file; {weights!r} is none "
                         f"of these (no such file)")


KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


def _weights_file(weights, keras_weights: str | None, include_top: bool, name: str) -> str:
    if weights != "imagenet":
        return os.fspath(weights)
    if keras_weights is None:
        published = ", ".join(e.function for e in MODELS.values() if e.keras_weights)
        raise ValueError(f"no published ImageNet weights for {name} with these options; keras.applications "
                         f"publishes them for {published} (default variant); pass weights=None or a file")
    import keras
    from keras.src.applications.resnet import WEIGHTS_HASHES

    file_name = f"{keras_weights}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    try:
        return keras.utils.get_file(file_name, KERAS_WEIGHTS_URL + file_name, cache_subdir="models",
                                    file_hash=WEIGHTS_HASHES[keras_weights][0 if include_top else 1])
    except Exception as error:  # urllib / socket errors differ by platform; all mean "could not fetch"
        raise ValueError(
            f"could not download ImageNet weights {file_name} ({error.__class__.__name__}: {error}). Offline? "
            f"Fetch {KERAS_WEIGHTS_URL}{file_name} on a connected machine and pass weights='/path/to/{file_name}'"
        ) from None


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
        raise ValueError(f"{path} has no weights for {len(missing)} layers of {model.name}, e.g. {missing[:3]}; "
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
                raise ValueError(f"layer {layer.name!r} of {target.name} has no counterpart in {source.name}")
            continue
        layer.set_weights(by_name[layer.name].get_weights())
        copied += 1
    return copied


def build_model(model: str, **kwargs):
    """Build a named model, e.g. ``build_model("resnet20", classes=100)`` (case and dashes ignored)."""
    key = model.lower().replace("-", "").replace("_", "")
    if key not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    return globals()[MODELS[key].function](**kwargs)


def _named(key: str, entry: Entry) -> Callable:
    cifar = entry.arch.stem == "cifar"

    def model_fn(
        include_top=True,
        weights="imagenet" if entry.keras_weights else None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=entry.classes,
        classifier_activation="softmax",
        name=key,
        *,
        variant: str = "v1",
        features: bool = False,
        library: Literal["keras", "tf_keras"] = "keras",
        **options: Any,
    ):
        if variant not in VARIANTS or (cifar and variant != "v1"):
            allowed = "'v1'" if cifar else ", ".join(map(repr, VARIANTS))
            raise ValueError(f"variant must be one of {allowed} for {entry.function}; got {variant!r}")
        fields = {f.name for f in dataclasses.fields(BlockOptions)} | {"stem"}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {entry.function}; choose from {sorted(fields)}")
        options = {**entry.options, **VARIANTS[variant], **options}
        stem = options.pop("stem", None)
        default = options == entry.options and stem is None
        return ResNet(
            entry.arch, include_top=include_top, weights=weights, input_tensor=input_tensor,
            input_shape=input_shape, pooling=pooling, classes=classes, classifier_activation=classifier_activation,
            name=name, options=BlockOptions(**options), stem=stem, stride_last=entry.stride_last,
            features=features, library=library, keras_weights=key if entry.keras_weights and default else None,
        )

    kind = "pre-activation " if entry.options.get("preact") else ""
    skip = {"none": "plain (no shortcut) ", "highway": "highway "}.get(entry.options.get("skip", ""), "")
    model_fn.__name__ = model_fn.__qualname__ = entry.function
    model_fn.__doc__ = (
        f"{entry.function}: {kind}{skip}{entry.arch.block} {'CIFAR' if cifar else 'ImageNet'} network, "
        f"depth {entry.arch.depth}, blocks {entry.arch.blocks}.\n\n"
        "Arguments as keras.applications' ResNet50; keyword-only: ``variant`` (one of VARIANTS), ``features``\n"
        "(dict of stage outputs), ``library`` ('keras' or 'tf_keras') and any BlockOptions field."
    )
    return model_fn


for _key, _entry in MODELS.items():
    globals()[_entry.function] = _named(_key, _entry)

__all__ = ["Arch", "BlockOptions", "IMAGENET", "MODELS", "VARIANTS", "ResNet", "build_model", "cifar_arch",
           "imagenet_arch", "load_weights", "transfer_weights", *(e.function for e in MODELS.values())]


# ---- command line: `keras-resnet models` and `keras-resnet summary` ---------------------------------------


def models_cli(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="List the named models.")
    parser.add_argument("--params", action="store_true", help="build each model to count its parameters (slow)")
    args = parser.parse_args(argv)
    for key, entry in MODELS.items():
        line = f"{key:<14} {entry.function:<14} depth {entry.arch.depth:<5} {entry.arch.block:<10} " \
               f"{'cifar' if entry.arch.stem == 'cifar' else 'imagenet'}"
        if args.params:
            line += f"  {build_model(key, weights=None).count_params():>12,}"
        print(line)
    return 0


def summary_cli(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Build a named model and print its Keras summary.")
    parser.add_argument("model", help="a name from `keras-resnet models`, e.g. resnet20 or resnet50v2")
    parser.add_argument("--classes", type=int, help="number of classes (default: 10 CIFAR, 1000 ImageNet)")
    parser.add_argument("--input-size", type=int, help="input height and width")
    parser.add_argument("--variant", default="v1", choices=list(VARIANTS))
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {"weights": None, "variant": args.variant}
    if args.classes is not None:
        kwargs["classes"] = args.classes
    if args.input_size is not None:
        kwargs["input_shape"] = (args.input_size, args.input_size, 3)
    model = build_model(args.model, **kwargs)
    model.summary(line_length=110)
    return 0
