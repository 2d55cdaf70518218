"""``keras-resnet check MODEL.tflite --target T``: resnet-edge's target check from the training side (no
TensorFlow): the options become a :class:`~keras_resnet.spec.conversion.CheckSpec`,
:func:`resnet_edge.check.check` does the work."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.core.errors import ModelFileError, ValidationError
from keras_resnet.spec.conversion import CheckSpec
from keras_resnet.spec.fields import from_args


def check_command(args: argparse.Namespace) -> int:
    """The report on stdout; a model the target refuses (or, with ``--strict``, one with fallbacks) ends with an
    ``error:`` line."""
    spec = from_args(CheckSpec, args)
    try:
        from resnet_edge.check import check
    except ImportError as error:
        raise ModelFileError(f"keras-resnet check needs resnet_edge (pip install ./deploy): {error}") from None
    try:
        report = check(args.model, spec.target, compiler=spec.compiler if spec.run_compiler else False)
    except ValueError as error:
        message = str(error)
        raise ModelFileError(message if message.startswith(args.model) else f"{args.model}: {message}") from None
    print("\n".join(report.lines()), flush=True)
    if args.json:
        print(console.json_line(report.as_dict()), flush=True)
    if not report.ok or (spec.strict and report.count("fallback")):
        raise ValidationError(f"{args.model} {'fails' if not report.ok else 'falls back on'} the {spec.target} "
                              f"contract ({report.count('error')} errors, {report.count('fallback')} fallbacks)")
    return 0
