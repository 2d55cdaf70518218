"""``keras-resnet qat``: quantization-aware fine-tuning of a trained model (no Keras imported until it runs)."""

from __future__ import annotations

import argparse

from keras_resnet.core import console
from keras_resnet.spec.commands import QATSpec
from keras_resnet.spec.fields import from_args


def qat_command(args: argparse.Namespace) -> int:
    """``keras-resnet qat MODEL --engine keras|tfmot --dataset D --output OUT``."""
    spec = from_args(QATSpec, args)
    console.start_tensorflow(args.verbose_logs)
    import keras

    from keras_resnet.quant.engine import engine_fine_tune

    result = engine_fine_tune(args.model, spec, args.output, force=args.force, unsafe=args.unsafe, verbose=2)
    engine = "native Keras engine" if spec.engine == "keras" else "tfmot engine"
    print(f"float accuracy {result.float_accuracy:.4f}  QAT accuracy {result.accuracy:.4f}  "
          f"({result.epochs} epochs, {result.seconds:.0f} s, {engine}, backend {keras.backend.backend()}"
          f"{result.jit_text()})  "
          f"-> {result.path}")
    return 0
