"""``keras-resnet evaluate MODEL``: the options become an :class:`~keras_resnet.spec.commands.EvalSpec`;
:func:`keras_resnet.train.evaluate.evaluate` does the work, and the result is printed (``--json``: one line more)."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.commands import EvalSpec
from keras_resnet.spec.fields import from_args


def evaluate_command(args: argparse.Namespace) -> int:
    """``keras-resnet evaluate MODEL``: the options are :class:`~keras_resnet.spec.commands.EvalSpec` fields."""
    spec = from_args(EvalSpec, args)
    console.start_tensorflow(args.verbose_logs)
    from keras_resnet.train.distribute import backend_text
    from keras_resnet.train.evaluate import evaluate

    result = evaluate(args.model, spec)
    runs_on = f"; backend {backend_text(result['backend'])}" if "backend" in result else ""
    print(f"{result['model']} on {result['dataset']} ({result['split']}, {result['images']} images){runs_on}")
    print(f"  accuracy  {result['accuracy']:.4f}")
    if "top5_accuracy" in result:
        print(f"  top-5     {result['top5_accuracy']:.4f}")
    print(f"  loss      {result['loss']:.4f}")
    print("  per class: " + ", ".join(f"{name} {acc:.3f}" if acc is not None else f"{name} -"
                                      for name, acc in result["per_class_accuracy"].items()))
    if args.json:
        print(console.json_line(result), flush=True)
    return 0
