"""``keras-resnet summary MODEL``: build a named model and print its Keras summary.

Imports no Keras at module level: :mod:`keras_resnet.cli.main` loads this module only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from keras_resnet.core import console


def summary_command(args: argparse.Namespace) -> int:
    """``keras-resnet summary MODEL``: build a named model and print its Keras summary."""
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.model.registry import build_model

    kwargs: dict[str, Any] = {"weights": None, "variant": args.variant}
    if args.classes is not None:
        kwargs["classes"] = args.classes
    if args.input_size is not None:
        kwargs["input_shape"] = (args.input_size, args.input_size, 3)
    build_model(args.model, **kwargs).summary(line_length=110)
    return 0
