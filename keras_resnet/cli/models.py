"""``keras-resnet models``: the table of named models, without Keras unless ``--params`` asks to build them."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.specs import MODELS


def models_command(args: argparse.Namespace) -> int:
    """``keras-resnet models [--params]``: one line per named model (``--params``: built, parameters counted)."""
    build_model = None
    if args.params:
        console.start_tensorflow(args.verbose_logs)
        from keras_resnet.model.registry import build_model
    for key, spec in MODELS.items():
        line = (f"{key:<14} {spec.function:<14} depth {spec.arch.depth:<5} {spec.arch.block:<10} "
                f"{'cifar' if spec.cifar else 'imagenet'}")
        if build_model is not None:
            line += f"  {build_model(key, weights=None).count_params():>12,}"
        print(line, flush=True)
    return 0
