"""``keras-resnet train``: the arguments become a :class:`~keras_resnet.spec.recipe.Recipe` and a ``TrainRun``;
:func:`keras_resnet.quant.after_training.train_then_qat` does the rest (Keras loads inside the handler only)."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.fields import from_args
from keras_resnet.spec.recipe import Recipe, TrainRun


def train_command(args: argparse.Namespace) -> int:
    """``keras-resnet train``: train with the recipe (fine-tuning ``--init``, resuming a killed run); ``--qat-epochs
    N`` then fine-tunes a QAT copy of best.keras with ``--qat-engine`` into OUTPUT/qat.keras (keras) or
    OUTPUT/qat.h5 (tfmot), kept on a rerun. ``--json``: the summary as the last line."""
    recipe, run = from_args(Recipe, args), from_args(TrainRun, args)
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.quant.after_training import train_then_qat

    summary = train_then_qat(recipe, run)
    if run.json:
        print(console.json_line(summary), flush=True)
    return 0
