"""``keras-resnet import``: the command-line handler (no Keras at import; the work is
:func:`keras_resnet.io.hub.import_to_file`)."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.commands import ImportSpec
from keras_resnet.spec.fields import from_args


def import_command(args: argparse.Namespace) -> int:
    """``keras-resnet import SOURCE:ARCH [--weights FILE] --output OUT.keras``."""
    spec = from_args(ImportSpec, args)
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.io.hub import import_to_file

    import_to_file(spec)
    return 0
