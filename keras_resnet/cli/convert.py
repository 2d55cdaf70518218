"""``keras-resnet convert MODEL --output OUT.tflite``: the options become one
:class:`~keras_resnet.spec.conversion.ConvertSpec`; :func:`keras_resnet.export.convert.convert` does the work, and
the report is printed (``--json``: one line more). Keras and TensorFlow load inside the handler only.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from keras_resnet.core import console
from keras_resnet.spec.conversion import ConvertSpec
from keras_resnet.spec.fields import from_args


def convert_command(args: argparse.Namespace) -> int:
    """``keras-resnet convert MODEL --output OUT.tflite``: the options are :class:`ConvertSpec` fields."""
    spec = from_args(ConvertSpec, args)  # built once, and checked before TensorFlow loads: a bad mix fails at once
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.export.convert import convert

    report = convert(args.model, args.output, spec, force=args.force, unsafe=args.unsafe)
    print("\n".join(report.lines()), flush=True)
    if args.json:
        print(console.json_line(asdict(report)), flush=True)
    return 0
