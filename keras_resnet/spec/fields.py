"""Dataclass fields that are command-line options: :func:`opt` declares one, :func:`add_arguments` turns a dataclass
into argparse options and :func:`from_args` the parsed arguments back into an instance.

Each option is defined once, as a dataclass field whose ``metadata["cli"]`` (:class:`Flag`) holds its help. Flags that
several commands share (``--dataset``, ``--data-dir``, ``--output``, ``--force``, ``--unsafe``, ``--json``,
``--qat-engine``, ``--min-agreement``) are defined once, in :data:`SHARED`. Also here: the argument parsers
(:func:`positive_int`, :func:`floats`, ...) and the value checks the dataclasses' ``__post_init__`` share. Nothing
here imports Keras or TensorFlow: ``keras-resnet SUB --help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.specs import OPTION_FIELDS

DATASET_HELP = ("digits (bundled), fashion-mnist, cifar10, cifar100, or folder:PATH (one sub-folder of images per "
                "class)")
QAT_ENGINES = ("tfmot", "keras")
# The QAT engine of `keras-resnet qat --engine`, `keras-resnet train --qat-engine` and the demo (one default for all).
# The native engine met issue 12's accuracy targets against float and tfmot on ResNet-20, ResNet-20V2 and ResNet-56
# (Fashion-MNIST, docs/results.md stage q); tfmot stays selectable as the reference.
DEFAULT_QAT_ENGINE = "keras"
# --jit: whether training compiles its steps with XLA (jit_compile); auto is keras_resnet.train.jit's rule.
JIT_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Flag:
    """How a dataclass field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name
    short: str | None = None
    metavar: str | None = None
    choices: tuple | None = None
    parse: Callable[[str], Any] | None = None  # default: the type of the field's default
    positional: bool = False
    required: bool = False
    repeat: bool = False  # may be given several times; the values are collected
    negate: str | None = None  # for a field that defaults to True: the flag that turns it off


def opt(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, **flag: Any) -> Any:
    """A dataclass field with command-line help (see :class:`Flag`)."""
    meta = {"cli": Flag(help, **flag)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def floats(text: str) -> tuple[float, ...]:
    """``"1,2.5,3"`` → ``(1.0, 2.5, 3.0)`` (finite values only)."""
    return tuple(finite(v) for v in text.split(","))


def patterns(text: str) -> tuple[str, ...]:
    """``"stem,conv4_.*_2_conv"`` → ``("stem", "conv4_.*_2_conv")`` (comma-separated, none empty)."""
    values = tuple(v.strip() for v in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer-name patterns; got {text!r}")
    return values


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (``zero_init=true``), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; got {text!r}")
    if key not in OPTION_FIELDS and key != "stem":
        raise argparse.ArgumentTypeError(f"unknown builder option {key!r}; choose from {', '.join(OPTION_FIELDS)}, stem")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def read_labels(path: str) -> tuple[str, ...]:
    """Class labels from a text file, one per line (blank lines skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise argparse.ArgumentTypeError(f"cannot read labels {path}: {error}") from error


SHARED: dict[str, Flag] = {
    "dataset": Flag(DATASET_HELP),
    "data_dir": Flag("where the dataset's files are (CIFAR python batches, Fashion-MNIST IDX files, image folder)",
                     metavar="DIR"),
    "output": Flag("where to write the result", short="-o"),
    "force": Flag("overwrite the output if it exists"),
    "unsafe": Flag("allow model files with layers that run code (Lambda, unknown classes); only for files you trust"),
    "json": Flag("also print the result as one JSON object on the last line"),
    "qat_engine": Flag("keras: native Keras 3 QAT (keras_resnet.quant.native_qat), any backend, writes .keras; tfmot: "
                       "tensorflow-model-optimization on a tf_keras twin, TensorFlow only, writes .h5",
                       choices=QAT_ENGINES),
    "jit": Flag("XLA compilation of the training steps (Keras' jit_compile): auto picks it for the backend and "
                "machine (TensorFlow on a CPU-only x86 machine: off, its oneDNN kernels are faster; on only for AVX2 "
                "with TF_ENABLE_ONEDNN_OPTS=0; JAX always compiles; "
                "GPUs: Keras' choice) and falls back to no XLA, with a warning, where XLA cannot compile the model; "
                "on: an error there (docs/training.md, \"Compile mode\")", choices=JIT_MODES),
    "min_agreement": Flag("refuse a .tflite whose top-1 agreement with the Keras model is below this, in [0, 1] "
                          "(default 0.99 float32/float16, 0.95 dynamic/int8)", parse=finite),
}


def shared(name: str, default: Any = None, **changes: Any) -> Any:
    """A field using the shared definition of ``--name`` (``changes``: e.g. ``required=True``)."""
    return field(default=default, metadata={"cli": dataclasses.replace(SHARED[name], **changes)})


def check_finite(owner: str, **values: Any) -> None:
    """ConfigError unless each value (None skipped) is a finite int or float."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{owner}: {name.replace('_', ' ')} must be a finite number; got {value!r}")


def check_agreement(value: float | None) -> None:
    """ConfigError unless ``--min-agreement`` is None or in [0, 1]."""
    check_finite("convert", min_agreement=value)
    if value is not None and not 0 <= value <= 1:
        raise ConfigError(f"--min-agreement must be in [0, 1]; got {value}")


def check_positive_int(owner: str, **values: Any) -> None:
    """ConfigError unless each value (None skipped) is a positive int."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{owner}: {name.replace('_', ' ')} must be a positive integer; got {value!r}")



def default_of(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (its factory called)."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one argparse option per field of ``cls`` that has a :class:`Flag` (``skip``: field names to leave out)."""
    for f in dataclasses.fields(cls):
        flag: Flag | None = f.metadata.get("cli")
        if flag is None or f.name in skip:
            continue
        default = default_of(f)
        help_ = flag.help
        if default not in (None, False, True, {}, ()) and "default" not in help_:
            help_ += f" (default: {default})"
        if flag.positional:
            parser.add_argument(f.name, help=help_, metavar=flag.metavar)
            continue
        names = [flag.flag or "--" + f.name.replace("_", "-")] + ([flag.short] if flag.short else [])
        if isinstance(default, bool):
            if default:
                parser.add_argument(flag.negate or f"--no-{f.name.replace('_', '-')}", dest=f.name,
                                    action="store_false", help=help_)
            else:
                parser.add_argument(*names, dest=f.name, action="store_true", help=help_)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_, "metavar": flag.metavar}
        if flag.choices is not None:
            kwargs["choices"] = flag.choices
        kwargs["type"] = flag.parse or (type(default) if default is not None else str)
        if flag.repeat:
            kwargs.update(action="append", default=[])
        elif flag.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(*names, **kwargs)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from parsed arguments (fields the parser lacks keep their defaults)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        flag = f.metadata.get("cli")
        if flag is not None and flag.repeat and isinstance(default_of(f), dict):
            value = dict(value)
        values[f.name] = value
    return cls(**{**values, **extra})
