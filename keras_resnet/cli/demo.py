"""``keras-resnet demo``: the options become :class:`~keras_resnet.spec.commands.DemoSettings`;
:func:`keras_resnet.demo.story.run` does the work (Keras loads inside the handler only)."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.commands import DemoSettings
from keras_resnet.spec.fields import from_args


def demo_command(args: argparse.Namespace) -> int:
    """``keras-resnet demo``: the options are :class:`~keras_resnet.spec.commands.DemoSettings` fields."""
    settings = from_args(DemoSettings, args)
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.demo.story import run

    run(settings)
    return 0
